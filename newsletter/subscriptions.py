"""Subscribing and leaving: signup with double opt-in, preferences, unsubscribe, export, erasure.

Views and tasks stay thin and call these functions, which tests call directly too.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery
from django.urls import reverse
from django.utils import timezone

from newsletter import emails
from newsletter.forms import CONSENT_VERSION, LibraryUpload, LikedPaper
from newsletter.models import (
    ConsentRecord,
    DeliveryEvent,
    Digest,
    InterestProfile,
    Library,
    OwedEmail,
    ProfilePaper,
    Subscriber,
    lease_start,
    new_feed_key,
)
from papers.library import Entry, frequent_authors
from papers.models import Paper

Status = Subscriber.Status


def rate_limited(ip: str | None, email: str) -> str | None:
    """Count this attempt; once an IP or an address has tried too often, say which
    ("ip" or "address"), else None."""
    address = hashlib.sha256(email.encode()).hexdigest()[:32]  # no addresses in the cache
    limits = [
        ("ip", f"signup:ip:{ip}", settings.NEWSLETTER_SIGNUPS_PER_IP, 600),
        ("address", f"signup:address:{address}", settings.NEWSLETTER_SIGNUPS_PER_ADDRESS, 3600),
    ]
    over = None
    for name, key, limit, window in limits:
        cache.add(key, 0, window)
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, window)
            count = 1
        if count > limit:
            over = over or name
    return over


# The fields a reader's preferences set on their row; status and schedule change elsewhere.
SCHEDULE = ["frequency", "weekday", "send_hour", "timezone", "digest_size"]


def apply_preferences(
    subscriber: Subscriber, data: dict[str, Any], profile: InterestProfile | None = None
) -> None:
    """Copy cleaned form data onto the subscriber (schedule, size) and ``profile`` (else their
    first; interests), all or nothing. Liked papers the catalogue lacks are fetched once the
    subscriber is active (``fetch_liked_papers``)."""
    with transaction.atomic():
        for name in SCHEDULE:
            if name in data:
                setattr(subscriber, name, data[name])
        # ``subscriber`` was loaded when the request began: a one-click unsubscribe, bounce or
        # complaint may have stopped their mail since. Write only the schedule, and reschedule
        # only while the row (not this copy) says active, so a stop is never undone here.
        subscriber.save(update_fields=None if subscriber._state.adding else SCHEDULE)
        next_digest_at = subscriber.next_send_after(timezone.now())
        active = Subscriber.objects.filter(pk=subscriber.pk, status=Status.ACTIVE).update(
            next_digest_at=next_digest_at
        )
        if active:
            subscriber.next_digest_at = next_digest_at
        profile = (
            profile or subscriber.profiles.first() or InterestProfile(subscriber=subscriber, slot=1)
        )
        apply_interests(profile, data)
        if active:
            fetch_liked_papers([subscriber.pk])


def apply_interests(profile: InterestProfile, data: dict[str, Any]) -> None:
    """Copy cleaned form data (the fields it has) onto ``profile`` and save it."""
    fields = ("name", "about", "keywords", "excluded_keywords", "authors", "trending_weight")
    for name in fields:
        if name in data:
            setattr(profile, name, data[name])
    profile.save()
    if "topics" in data:
        profile.topics.set(data["topics"])
    if "liked" in data:
        set_papers(profile, ProfilePaper.LIKED, data["liked"])
    if data.get("library"):
        set_library(profile, data["library"])


def set_papers(
    profile: InterestProfile,
    opinion: int,
    chosen: list[LikedPaper],
    library: Library | None = None,
) -> None:
    """Make ``chosen`` the profile's liked (or disliked) papers named by the reader (or those of
    its uploaded ``library``); naming a paper the profile had the other opinion of changes its
    mind. A library's paper the reader also named is the reader's."""
    given = [c.ref.given[:500] for c in chosen]
    if library is None:
        mine = Q(opinion=opinion, library__isnull=True)
        profile.papers.filter(mine | Q(ref__in=given)).delete()
    else:
        named = {(p.ref, p.arxiv_id) for p in profile.papers.filter(library__isnull=True)}
        taken = {ref for ref, _ in named} | {arxiv_id for _, arxiv_id in named if arxiv_id}
        pairs = [
            (ref, c)
            for ref, c in zip(given, chosen, strict=True)
            if ref not in taken and c.ref.arxiv_id not in taken
        ]
        given, chosen = [ref for ref, _ in pairs], [c for _, c in pairs]
    ProfilePaper.objects.bulk_create(
        ProfilePaper(
            profile=profile,
            opinion=opinion,
            ref=ref,
            arxiv_id=c.ref.arxiv_id or (c.paper and c.paper.arxiv_id) or "",
            paper=c.paper,
            library=library,
        )
        for ref, c in zip(given, chosen, strict=True)
    )


def set_library(profile: InterestProfile, upload: LibraryUpload) -> Library:
    """Make ``upload`` the profile's library, replacing any earlier one and its liked papers."""
    Library.objects.filter(profile=profile).delete()  # its papers go with it
    library = Library.objects.create(
        profile=profile,
        filename=upload.filename,
        entries=[e.as_json() for e in upload.entries],
    )
    set_papers(profile, ProfilePaper.LIKED, upload.liked, library)
    return library


