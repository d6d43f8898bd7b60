import logging
import secrets
from datetime import UTC, datetime, time, timedelta
from functools import cache, lru_cache
from zoneinfo import ZoneInfo, available_timezones

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import connection, models, transaction
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

from papers.models import Paper, Topic
from papers.ranking import Pick, Reason, Section

log = logging.getLogger(__name__)


class SubscriberQuerySet(models.QuerySet["Subscriber"]):
    def with_address(self, address: str) -> "SubscriberQuerySet":
        """The subscriber with ``address``, whatever its case, found through the unique index
        on ``lower(email)`` (``email__iexact`` compares ``upper()`` and reads the whole table)."""
        return self.alias(address=Lower("email")).filter(address=Lower(models.Value(address)))

    def stop_mail(self, status: str) -> int:
        """Stop all mail to these subscribers at once, the one way mail stops: the unsubscribe
        link and page, a provider's bounce, complaint or unsubscribe, and erasure all come
        here. ``status`` is unsubscribed, bounced or complained; the schedule and any claim
        are dropped and queued digests cancelled; a digest already in a worker's hands is
        stopped at hand-off (``Digest.transitions.hand_off`` checks the status again).

        Idempotent. A stopped subscriber keeps the reason they first stopped for, except that
        a complaint overrides an unsubscribe or a bounce. How many changed status."""
        Status = Subscriber.Status
        if status not in Subscriber.STOPPED:
            raise ValueError(f"{status!r} does not stop mail")
        stoppable = [Status.PENDING, Status.ACTIVE, Status.PAUSED]
        if status == Status.COMPLAINED:
            stoppable += [Status.UNSUBSCRIBED, Status.BOUNCED]
        stamp = {"unsubscribed_at": timezone.now()} if status == Status.UNSUBSCRIBED else {}
        with transaction.atomic():
            ids = list(self.values_list("pk", flat=True))
            changed = Subscriber.objects.filter(pk__in=ids, status__in=stoppable).update(
                status=status, next_digest_at=None, claimed_at=None, **stamp
            )
            Digest.transitions.filter(subscriber__in=ids).cancel()
        return changed


@cache
def time_zones() -> frozenset[str]:
    return frozenset(available_timezones())


def validate_time_zone(value: str) -> None:
    if value not in time_zones():
        raise ValidationError(
            "“%(zone)s” is not a time zone we know, e.g. Europe/Paris.", params={"zone": value[:40]}
        )


@lru_cache(maxsize=1024)
def zone_named(name: str) -> ZoneInfo | None:
    """The time zone ``name``, or None if there is none of that name."""
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError):  # ZoneInfoNotFoundError is a KeyError
        return None


def new_feed_key() -> str:
    return secrets.token_urlsafe(12)


