"""Digests: claim who is due, compose a whole chunk at once, send each digest at most once.

The flow, and why it cannot lose or double a digest:

1. ``claim_due_subscribers`` leases due subscribers (``claimed_at``) in one atomic statement
   (``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL), so overlapping beats and two
   dispatchers get disjoint sets. A lease no task finished expires after
   ``DIGEST_CLAIM_LEASE_MINUTES`` and the subscriber is claimed again: nothing is lost when a
   dispatcher or worker dies.
2. ``compose_chunk`` ranks candidate papers for the whole chunk with one matrix product and
   writes ``Digest`` (status ``queued``) + ``DigestItem`` rows and the next schedule in one
   transaction, with a fixed number of queries. ``Digest`` is unique per (subscriber,
   period): a redelivered chunk composes nothing twice.
3. ``send_queued`` hands each queued digest to the email backend over one connection, through
   the transitions of ``newsletter.models.Digest``, whose docstring states why a digest is
   sent at most once and what happens when a worker dies mid-send.
"""

from __future__ import annotations

import logging
import smtplib
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from email.utils import make_msgid
from itertools import zip_longest
from typing import Any, TypeVar
from urllib.parse import urlsplit

from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused
from django.conf import settings
from django.core.mail import get_connection
from django.db import connection, transaction
from django.db.models import (
    Count,
    DateTimeField,
    IntegerField,
    Max,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    TextField,
    Value,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce
from django.utils import timezone

from newsletter import throttle
from newsletter.models import (
    Click,
    Digest,
    DigestItem,
    Feedback,
    InterestProfile,
    ProfilePaper,
    Subscriber,
)
from papers import ranking
from papers.models import Paper
from papers.ranking.reasons import TRENDING_REASON
from papers.ranking_data import embedding_model, paper_text

log = logging.getLogger(__name__)
Status = Subscriber.Status


def period_of(subscriber: Subscriber, scheduled: datetime) -> str:
    """The period a send belongs to: the local day, or the ISO week for weekly digests."""
    local = scheduled.astimezone(subscriber.zone)
    if subscriber.frequency == Subscriber.Frequency.WEEKLY:
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02d}"
    return local.date().isoformat()


def claim_due_subscribers(now: datetime, limit: int) -> list[int]:
    """Lease up to ``limit`` active subscribers whose send time has come; return their ids."""
    stale = now - timedelta(minutes=settings.DIGEST_CLAIM_LEASE_MINUTES)
    with transaction.atomic():
        ids = list(
            Subscriber.objects.select_for_update(skip_locked=True)
            .filter(status=Status.ACTIVE, next_digest_at__lte=now)
            .filter(Q(claimed_at__isnull=True) | Q(claimed_at__lt=stale))
            .order_by("next_digest_at")
            .values_list("id", flat=True)[:limit]
        )
        if ids:
            Subscriber.objects.filter(id__in=ids).update(claimed_at=now)
    return ids


def make_everyone_due(now: datetime) -> int:
    """For a round by hand: every active subscriber is due now (for the current period)."""
    return Subscriber.objects.filter(status=Status.ACTIVE).update(
        next_digest_at=now, claimed_at=None
    )


# --- Composition --------------------------------------------------------------------------------

_model_cache: dict[tuple[int, datetime | None], ranking.Model] = {}
Catalogue = tuple[int, datetime | None]  # (papers, last change): when it differs, refit


def catalogue_state() -> dict[str, Any]:
    """The catalogue's size and last change as annotations, so a query on papers can bring
    them along instead of a query of their own."""
    table = Paper._meta.db_table
    return {
        "catalogue_size": RawSQL(f"SELECT COUNT(*) FROM {table}", (), output_field=IntegerField()),
        "catalogue_changed": RawSQL(
            f"SELECT MAX(updated) FROM {table}", (), output_field=DateTimeField()
        ),
    }