def remove_library(profile: InterestProfile) -> bool:
    """Forget the profile's uploaded library and the papers it liked; False if it had none."""
    return Library.objects.filter(profile=profile).delete()[0] > 0


def suggested_authors(profile: InterestProfile, limit: int = 10) -> list[str]:
    """The most frequent authors of the profile's library it does not follow yet."""
    library = Library.objects.filter(profile=profile).first()
    if library is None:
        return []
    followed = {name.casefold() for name in profile.authors}
    entries = [Entry.from_json(e) for e in library.entries]
    return [a for a in frequent_authors(entries, limit * 2) if a.casefold() not in followed][:limit]


def follow_authors(profile: InterestProfile, names: list[str]) -> list[str]:
    """Follow ``names`` too (those the library suggested); the names newly followed."""
    from newsletter.forms import MAX_AUTHORS

    offered = set(suggested_authors(profile, limit=MAX_AUTHORS))
    new = [n for n in dict.fromkeys(names) if n in offered]
    new = new[: max(MAX_AUTHORS - len(profile.authors), 0)]
    if new:
        profile.authors = [*profile.authors, *new]
        profile.save(update_fields=["authors"])
    return new


def add_profile(subscriber: Subscriber, name: str) -> InterestProfile | None:
    """A new, empty profile in the first free slot; None when the subscriber has five."""
    with transaction.atomic():
        Subscriber.objects.select_for_update().filter(pk=subscriber.pk).first()
        taken = set(subscriber.profiles.values_list("slot", flat=True))
        free = [n for n in range(1, InterestProfile.MAX_PER_SUBSCRIBER + 1) if n not in taken]
        if not free:
            return None
        return InterestProfile.objects.create(subscriber=subscriber, slot=free[0], name=name)


def delete_profile(profile: InterestProfile) -> bool:
    """Delete a profile, never the subscriber's last one; False when it was the last."""
    with transaction.atomic():
        Subscriber.objects.select_for_update().filter(pk=profile.subscriber_id).first()
        if InterestProfile.objects.filter(subscriber_id=profile.subscriber_id).count() <= 1:
            return False
        return InterestProfile.objects.filter(pk=profile.pk).delete()[0] > 0


def reset_feed(subscriber: Subscriber) -> None:
    """A new private feed URL; the old one answers 404 from now on."""
    subscriber.feed_key = new_feed_key()
    subscriber.save(update_fields=["feed_key"])


def fetch_liked_papers(subscriber_ids: list[int]) -> list[str]:
    """Link the subscribers' liked and disliked papers that have arrived in the catalogue, and
    ask a worker to fetch the others (after the transaction commits). The arXiv ids asked."""
    from papers.tasks import fetch_papers

    waiting = ProfilePaper.objects.filter(
        profile__subscriber_id__in=subscriber_ids, paper__isnull=True
    ).exclude(arxiv_id="")
    arrived = Paper.objects.filter(arxiv_id=OuterRef("arxiv_id")).values("id")[:1]
    waiting.filter(Exists(arrived)).update(paper_id=Subquery(arrived))
    missing = sorted(set(waiting.filter(paper__isnull=True).values_list("arxiv_id", flat=True)))
    if missing:
        transaction.on_commit(lambda: fetch_papers.delay(missing))
    return missing