class Subscriber(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for confirmation"
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"
        UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
        BOUNCED = "bounced", "Bounced"
        COMPLAINED = "complained", "Complained"

    class Frequency(models.TextChoices):
        DAILY = "daily", "Daily"
        WEEKLY = "weekly", "Weekly"

    class Weekday(models.IntegerChoices):
        MONDAY = 0, "Monday"
        TUESDAY = 1, "Tuesday"
        WEDNESDAY = 2, "Wednesday"
        THURSDAY = 3, "Thursday"
        FRIDAY = 4, "Friday"
        SATURDAY = 5, "Saturday"
        SUNDAY = 6, "Sunday"

    email = models.EmailField(max_length=254)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    frequency = models.CharField(max_length=8, choices=Frequency.choices, default=Frequency.DAILY)
    weekday = models.PositiveSmallIntegerField(
        choices=Weekday.choices, default=Weekday.MONDAY, help_text="For weekly digests."
    )
    send_hour = models.PositiveSmallIntegerField(
        default=8, validators=[MaxValueValidator(23)], help_text="Local hour, 0-23."
    )
    timezone = models.CharField(
        max_length=64, default="UTC", validators=[validate_time_zone], help_text="IANA time zone."
    )
    digest_size = models.PositiveSmallIntegerField(
        default=10, validators=[MinValueValidator(1), MaxValueValidator(30)]
    )
    created = models.DateTimeField(auto_now_add=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)
    next_digest_at = models.DateTimeField(null=True, blank=True)
    # A lease, not a lock: a claim that no task finished expires and is claimed again.
    claimed_at = models.DateTimeField(null=True, blank=True)
    # Part of the private feed's signed token: a new key ("reset the link") revokes the old URL.
    feed_key = models.CharField(max_length=32, default=new_feed_key, editable=False)

    # Statuses in which no mail goes out, ever (until a new signup is confirmed).
    STOPPED = (Status.UNSUBSCRIBED, Status.BOUNCED, Status.COMPLAINED)

    objects = models.Manager.from_queryset(SubscriberQuerySet)()

    class Meta:
        constraints = [models.UniqueConstraint(Lower("email"), name="subscriber_unique_email")]
        indexes = [models.Index(fields=["status", "next_digest_at"], name="subscriber_due")]
        ordering = ["-created"]

    def __str__(self) -> str:
        return self.email

    @property
    def zone(self) -> ZoneInfo:
        zone = zone_named(self.timezone)
        if zone is None:
            # Saved before the field was validated: one reader's bad zone must not fail a
            # chunk of digests (every lease again), so their digests follow UTC until fixed.
            log.warning(
                "Subscriber %s has an unknown time zone %r; using UTC", self.pk, self.timezone[:64]
            )
            return ZoneInfo("UTC")
        return zone

    def next_send_after(self, moment: datetime) -> datetime:
        """The first send time strictly after ``moment``, in UTC.

        Computed on the local calendar, so the digest keeps its local hour across daylight
        saving changes; an hour skipped by a spring-forward change falls on the next one.
        """
        zone = self.zone
        local = moment.astimezone(zone)
        day = local.date()
        for _ in range(15):
            candidate = datetime.combine(day, time(self.send_hour), tzinfo=zone)
            # Round trip through UTC normalises a non-existent (skipped) local time.
            candidate = candidate.astimezone(UTC).astimezone(zone)
            weekday_ok = self.frequency == self.Frequency.DAILY or day.weekday() == self.weekday
            if weekday_ok and candidate > local:
                return candidate.astimezone(UTC)
            day += timedelta(days=1)
        raise AssertionError("unreachable: a week always has the chosen weekday")

    def schedule_first_digest(self, now: datetime | None = None) -> None:
        self.next_digest_at = self.next_send_after(now or timezone.now())


class InterestProfile(models.Model):
    """One of a subscriber's interests, ranked on its own: a subscriber has one to five.

    Every subscriber gets one at signup (and the data migration gave one to every earlier
    subscriber); ``slot`` (1-5, unique per subscriber) caps them at five in the database.
    """

    MAX_PER_SUBSCRIBER = 5
    MAX_ABOUT_LENGTH = 1000
    DEFAULT_NAME = "My interests"

    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="profiles")
    slot = models.PositiveSmallIntegerField(
        default=1, help_text="1 to 5: the profile's place among the subscriber's profiles."
    )
    name = models.CharField(max_length=60, default=DEFAULT_NAME)
    about = models.TextField(
        "what they work on", max_length=MAX_ABOUT_LENGTH, blank=True, help_text="In their words."
    )
    topics = models.ManyToManyField(Topic, blank=True, related_name="profiles")
    keywords = models.JSONField(default=list, blank=True, help_text="Words or phrases.")
    excluded_keywords = models.JSONField(default=list, blank=True)
    authors = models.JSONField(
        "followed authors", default=list, blank=True, help_text="Names, as the reader typed them."
    )
    trending_weight = models.FloatField(
        default=0.2,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="0 picks by relevance alone, 1 by trending alone.",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["subscriber", "slot"], name="profile_slot_once"),
            models.CheckConstraint(
                condition=models.Q(slot__gte=1, slot__lte=5), name="profile_at_most_five"
            ),
        ]
        ordering = ["subscriber", "slot"]

    def __str__(self) -> str:
        return self.name

    def refs(self, opinion: int) -> list[str]:
        """The REFs of the papers liked (``ProfilePaper.LIKED``) or disliked, as given; reads
        ``papers`` (prefetch it for many profiles)."""
        return [p.ref for p in self.papers.all() if p.opinion == opinion]