def catalogue_model(state: Catalogue | None = None) -> ranking.Model:
    """The vector-space model fitted on the whole catalogue, refitted when it changes."""
    if state is None:
        found = Paper.objects.aggregate(n=Count("id"), changed=Max("updated"))
        state = (found["n"], found["changed"])
    if state not in _model_cache:
        now = timezone.now()
        papers = [paper_text(p, now) for p in Paper.objects.all()]
        _model_cache.clear()
        _model_cache[state] = ranking.fit_model(papers, embedding_model())
    return _model_cache[state]


def window_days(subscriber: Subscriber) -> int:
    if subscriber.frequency == Subscriber.Frequency.WEEKLY:
        return settings.DIGEST_WEEKLY_WINDOW_DAYS
    return settings.DIGEST_DAILY_WINDOW_DAYS


def for_planning(subscribers: QuerySet[Subscriber]) -> QuerySet[Subscriber]:
    """Subscribers as ``plan_digests`` reads them: with ``last_sent``, when they last got one."""
    # MAX, not ORDER BY sent_at DESC LIMIT 1: with the index on sent_at PostgreSQL walked it
    # from the newest digest looking for this subscriber's, the whole index for a subscriber
    # never sent one (1.6 s per chunk half-way through a 100,000 round).
    last = (
        Digest.objects.filter(subscriber=OuterRef("pk"))
        .order_by()
        .values("subscriber")
        .annotate(last=Max("sent_at"))
        .values("last")
    )
    return subscribers.annotate(last_sent=Subquery(last))


@dataclass
class Signals:
    """What a profile holds beyond its own row: followed topics, liked and disliked papers,
    and what its reader did with the papers picked for it (votes, clicks)."""

    topics: list[tuple[str, str]] = field(default_factory=list)
    liked: set[int] = field(default_factory=set)
    disliked: set[int] = field(default_factory=set)
    votes: dict[int, int] = field(default_factory=dict)
    clicked: set[int] = field(default_factory=set)


def signals_of(
    subscriber_ids: list[int], sent_since: date | None = None
) -> tuple[dict[int, Signals], dict[int, set[int]]]:
    """Every profile's signals (by profile id), and the papers listed since ``sent_since``
    each subscriber was already sent (by subscriber id): one query for them all.

    A liked paper named by an arXiv id the catalogue did not have when it was given counts
    from the moment the paper arrives (the background fetch), found here by its id.
    """
    text = Value("", output_field=TextField())
    mine = {"profile__subscriber_id__in": subscriber_ids}
    # (order_by(): a part of a UNION may not be ordered)
    topics = InterestProfile.topics.through.objects.filter(
        interestprofile__subscriber_id__in=subscriber_ids
    ).order_by()
    arrived = Paper.objects.filter(arxiv_id=OuterRef("arxiv_id")).exclude(arxiv_id="")
    papers = ProfilePaper.objects.filter(**mine).order_by()
    parts = [
        papers.values_list(
            "profile_id",
            Value("paper"),
            Coalesce("paper_id", Subquery(arrived.values("id")[:1])),
            "opinion",
            text,
            text,
        ),
        Feedback.objects.filter(**mine)
        .order_by()
        .values_list("profile_id", Value("vote"), "paper_id", "value", text, text),
        Click.objects.filter(**mine)
        .order_by()
        .values_list("profile_id", Value("click"), "paper_id", Value(1), text, text),
    ]
    if sent_since is not None:
        parts.append(
            DigestItem.objects.filter(
                digest__subscriber_id__in=subscriber_ids, paper__listed_on__gte=sent_since
            )
            .order_by()
            .values_list("digest__subscriber_id", Value("sent"), "paper_id", Value(0), text, text)
        )
    rows = topics.values_list(
        "interestprofile_id",
        Value("topic"),
        "topic_id",
        Value(0),
        "topic__name",
        "topic__description",
    ).union(*parts, all=True)
    found: dict[int, Signals] = defaultdict(Signals)
    sent: dict[int, set[int]] = defaultdict(set)
    for owner, kind, key, value, name, description in rows:
        if kind == "sent":
            sent[owner].add(key)
            continue
        signals = found[owner]
        if kind == "topic":
            signals.topics.append((name, description))
        elif kind == "paper" and key is not None:
            (signals.liked if value > 0 else signals.disliked).add(key)
        elif kind == "vote":
            signals.votes[key] = value
        elif kind == "click":
            signals.clicked.add(key)
    return found, sent