def signup(data: dict[str, Any], ip: str | None, user_agent: str) -> tuple[int, str]:
    """Handle a signup form; the subscriber and the email to send them (for
    ``tasks.queue_subscription_email``). The visitor sees the same page whatever happens here,
    so the form never tells whether an address is subscribed.

    New or lapsed address: pending, with the submitted preferences, and a confirmation email.
    Pending: the latest preferences and the confirmation again. Active or paused: only a
    "manage your subscription" email; an anonymous form never changes their preferences.
    """
    try:
        subscriber, transactional_email = record_signup(data, ip, user_agent)
    except IntegrityError:
        # The same new address was signed up by another request at the same moment: its row
        # exists now, so this try finds and locks it.
        subscriber, transactional_email = record_signup(data, ip, user_agent)
    return subscriber.pk, transactional_email


@transaction.atomic
def record_signup(data: dict[str, Any], ip: str | None, user_agent: str) -> tuple[Subscriber, str]:
    """The rows of a signup (see ``signup``), and which email it calls for, recorded as owed
    with them: if its task never reaches the broker, a dispatch round queues it again."""
    subscriber = Subscriber.objects.select_for_update().with_address(data["email"]).first()
    if subscriber and subscriber.status in (Status.ACTIVE, Status.PAUSED):
        owe_email(subscriber.pk, "manage-link")
        return subscriber, "manage-link"
    subscriber = subscriber or Subscriber(email=data["email"])
    subscriber.status = Status.PENDING
    subscriber.next_digest_at = None
    if subscriber.pk:  # locked above; a new address's row is inserted by apply_preferences
        subscriber.save(update_fields=["status", "next_digest_at"])
    apply_preferences(subscriber, data)
    record_consent(subscriber, ConsentRecord.Kind.SIGNUP, ip, user_agent)
    owe_email(subscriber.pk, "confirm")
    return subscriber, "confirm"


# Which subscription email applies to which state: by the time a worker sends one, the reader
# may have confirmed already, or left.
EMAIL_WHILE = {"confirm": [Status.PENDING], "manage-link": [Status.ACTIVE, Status.PAUSED]}
# An owed email no worker has claimed this long after it was asked for lost its task (the
# broker was down, or a worker died): a dispatch round queues it again.
OWED_EMAIL_GRACE = timedelta(minutes=2)


def unclaimed(now: datetime) -> Q:
    """Owed emails no worker holds: never claimed, or claimed by one whose lease ran out."""
    return Q(claimed_at__isnull=True) | Q(claimed_at__lte=lease_start(now))


def owe_email(subscriber_id: int, name: str) -> None:
    """Record that the subscriber is owed the email ``name``. One already owed stays as it is:
    the email on its way answers this request too."""
    OwedEmail.objects.bulk_create(
        [OwedEmail(subscriber_id=subscriber_id, name=name)], ignore_conflicts=True
    )


def owed_emails(now: datetime, limit: int) -> list[tuple[int, str]]:
    """Owed emails whose task was lost, oldest first: (subscriber id, name) for ``send_email``."""
    lost = OwedEmail.objects.filter(unclaimed(now), owed_since__lt=now - OWED_EMAIL_GRACE)
    return list(lost.order_by("owed_since").values_list("subscriber_id", "name")[:limit])


def send_email(subscriber_id: int, name: str) -> str:
    """Send a subscription email if it is owed and still applies; what was done (for logs and
    tests). The owed row is claimed first, so a second delivery of the task, or a dispatch
    round's, finds it claimed or gone and sends nothing; it is deleted once the server has
    the email. A worker dying between the two leaves the claim to expire (``lease_start``)
    and the email is sent again: for a confirmation, twice is better than never.
    A send error releases the claim and is raised."""
    now = timezone.now()
    owed = OwedEmail.objects.filter(subscriber_id=subscriber_id, name=name)
    if not owed.filter(unclaimed(now)).update(claimed_at=now):
        return "not owed"  # sent already, being sent, or its subscriber erased
    mine = owed.filter(claimed_at=now)
    subscriber = Subscriber.objects.filter(pk=subscriber_id, status__in=EMAIL_WHILE[name]).first()
    if subscriber is None:
        mine.delete()
        return "no longer applies"
    context = {"confirm_url": confirm_url(subscriber)} if name == "confirm" else {}
    try:
        emails.build_email(name, subscriber, context, transactional=True).send()
    except BaseException:
        mine.update(claimed_at=None)
        raise
    mine.delete()
    return "sent"