class Library(models.Model):
    """A reference library a reader uploaded for a profile (a BibTeX or RIS export), as read:
    every entry (``papers.library.Entry.as_json``), kept for the reader's export and for the
    authors it suggests. Its liked papers are ``papers``; a new upload replaces it whole."""

    profile = models.OneToOneField(
        InterestProfile, on_delete=models.CASCADE, related_name="library"
    )
    filename = models.CharField(max_length=200)
    uploaded_at = models.DateTimeField(default=timezone.now)
    entries = models.JSONField(default=list)

    class Meta:
        verbose_name_plural = "libraries"

    def __str__(self) -> str:
        return self.filename


class ProfilePaper(models.Model):
    """A paper a profile likes or dislikes: the REF as the reader gave it, the arXiv id it
    names, and the paper once the catalogue has it. A liked paper not yet in the catalogue is
    fetched in the background; composing finds it by ``arxiv_id`` as soon as it arrives."""

    LIKED, DISLIKED = 1, -1

    profile = models.ForeignKey(InterestProfile, on_delete=models.CASCADE, related_name="papers")
    opinion = models.SmallIntegerField(choices=[(LIKED, "liked"), (DISLIKED, "disliked")])
    ref = models.CharField("as given", max_length=500)
    arxiv_id = models.CharField("arXiv id", max_length=32, blank=True)
    paper = models.ForeignKey(
        Paper, null=True, blank=True, on_delete=models.SET_NULL, related_name="in_profiles"
    )
    # Liked because the reader's uploaded library cites it (None: named by the reader).
    library = models.ForeignKey(
        Library, null=True, blank=True, on_delete=models.CASCADE, related_name="papers"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["profile", "ref"], name="profile_paper_once"),
            models.CheckConstraint(
                condition=~models.Q(arxiv_id="") | models.Q(paper__isnull=False),
                name="profile_paper_named",
            ),
        ]
        ordering = ["profile", "-opinion", "id"]

    def __str__(self) -> str:
        return self.ref


class ConsentRecord(models.Model):
    """Proof of consent, kept through edits and removed only by erasure."""

    class Kind(models.TextChoices):
        SIGNUP = "signup", "Signed up"
        CONFIRM = "confirm", "Confirmed"
        RESUBSCRIBE = "resubscribe", "Resubscribed from the manage page"

    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="consents")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    at = models.DateTimeField(default=timezone.now)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=500, blank=True)
    consent_version = models.CharField(max_length=32)

    class Meta:
        ordering = ["at"]

    def __str__(self) -> str:
        return f"{self.kind} at {self.at:%Y-%m-%d %H:%M}"


class OwedEmail(models.Model):
    """A subscription email ("confirm" or "manage-link") a request asked for and no worker has
    sent yet. Written with the request's rows, so an email whose task never reached the broker
    is still owed: the dispatch round queues it again (``subscriptions.owed_emails``). A worker
    claims it with a lease before sending (``claimed_at``; a second delivery of the task finds
    it claimed, or gone) and deletes it once sent."""

    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="owed")
    name = models.CharField(max_length=16)
    owed_since = models.DateTimeField(default=timezone.now)
    # A lease, not a lock: a claim older than a task may run is a lost worker's.
    claimed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["subscriber", "name"], name="owed_email_once")
        ]
        indexes = [models.Index(fields=["owed_since"], name="owed_email_since")]

    def __str__(self) -> str:
        return f"{self.name} owed since {self.owed_since:%Y-%m-%d %H:%M}"