def interests_of(
    profile: InterestProfile,
    size: int,
    signals: Signals,
    model: ranking.Model,
    seen: frozenset[int],
) -> ranking.Interests:
    """The ranking's view of one profile: the interests given, plus what its reader did with
    the papers picked for it: "more like this" and clicked papers count as liked, "less like
    this" as disliked (the latest vote on a paper wins over a click and over the lists).
    Papers are the model's own."""
    votes = signals.votes
    liked = signals.liked | signals.clicked | {key for key, vote in votes.items() if vote > 0}
    disliked = signals.disliked | {key for key, vote in votes.items() if vote < 0}
    return ranking.Interests(
        about=profile.about,
        topics=sorted(signals.topics),
        keywords=list(profile.keywords),
        liked=model.texts(sorted(k for k in liked if votes.get(k, 1) > 0)),
        disliked=model.texts(sorted(k for k in disliked if votes.get(k, -1) < 0)),
        excluded_keywords=list(profile.excluded_keywords),
        authors=list(profile.authors),
        trending_weight=profile.trending_weight,
        size=size,
        seen=seen,
    )


class Plan(list[ranking.Pick]):
    """A subscriber's next digest: the picks in order, the profile each was picked for, the
    names of the other profiles each matched too, and what was weighed: the new papers
    ``considered`` and how many ``matched`` (None until ``plan_digests`` counts them)."""

    def __init__(self, picks: Iterable[ranking.Pick] = (), profiles: dict[int, int] | None = None):
        super().__init__(picks)
        self.profile_of: dict[int, int] = profiles or {}
        self.also_for: dict[int, list[str]] = {}
        self.considered: int | None = None
        self.matched: int | None = None


def merge_profiles(ranked: Sequence[tuple[int, list[ranking.Pick]]], size: int) -> Plan:
    """One digest from the picks of a subscriber's profiles (``(profile id, picks)`` in the
    profiles' order): each paper once, for the profile that wanted it most (a followed
    author's paper before a match, then the better score). Followed authors' papers come
    first (at most ``size``, they are always shown), then the matches, the profiles taking
    turns best first, up to ``size``."""
    if len(ranked) == 1:  # nearly everyone: nothing to merge
        profile_id, picks = ranked[0]
        return Plan(picks, dict.fromkeys((p.key for p in picks), profile_id))
    authors = ranking.Section.AUTHORS
    best: dict[int, tuple[bool, float, int]] = {}
    for profile_id, picks in ranked:
        for pick in picks:
            claim = (pick.section == authors, pick.score, profile_id)
            if pick.key not in best or claim[:2] > best[pick.key][:2]:
                best[pick.key] = claim
    kept = [[p for p in picks if best[p.key][2] == profile_id] for profile_id, picks in ranked]

    def in_turns(section_is_authors: bool) -> list[ranking.Pick]:
        queues = [[p for p in q if (p.section == authors) == section_is_authors] for q in kept]
        return [p for turn in zip_longest(*queues) for p in turn if p is not None][:size]

    merged = in_turns(True) + in_turns(False)
    return Plan(merged, {p.key: best[p.key][2] for p in merged})