def postpone_email(subscriber_id: int, name: str, seconds: float) -> None:
    """Keep an owed email claimed until its retry is due in ``seconds``, so that no dispatch
    round queues it again meanwhile (the claim expires when the retry is due)."""
    expires_at = timezone.now() + timedelta(seconds=seconds)
    claimed_at = lease_start(expires_at)  # a claim made then expires then
    OwedEmail.objects.filter(subscriber_id=subscriber_id, name=name).update(claimed_at=claimed_at)


def forgive_email(subscriber_id: int, name: str) -> None:
    """The email cannot be sent (the server refused the address for good): no one tries again."""
    OwedEmail.objects.filter(subscriber_id=subscriber_id, name=name).delete()


def record_consent(subscriber: Subscriber, kind: str, ip: str | None, user_agent: str) -> None:
    """Keep proof of consent: what was agreed to (the text's version), when, from where."""
    ConsentRecord.objects.create(
        subscriber=subscriber,
        kind=kind,
        ip=ip,
        user_agent=user_agent[:500],
        consent_version=CONSENT_VERSION,
    )


def confirm_url(subscriber: Subscriber) -> str:
    token = emails.sign(subscriber.id, "confirm")
    return emails.absolute(reverse("confirm", args=[token]))


def confirm(subscriber: Subscriber, ip: str | None, user_agent: str) -> bool:
    """Activate a pending subscription and schedule its first digest; False if not pending."""
    with transaction.atomic():
        updated = Subscriber.objects.filter(pk=subscriber.pk, status=Status.PENDING).update(
            status=Status.ACTIVE, confirmed_at=timezone.now()
        )
        if not updated:
            return False
        subscriber.refresh_from_db()
        subscriber.schedule_first_digest()
        subscriber.save(update_fields=["next_digest_at"])
        fetch_liked_papers([subscriber.pk])
        record_consent(subscriber, ConsentRecord.Kind.CONFIRM, ip, user_agent)
    return True


def unsubscribe(subscriber: Subscriber) -> bool:
    """Stop all mail at once, queued digests included; False if mail had stopped already."""
    return bool(Subscriber.objects.filter(pk=subscriber.pk).stop_mail(Status.UNSUBSCRIBED))


def resubscribe(subscriber: Subscriber, ip: str | None, user_agent: str) -> bool:
    """Subscribe an unsubscribed reader again, from their own manage link (which proves the
    address is theirs) and with their consent recorded; False if not unsubscribed."""
    with transaction.atomic():
        updated = Subscriber.objects.filter(pk=subscriber.pk, status=Status.UNSUBSCRIBED).update(
            status=Status.ACTIVE, unsubscribed_at=None
        )
        if not updated:
            return False
        subscriber.refresh_from_db()
        subscriber.schedule_first_digest()
        subscriber.save(update_fields=["next_digest_at"])
        record_consent(subscriber, ConsentRecord.Kind.RESUBSCRIBE, ip, user_agent)
    return True


def pause(subscriber: Subscriber) -> None:
    pause_all(Subscriber.objects.filter(pk=subscriber.pk))


def pause_all(subscribers: QuerySet[Subscriber]) -> int:
    """Pause the active ones among ``subscribers`` in one update; how many were paused."""
    return subscribers.filter(status=Status.ACTIVE).update(
        status=Status.PAUSED, next_digest_at=None
    )


def resume(subscriber: Subscriber) -> bool:
    """Resume a paused subscriber and schedule their next digest; False if not paused (an
    unsubscribe that lands meanwhile wins: the update only touches a row still paused)."""
    subscriber.refresh_from_db()
    next_digest_at = subscriber.next_send_after(timezone.now())
    resumed = Subscriber.objects.filter(pk=subscriber.pk, status=Status.PAUSED).update(
        status=Status.ACTIVE, next_digest_at=next_digest_at
    )
    if resumed:
        subscriber.status, subscriber.next_digest_at = Status.ACTIVE, next_digest_at
    return bool(resumed)