class DigestQuerySet(models.QuerySet["Digest", "Digest"]):
    """The digest's transitions (``Digest.transitions``; see ``Digest``), each one conditional
    UPDATE."""

    def hand_off(self, digest_id: int) -> bool:
        """Queued -> sending, only while the subscriber is active, in one statement: the last
        word on whether to send (an unsubscribe, bounce or complaint stops it even now)."""
        now = Digest._meta.get_field("handed_off_at").get_db_prep_value(timezone.now(), connection)
        with connection.cursor() as cursor:
            cursor.execute(
                HAND_OFF,
                [
                    Digest.Status.SENDING.value,
                    now,
                    digest_id,
                    Digest.Status.QUEUED.value,
                    Subscriber.Status.ACTIVE.value,
                ],
            )
            return cursor.rowcount == 1

    def record_sent(self, digest_id: int, message_id: str) -> None:
        """Sending -> sent, the moment the mail server or provider accepted the message."""
        sent_at = Digest._meta.get_field("sent_at").get_db_prep_value(timezone.now(), connection)
        with connection.cursor() as cursor:
            cursor.execute(MARK_SENT, [Digest.Status.SENT.value, sent_at, message_id, digest_id])

    def refused(self, error: str) -> int:
        """Sending -> failed: the server refused the message for good."""
        return self.filter(status=Digest.Status.SENDING).update(
            status=Digest.Status.FAILED, error=error[:2000]
        )

    def put_back(self, error: str) -> int:
        """Sending -> queued: refused for now (4xx, a dropped link), so not accepted and safe to
        send again."""
        return self.filter(status=Digest.Status.SENDING).update(
            status=Digest.Status.QUEUED, error=error[:2000]
        )

    def cancel(self) -> int:
        """Queued -> cancelled: the subscriber stopped."""
        return self.filter(status=Digest.Status.QUEUED).update(status=Digest.Status.CANCELLED)

    def give_up(self, reason: str) -> int:
        """Queued -> failed: still refused for now after every retry."""
        return self.filter(status=Digest.Status.QUEUED).update(
            status=Digest.Status.FAILED, error=reason
        )

    def interrupted(self, now: datetime) -> int:
        """Sending past the lease -> failed: the worker died between handing the message to
        the server and recording it. Whether it arrived is unknown, and sending it again
        could send it twice, so it is recorded as failed for staff to look at. The lease runs
        from the hand-off, not from composing: a digest retried for an hour is sent now."""
        return self.filter(status=Digest.Status.SENDING, handed_off_at__lt=lease_start(now)).update(
            status=Digest.Status.FAILED,
            error="interrupted during hand-off to the mail server; delivery unknown, not retried",
        )

    def stale(self, now: datetime) -> "DigestQuerySet":
        """Queued past the lease: their task was lost, or waits out a long backoff. Sending
        them again is safe, since only ``hand_off`` sends and only from queued."""
        return self.filter(status=Digest.Status.QUEUED, created__lt=lease_start(now)).order_by(
            "created"
        )


def lease_start(now: datetime) -> datetime:
    return now - timedelta(minutes=settings.DIGEST_CLAIM_LEASE_MINUTES)