def plan_digests(subscribers: list[Subscriber], now: datetime) -> dict[int, Plan]:
    """Pick the papers of each subscriber's next digest. Reads, never writes.

    Three queries for the whole list: the candidates (with the catalogue's state), the
    subscribers' profiles, and their signals together with the papers already sent;
    subscribers come from ``for_planning``. Every profile of the chunk is one row of the same
    ranking.
    """
    if not subscribers:
        return {}
    oldest = now - timedelta(days=max(window_days(s) for s in subscribers))
    candidates = list(
        Paper.objects.filter(listed_on__gte=oldest.date())
        .annotate(**catalogue_state())
        .trending(now)
    )
    if not candidates:
        return {s.id: Plan() for s in subscribers}
    first: Any = candidates[0]  # every row carries the catalogue's state
    model = catalogue_model((first.catalogue_size, first.catalogue_changed))
    ids = [s.id for s in subscribers]
    profiles = list(InterestProfile.objects.filter(subscriber_id__in=ids).order_by("slot", "id"))
    signals, seen = signals_of(ids, oldest.date())
    # Candidates: listed since the previous digest, within the frequency's window. A chunk's
    # subscribers share a handful of such dates, so the papers before each are found once.
    listed_before: dict[date, set[int]] = {}
    since_of: dict[int, date] = {}
    candidate_ids = {p.id for p in candidates}
    for subscriber in subscribers:
        last_sent = getattr(subscriber, "last_sent", None)
        since = max(
            (now - timedelta(days=window_days(subscriber))).date(),
            (last_sent or now - timedelta(days=366)).date(),
        )
        since_of[subscriber.id] = since
        if since not in listed_before:
            listed_before[since] = {
                p.id for p in candidates if p.listed_on is None or p.listed_on < since
            }
        seen[subscriber.id] |= listed_before[since]
    by_id = {s.id: s for s in subscribers}
    never = {s.id: frozenset(seen[s.id]) for s in subscribers}
    picks = ranking.rank_chunk(
        model,
        [paper_text(p, now) for p in candidates],
        [
            interests_of(
                p,
                by_id[p.subscriber_id].digest_size,
                signals[p.id],
                model,
                never[p.subscriber_id],
            )
            for p in profiles
        ],
        floor=settings.DIGEST_RELEVANCE_FLOOR,
    )
    ranked: dict[int, list[tuple[int, ranking.Picks]]] = defaultdict(list)
    for profile, profile_picks in zip(profiles, picks, strict=True):
        ranked[profile.subscriber_id].append((profile.id, profile_picks))
    names = {p.id: p.name for p in profiles}
    plans = {}
    for subscriber in subscribers:
        plan = merge_profiles(ranked[subscriber.id], subscriber.digest_size)
        count_and_name(plan, ranked[subscriber.id], names)
        sent = seen[subscriber.id] - listed_before[since_of[subscriber.id]]
        plan.considered = (
            len(candidates)
            - len(listed_before[since_of[subscriber.id]])
            - len(sent & candidate_ids)
        )
        if not plan and settings.DIGEST_WHEN_NOTHING_MATCHES == "trending":
            fallback = Plan(top_trending(candidates, seen[subscriber.id], NOTHING_MATCHED_SIZE))
            fallback.considered, fallback.matched = plan.considered, 0
            plan = fallback
        plans[subscriber.id] = plan
    return plans


# The "nothing matched" email is short: a few trending papers, and a way to broaden the profile.
NOTHING_MATCHED_SIZE = 5


def count_and_name(
    plan: Plan, ranked: Sequence[tuple[int, ranking.Picks]], names: dict[int, str]
) -> None:
    """Set ``plan.matched`` (the papers any profile matched, counted once) and, for a reader
    with several profiles, ``plan.also_for``: the other profiles each pick matched too."""
    if len(ranked) <= 1:
        plan.matched = sum(len(picks.matched) for _, picks in ranked)
        return
    matched = {profile_id: set(picks.matched.tolist()) for profile_id, picks in ranked}
    plan.matched = len(set().union(*matched.values()))
    for pick in plan:
        owner = plan.profile_of.get(pick.key)
        others = [names[p] for p, keys in matched.items() if p != owner and pick.key in keys]
        if others:
            plan.also_for[pick.key] = others