def export_data(subscriber: Subscriber) -> dict[str, Any]:
    """Everything held about the subscriber, as JSON-ready data."""
    digests = Digest.objects.filter(subscriber=subscriber).prefetch_related("items__paper")
    profiles = subscriber.profiles.select_related("library").prefetch_related(
        "topics", "papers__paper"
    )
    return {
        "email": subscriber.email,
        "status": subscriber.status,
        "created": subscriber.created.isoformat(),
        "confirmed_at": subscriber.confirmed_at and subscriber.confirmed_at.isoformat(),
        "unsubscribed_at": subscriber.unsubscribed_at and subscriber.unsubscribed_at.isoformat(),
        "schedule": {
            "frequency": subscriber.frequency,
            "weekday": subscriber.get_weekday_display(),
            "send_hour": subscriber.send_hour,
            "timezone": subscriber.timezone,
            "next_digest_at": subscriber.next_digest_at and subscriber.next_digest_at.isoformat(),
        },
        "digest_size": subscriber.digest_size,
        "profiles": [export_profile(p) for p in profiles],
        "consent_records": [
            {
                "kind": c.kind,
                "at": c.at.isoformat(),
                "ip": c.ip,
                "user_agent": c.user_agent,
                "consent_version": c.consent_version,
            }
            for c in subscriber.consents.all()
        ],
        "digests": [
            {
                "period": d.period,
                "status": d.status,
                "sent_at": d.sent_at and d.sent_at.isoformat(),
                "papers": [
                    {"title": i.paper.title, "arxiv_id": i.paper.arxiv_id, "reason": i.reason}
                    for i in d.items.all()
                ],
            }
            for d in digests
        ],
        "delivery_events": [
            {
                "provider": e.provider,
                "type": e.event_type,
                "at": e.at and e.at.isoformat(),
                "description": e.description,
                "mta_response": e.mta_response,
            }
            for e in delivery_events(subscriber)
        ],
        "clicks": [
            {"paper": c.paper.title, "url": c.url, "at": c.at.isoformat()}
            for c in subscriber.clicks.select_related("paper")
        ],
        "feedback": [
            {"paper": f.paper.title, "vote": f.get_value_display(), "at": f.at.isoformat()}
            for f in subscriber.feedback.select_related("paper")
        ],
    }


def export_profile(profile: InterestProfile) -> dict[str, Any]:
    library = getattr(profile, "library", None)

    def papers(opinion: int) -> list[dict[str, Any]]:
        return [
            {
                "as_given": p.ref,
                "arxiv_id": p.arxiv_id or None,
                "title": p.paper.title if p.paper else None,
                "from_uploaded_library": p.library_id is not None,
            }
            for p in profile.papers.all()
            if p.opinion == opinion
        ]

    return {
        "name": profile.name,
        "what_you_work_on": profile.about,
        "topics": [t.name for t in profile.topics.all()],
        "keywords": profile.keywords,
        "excluded_keywords": profile.excluded_keywords,
        "liked_papers": papers(ProfilePaper.LIKED),
        "disliked_papers": papers(ProfilePaper.DISLIKED),
        "followed_authors": profile.authors,
        "trending_weight": profile.trending_weight,
        "uploaded_library": library
        and {
            "file": library.filename,
            "uploaded_at": library.uploaded_at.isoformat(),
            "references": library.entries,
        },
    }


def delivery_events(subscriber: Subscriber) -> QuerySet[DeliveryEvent]:
    return DeliveryEvent.objects.filter(
        Q(digest__subscriber=subscriber) | Q(recipient__iexact=subscriber.email)
    ).order_by("received")


@transaction.atomic
def erase(subscriber: Subscriber) -> None:
    """Delete the subscriber and everything personal. Digests and delivery events stay as
    anonymous counts (no subscriber, no address); consent records, interest profiles (with
    their liked papers, followed authors and uploaded libraries), clicks and feedback go with
    the row."""
    Subscriber.objects.filter(pk=subscriber.pk).stop_mail(Status.UNSUBSCRIBED)
    delivery_events(subscriber).update(recipient="", mta_response="", description="")
    subscriber.delete()


def purge_unconfirmed(now: datetime | None = None) -> int:
    """Delete signups never confirmed within ``NEWSLETTER_PURGE_PENDING_AFTER_DAYS``."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.NEWSLETTER_PURGE_PENDING_AFTER_DAYS)
    stale = Subscriber.objects.filter(status=Status.PENDING, created__lt=cutoff).exclude(
        consents__at__gte=cutoff  # signed up again recently
    )
    ids = list(stale.values_list("pk", flat=True))
    Subscriber.objects.filter(pk__in=ids).delete()
    return len(ids)