class Digest(models.Model):
    """One subscriber's digest for one period, and the rule that it reaches the reader at
    most once. The database, not the broker, decides what was sent; the broker delivers tasks
    at least once, and any of them may run twice or die half-way.

    The transitions (``Digest.transitions``; nothing else changes a digest's status)::

        composed -> queued, or skipped (nothing relevant; never moves again)
        queued  --hand_off-->  sending  --record_sent-->  sent
                                  |--refused-->  failed      (refused for good)
                                  '--put_back--> queued      (refused for now: retried)
        queued  --cancel-->    cancelled                      (the subscriber stopped)
        queued  --give_up-->   failed                         (after every retry)
        sending a lease after hand_off --interrupted--> failed (delivery unknown)

    Invariants:
    - One row per (subscriber, period): a redelivered compose task makes no second digest.
    - Only ``hand_off`` moves a digest to ``sending``, only from ``queued`` and only while its
      subscriber is active, in one statement; only a digest it moved is given to the mail
      backend. So two workers, a retry or a late redelivery never send a digest twice, and
      mail stopped at any moment before the hand-off (``SubscriberQuerySet.stop_mail``)
      sends nothing.
    - A digest goes back to ``queued`` only when the server did not accept it.
    - ``sent`` is recorded the moment the server accepts it. A worker killed between the two
      leaves the digest in ``sending``, and it is never sent again: ``interrupted`` records
      it failed a lease after its hand-off (a send under way is left to finish). Its
      ``Message-ID`` (and the anymail ``digest_id`` metadata) still lets the provider's
      delivery webhook find it.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Composed, not handed to the provider yet"
        SENDING = "sending", "Handed to the provider (outcome unknown)"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed permanently"
        SKIPPED = "skipped", "Skipped: nothing relevant"
        CANCELLED = "cancelled", "Cancelled: subscriber stopped"

    # SET_NULL: erasing a subscriber keeps anonymous counts of what was sent.
    subscriber = models.ForeignKey(
        Subscriber, null=True, blank=True, on_delete=models.SET_NULL, related_name="digests"
    )
    period = models.CharField(max_length=16, help_text="Local day (daily) or ISO week (weekly).")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    created = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # When a worker last handed it to the mail backend (``hand_off``): an ``interrupted`` send is
    # one still ``sending`` a lease after this.
    handed_off_at = models.DateTimeField(null=True, blank=True)
    message_id = models.CharField(max_length=255, blank=True, db_index=True)
    error = models.TextField(blank=True)
    note = models.CharField(max_length=200, blank=True)
    # What was weighed: the new papers the reader had not been sent, and how many of them
    # matched their interests ("7 of 143 new papers matched your interests").
    considered = models.PositiveIntegerField(null=True, blank=True)
    matched = models.PositiveIntegerField(null=True, blank=True)

    objects = models.Manager["Digest"]()
    # The status changes, apart from the default manager: django-stubs cannot type
    # prefetch_related(Prefetch(...)) on a model whose default manager is custom.
    transitions = DigestQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["subscriber", "period"], name="digest_once_per_period")
        ]
        # Each dispatch round looks for digests queued or sending past their lease
        # (``stale``, ``interrupted``): a handful of rows in a table that grows by a digest per
        # reader per day. Partial indexes hold only those rows.
        indexes = [
            models.Index(
                fields=["created"], condition=Q(status="queued"), name="digest_queued_since"
            ),
            models.Index(
                fields=["handed_off_at"], condition=Q(status="sending"), name="digest_sending_since"
            ),
        ]
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"Digest {self.period} for {self.subscriber_id}"


class DigestItem(models.Model):
    digest = models.ForeignKey(Digest, on_delete=models.CASCADE, related_name="items")
    paper = models.ForeignKey(Paper, on_delete=models.CASCADE, related_name="digest_items")
    rank = models.PositiveSmallIntegerField()
    score = models.FloatField()
    reason = models.CharField(max_length=300)  # why, in words (``why["text"]``)
    # Why as data (``papers.ranking.Reason.as_json``): the signal, what matched, the text,
    # whether trending led to it. Templates read this, never the words.
    why = models.JSONField(default=dict, blank=True)
    section = models.CharField(
        max_length=16,
        default=Section.MATCH.value,
        choices=[
            (Section.AUTHORS.value, "By authors they follow"),
            (Section.MATCH.value, "Matches their interests"),
            (Section.TRENDING.value, "Trending"),
        ],
    )
    # The profile it was picked for (the better one when two wanted it): the digest's
    # sections, and the profile that votes and clicks on it teach.
    profile = models.ForeignKey(
        InterestProfile, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The names of the reader's other profiles that wanted it too, as they were then.
    also_for = models.JSONField(default=list, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["digest", "paper"], name="digest_item_once")]
        ordering = ["digest", "rank"]

    def __str__(self) -> str:
        return f"#{self.rank} {self.paper_id}"

    @classmethod
    def of_pick(
        cls,
        digest_id: int,
        rank: int,
        pick: Pick,
        profile_id: int | None = None,
        also_for: list[str] | None = None,
    ) -> "DigestItem":
        return cls(
            digest_id=digest_id,
            paper_id=pick.key,
            rank=rank,
            score=pick.score,
            reason=pick.reason.text[:300],
            why=pick.reason.as_json(),
            section=pick.section,
            profile_id=profile_id,
            also_for=also_for or [],
        )

    @property
    def reason_data(self) -> Reason:
        """Why this paper was picked, as data (a digest from before reasons were data has
        only the words: an unnamed signal with that text)."""
        return Reason.from_json(self.why) if self.why else Reason("", (), self.reason)


class DeliveryEvent(models.Model):
    """What an email provider reported about a message, normalised by django-anymail.

    Stored once per provider event, however often the provider retries the webhook.
    """

    provider = models.CharField(max_length=32)
    event_type = models.CharField(max_length=32, db_index=True)
    event_key = models.CharField(
        max_length=128, help_text="The provider's event id, or a hash of the event."
    )
    message_id = models.CharField(max_length=255, blank=True, db_index=True)
    recipient = models.CharField(max_length=254, blank=True, db_index=True)
    at = models.DateTimeField(null=True, blank=True)
    reject_reason = models.CharField(max_length=32, blank=True)
    soft = models.BooleanField(default=False, help_text="A temporary failure (soft bounce).")
    description = models.TextField(blank=True)
    mta_response = models.TextField(blank=True)
    click_url = models.TextField(blank=True)
    digest = models.ForeignKey(
        Digest, null=True, blank=True, on_delete=models.SET_NULL, related_name="events"
    )
    received = models.DateTimeField(default=timezone.now, db_index=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["provider", "event_key"], name="delivery_event_once")
        ]
        ordering = ["-received"]

    def __str__(self) -> str:
        return f"{self.provider} {self.event_type} {self.recipient}"


class Click(models.Model):
    """A reader followed a paper's link from a digest (HEAD requests and link scanners excluded)."""

    digest = models.ForeignKey(Digest, null=True, on_delete=models.SET_NULL, related_name="clicks")
    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="clicks")
    paper = models.ForeignKey(Paper, on_delete=models.CASCADE, related_name="clicks")
    url = models.URLField(max_length=2000)
    at = models.DateTimeField(default=timezone.now, db_index=True)
    profile = models.ForeignKey(
        InterestProfile, null=True, blank=True, on_delete=models.SET_NULL, related_name="clicks"
    )

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.subscriber_id} clicked {self.paper_id}"