def compose_chunk(subscriber_ids: list[int], now: datetime | None = None) -> list[int]:
    """Compose the digests of a chunk of claimed subscribers; return the ids of all digests of
    these subscribers waiting to be sent.

    Ten queries whatever the chunk's size (BEGIN and COMMIT included). Only subscribers
    still active and still claimed are composed, so a redelivered task composes nothing
    twice (and the (subscriber, period) constraint backs that up); it only finds the digests
    to send.
    """
    now = now or timezone.now()
    subscribers = list(
        for_planning(
            Subscriber.objects.filter(
                id__in=subscriber_ids, status=Status.ACTIVE, claimed_at__isnull=False
            )
        )
    )
    periods = {s.id: period_of(s, s.next_digest_at or now) for s in subscribers}
    done = set()
    waiting = []  # digests of the chunk already composed and still queued (a redelivery)
    for digest_id, subscriber_id, period, status in Digest.objects.filter(
        Q(period__in=set(periods.values())) | Q(status=Digest.Status.QUEUED),
        subscriber_id__in=subscriber_ids,
    ).values_list("id", "subscriber_id", "period", "status"):
        done.add((subscriber_id, period))
        if status == Digest.Status.QUEUED:
            waiting.append(digest_id)
    fresh = [s for s in subscribers if (s.id, periods[s.id]) not in done]
    plans = plan_digests(fresh, now)
    with transaction.atomic():
        digests = [
            Digest(
                subscriber_id=subscriber.id,
                period=periods[subscriber.id],
                created=now,
                status=Digest.Status.QUEUED if plans[subscriber.id] else Digest.Status.SKIPPED,
                note=NOTHING_MATCHED if nothing_but_trending(plans[subscriber.id]) else "",
                considered=plans[subscriber.id].considered,
                matched=plans[subscriber.id].matched,
            )
            for subscriber in fresh
        ]
        Digest.objects.bulk_create(digests)
        DigestItem.objects.bulk_create(items_of(digests, plans))
        reschedule({s.id: s.next_send_after(now) for s in subscribers})
    return sorted(waiting + [d.id for d in digests if d.status == Digest.Status.QUEUED])


def items_of(digests: list[Digest], plans: dict[int, Plan]) -> Iterable[DigestItem]:
    """The items of freshly created ``digests`` (by subscriber) from their plans."""
    for digest in digests:
        plan = plans[digest.subscriber_id or 0]
        for rank, pick in enumerate(plan, 1):
            profile_id = plan.profile_of.get(pick.key)
            yield DigestItem.of_pick(digest.id, rank, pick, profile_id, plan.also_for.get(pick.key))


def reschedule(next_at: dict[int, datetime]) -> None:
    """Set each subscriber's next send time and release their claim, in one statement (Django's
    ``bulk_update`` builds a CASE per row and field, which cost more than composing)."""
    if not next_at:
        return
    table = connection.ops.quote_name(Subscriber._meta.db_table)
    field = Subscriber._meta.get_field("next_digest_at")
    rows = ", ".join(["(%s, %s)"] * len(next_at))
    params: list[Any] = []
    for subscriber_id, at in next_at.items():
        params += [subscriber_id, field.get_db_prep_value(at, connection)]
    with connection.cursor() as cursor:
        # VALUES names its columns column1, column2 on PostgreSQL and SQLite alike.
        cursor.execute(
            f"UPDATE {table} SET next_digest_at = v.column2, claimed_at = NULL "
            f"FROM (VALUES {rows}) AS v WHERE {table}.id = v.column1",
            params,
        )


T = TypeVar("T")
# A preview's digest row, rolled back: two previews of one reader wait for each other's rollback.
PREVIEW_PERIOD = "preview"


def preview(subscriber: Subscriber, show: Callable[[Digest], T], now: datetime | None = None) -> T:
    """What ``show`` makes of ``subscriber``'s next digest, composed by the code real digests
    use, inside a transaction that is rolled back: nothing is recorded and nothing is sent.
    The admin's preview and test send show the email; the reader's manage page, its papers.
    An empty digest (nothing at all to send) is shown as one."""
    now = now or timezone.now()
    reader = for_planning(Subscriber.objects.filter(pk=subscriber.pk)).get()
    plan = plan_digests([reader], now)[reader.pk]
    with transaction.atomic():
        # Never the real period: a worker may have inserted that period's digest and not yet
        # committed, which no check here can see (the insert would then fail). The candidates
        # come from the reader's schedule (plan_digests), not from this row.
        digest = Digest.objects.create(
            subscriber=reader,
            period=PREVIEW_PERIOD,
            created=now,
            considered=plan.considered,
            matched=plan.matched,
            note=NOTHING_MATCHED if nothing_but_trending(plan) else "",
        )
        DigestItem.objects.bulk_create(items_of([digest], {reader.pk: plan}))
        digest = Digest.objects.prefetch_related(*TO_RENDER).get(pk=digest.pk)
        digest.period = period_of(reader, reader.next_digest_at or now)  # as the email says it
        shown = show(digest)
        transaction.set_rollback(True)
    return shown


def nothing_but_trending(plan: Plan) -> bool:
    return any(p.section == ranking.Section.TRENDING for p in plan)


NOTHING_MATCHED = "Nothing matched your interests closely; here are the top trending papers."


def top_trending(papers: list[Paper], seen: set[int], size: int) -> list[ranking.Pick]:
    """The fallback when nothing passes the relevance floor (``DIGEST_WHEN_NOTHING_MATCHES``)."""
    fresh = [p for p in papers if p.id not in seen][:size]  # papers arrive best first
    return [
        ranking.Pick(p.id, p.trending, 0.0, TRENDING_REASON, ranking.Section.TRENDING)
        for p in fresh
    ]


# --- Sending ------------------------------------------------------------------------------------


# What rendering a digest reads, for a batch of digests: their items in order, and each paper
# once (a round's digests share a few hundred papers; joining them per item loaded thousands).
TO_RENDER = (
    Prefetch("items", queryset=DigestItem.objects.order_by("rank").select_related("profile")),
    "items__paper",
)


def classify(exc: Exception) -> bool:
    """True when a send error is worth retrying (4xx SMTP, 5xx/429 API, network)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(400 <= code < 500 for code, _ in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    if isinstance(exc, AnymailRecipientsRefused):
        return False
    if isinstance(exc, AnymailAPIError):
        status = getattr(exc, "status_code", None)
        return status is None or status >= 500 or status == 429
    return isinstance(exc, OSError | smtplib.SMTPException)


@dataclass
class SendResult:
    sent: int = 0
    failed: int = 0
    cancelled: int = 0
    retry: list[int] = field(default_factory=list)  # digest ids put back in the queue


def send_queued(digest_ids: list[int]) -> SendResult:
    """Send the queued digests among ``digest_ids`` over one connection, each at most once."""
    from newsletter.emails import digest_email

    result = SendResult()
    digests = list(
        Digest.objects.filter(id__in=digest_ids, status=Digest.Status.QUEUED)
        .select_related("subscriber")
        .prefetch_related(*TO_RENDER)
    )
    if not digests:
        return result
    domain = urlsplit(settings.SITE_URL).hostname or "localhost"
    mail = get_connection()
    try:
        for digest in digests:
            time.sleep(throttle.reserve())  # the provider's rate, across all workers
            this = Digest.transitions.filter(id=digest.id)
            if not Digest.transitions.hand_off(digest.id):
                result.cancelled += this.cancel()
                continue
            message = digest_email(digest)
            message.extra_headers["Message-ID"] = make_msgid("digest", domain=domain)
            message.metadata = {"digest_id": str(digest.id)}  # type: ignore[attr-defined]
            try:
                mail.open()  # no-op while open; reopens after a dropped session
                mail.send_messages([message])
            except Exception as exc:
                if not classify(exc):
                    result.failed += this.refused(str(exc))
                    continue
                this.put_back(str(exc))
                result.retry.append(digest.id)
                mail.close()  # a 421 or a dropped link leaves the session unusable
                continue
            status = getattr(message, "anymail_status", None)
            # Recorded at once, not at the end of the chunk: a worker killed mid-chunk leaves
            # at most this one digest in "sending" (see ``DigestQuerySet.interrupted``).
            Digest.transitions.record_sent(
                digest.id, (status and status.message_id) or message.extra_headers["Message-ID"]
            )
            result.sent += 1
    finally:
        mail.close()
    return result