class Feedback(models.Model):
    """ "More like this" (+1) or "less like this" (-1); the latest vote on a paper counts."""

    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="feedback")
    paper = models.ForeignKey(Paper, on_delete=models.CASCADE, related_name="feedback")
    digest = models.ForeignKey(
        Digest, null=True, on_delete=models.SET_NULL, related_name="feedback"
    )
    value = models.SmallIntegerField(choices=[(1, "more like this"), (-1, "less like this")])
    at = models.DateTimeField(default=timezone.now)
    profile = models.ForeignKey(
        InterestProfile, null=True, blank=True, on_delete=models.SET_NULL, related_name="feedback"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["subscriber", "paper"], name="feedback_once_per_paper")
        ]
        ordering = ["-at"]
        verbose_name_plural = "feedback"

    def __str__(self) -> str:
        return f"{self.subscriber_id} {self.value:+d} {self.paper_id}"


# The two writes every sent digest makes, as plain statements: through the ORM they cost a worker
# 1.2 ms of CPU per digest against 0.5 ms as SQL (BENCHMARKS.md, `devtools/transitions_cost.py`),
# a tenth of all a digest costs it.
HAND_OFF = (
    f"UPDATE {Digest._meta.db_table} SET status = %s, handed_off_at = %s"
    " WHERE id = %s AND status = %s"
    f" AND subscriber_id IN (SELECT id FROM {Subscriber._meta.db_table} WHERE status = %s)"
)
MARK_SENT = (
    f"UPDATE {Digest._meta.db_table} SET status = %s, sent_at = %s, message_id = %s WHERE id = %s"
)
