"""What happens after a digest leaves: provider events, clicks and feedback.

- django-anymail normalises every provider's webhook; ``store_event`` keeps each event once
  (providers retry), and ``newsletter.tasks`` hands its effect to a worker.
- ``apply_event`` stops mail to addresses that bounce (hard at once, soft after
  ``NEWSLETTER_SOFT_BOUNCE_LIMIT`` digests in a row), complain or unsubscribe at the provider;
  a hard bounce or complaint naming a reader's address stops them whatever the message.
  Opens and clicks reported by providers are kept for the dashboard only.
- Paper links in a digest go through ``/digest/<token>/<paper>/<kind>/``
  (``emails.digest_context``); a ``Click`` is a positive signal for the next ranking, as "more
  like this" is; "less like this" a negative one.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from functools import wraps
from typing import Any

from anymail.exceptions import AnymailError, AnymailWebhookValidationFailure
from anymail.signals import AnymailTrackingEvent, EventType
from django.conf import settings
from django.core import checks
from django.core.cache import cache
from django.db import transaction
from django.db.models import Max
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.urls import URLPattern
from django.utils import timezone

from newsletter.models import Click, DeliveryEvent, Digest, Feedback, Subscriber
from papers.sources import storable

Status = Subscriber.Status

# --- Provider webhooks --------------------------------------------------------------------------


def guarded(view: Any) -> Any:
    """Wrap an anymail webhook view: one transaction per request, and a malformed body gets a
    400 and stores nothing (anymail lets parse errors through as 500s, which providers retry)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            with transaction.atomic():
                response: HttpResponse = view(request, *args, **kwargs)
                return response
        except AnymailWebhookValidationFailure:
            raise  # Django answers 400 (SuspiciousOperation)
        except (
            AnymailError,
            ValueError,
            KeyError,
            TypeError,
            AttributeError,
            IndexError,
            OverflowError,  # a timestamp no datetime holds: anymail parses it with
            OSError,  # datetime.fromtimestamp, which raises these for out-of-range values
        ) as exc:
            return HttpResponseBadRequest(f"Malformed webhook body: {type(exc).__name__}")

    return wrapper


def webhook_urls() -> list[URLPattern]:
    """anymail's tracking webhook URLs (``/anymail/<esp>/tracking/``), each ``guarded``."""
    from anymail.urls import urlpatterns

    return [
        URLPattern(p.pattern, guarded(p.callback), p.default_args, p.name)
        for p in urlpatterns
        if isinstance(p, URLPattern) and str(p.pattern).endswith("tracking/")
    ]


# SparkPost's bounce classes that say the address is dead: invalid recipient, no RCPT.
SPARKPOST_HARD = {"10", "30"}


def is_soft(event: AnymailTrackingEvent) -> bool:
    """A temporary failure: anymail's "deferred", or a bounce the provider marks as soft
    (Postmark ``SoftBounce``, SES ``Transient``, Mailgun ``temporary``, Brevo ``soft_bounce``,
    Mailjet ``hard_bounce: false``, SendGrid ``blocked``, SparkPost's classes but 10 and 30)."""
    if event.event_type == EventType.DEFERRED:
        return True
    if event.event_type != EventType.BOUNCED:
        return False
    raw = event.esp_event if isinstance(event.esp_event, dict) else {}
    sparkpost = (raw.get("msys") or {}).get("message_event") or {}
    return (
        raw.get("Type") == "SoftBounce"
        or raw.get("severity") == "temporary"
        or raw.get("event") == "soft_bounce"
        or raw.get("hard_bounce") is False
        or raw.get("type") == "blocked"
        or (bool(sparkpost) and str(sparkpost.get("bounce_class")) not in SPARKPOST_HARD)
        or (event.description or "").startswith(("Transient", "Undetermined"))
    )


def event_key(event: AnymailTrackingEvent) -> str:
    """One key per provider event and recipient (an SES bounce names several recipients under
    one id); a hash of the raw event when the provider gives no id."""
    raw = event.event_id or json.dumps(event.esp_event, sort_keys=True, default=str)
    return hashlib.sha256(f"{raw}\n{event.recipient}".encode()).hexdigest()


def digest_of(event: AnymailTrackingEvent) -> Digest | None:
    message_id = text(event.message_id).strip().strip("<>")
    if message_id:
        found = Digest.objects.filter(message_id__in=[message_id, f"<{message_id}>"]).first()
        if found:
            return found
    digest_id = str((event.metadata or {}).get("digest_id", ""))
    if not (digest_id.isascii() and digest_id.isdigit() and len(digest_id) < 19):  # a bigint
        return None
    return Digest.objects.filter(pk=int(digest_id)).first()


def text(value: str | None, limit: int | None = None) -> str:
    """A provider's string as a column holds it: no NUL or lone surrogate, at most ``limit``."""
    return storable(value or "")[:limit]


def store_event(event: AnymailTrackingEvent, esp_name: str) -> DeliveryEvent | None:
    """Keep a provider's event once; the new row, or None if it was stored before."""
    if not (event.recipient or event.message_id):
        raise ValueError("the event names neither a recipient nor a message")  # answered 400
    stored, created = DeliveryEvent.objects.get_or_create(
        provider=esp_name,
        event_key=event_key(event),
        defaults={
            "event_type": event.event_type or "unknown",
            "message_id": text(event.message_id, 255),
            "recipient": text(event.recipient, 254),
            "at": event.timestamp,
            "reject_reason": event.reject_reason or "",
            "soft": is_soft(event),
            "description": text(event.description),
            "mta_response": text(event.mta_response),
            "click_url": text(event.click_url),
            "digest": digest_of(event),
        },
    )
    return stored if created else None


def soft_bounces_in_a_row(subscriber_id: int) -> int:
    """Digests that soft-bounced since the subscriber's last delivered, opened or clicked one."""
    mine = DeliveryEvent.objects.filter(digest__subscriber_id=subscriber_id)
    last_ok = mine.filter(
        event_type__in=[EventType.DELIVERED, EventType.OPENED, EventType.CLICKED]
    ).aggregate(last=Max("received"))["last"]
    soft = mine.filter(soft=True)
    if last_ok:
        soft = soft.filter(received__gt=last_ok)
    return soft.values("digest").distinct().count()


# What a provider's event says of the address itself, whichever message it names: it is dead
# (a hard bounce, or a refusal for an address the provider knows bounces or is invalid) or its
# owner calls our mail spam. An unsubscribe counts only for a message of ours: an account's
# other streams and lists have unsubscribes of their own.
ADDRESS_STOPS = {
    (EventType.BOUNCED, ""): Status.BOUNCED,
    (EventType.COMPLAINED, ""): Status.COMPLAINED,
    (EventType.REJECTED, "bounced"): Status.BOUNCED,
    (EventType.REJECTED, "invalid"): Status.BOUNCED,
    (EventType.REJECTED, "spam"): Status.COMPLAINED,
}


def address_stop(event: DeliveryEvent) -> str | None:
    """The status a hard bounce, complaint or address refusal puts its address in, or None."""
    if event.soft:
        return None
    reason = event.reject_reason if event.event_type == EventType.REJECTED else ""
    return ADDRESS_STOPS.get((event.event_type, reason))


def last_consented(subscriber: Subscriber) -> datetime:
    """When the reader last asked for our mail: signed up, confirmed or resubscribed. What a
    provider says of the address before then belongs to an earlier subscription."""
    latest = subscriber.consents.aggregate(at=Max("at"))["at"]
    known = [at for at in (subscriber.confirmed_at, latest) if at]
    return max(known) if known else subscriber.created


def apply_event(event_id: int) -> str:
    """Act on a stored event once; return what was done (for logs and tests).

    The event's reader is the one its message (a digest of ours) was sent to, or else the
    subscriber with the address it names: then only a hard bounce or a complaint acts. An event
    dated before the reader last signed up, confirmed or resubscribed says nothing of them now."""
    with transaction.atomic():
        event = (
            DeliveryEvent.objects.select_for_update(of=("self",))
            .filter(pk=event_id, processed_at__isnull=True)
            .select_related("digest__subscriber")
            .first()
        )
        if event is None:
            return "already applied"
        event.processed_at = timezone.now()
        event.save(update_fields=["processed_at"])
        ours = event.digest.subscriber if event.digest else None
        if ours and event.recipient and event.recipient.lower() != ours.email.lower():
            return "ignored: recipient is not the digest's subscriber"
        subscriber = ours or Subscriber.objects.with_address(event.recipient or "-").first()
        if subscriber is None:
            return "ignored: unknown message and address"
        if (event.at or event.received) < last_consented(subscriber):
            return "ignored: dated before the subscriber last signed up or confirmed"
        stop_mail = Subscriber.objects.filter(pk=subscriber.pk).stop_mail
        if ours is None:
            status = address_stop(event)
            if status is None:
                return "recorded"
            stop_mail(status)
            return f"{status} (by address)"
        if event.event_type == EventType.UNSUBSCRIBED:
            stop_mail(Status.UNSUBSCRIBED)
            return "unsubscribed"
        if event.soft:
            if soft_bounces_in_a_row(subscriber.pk) >= settings.NEWSLETTER_SOFT_BOUNCE_LIMIT:
                stop_mail(Status.BOUNCED)
                return "bounced after soft bounces in a row"
            return "soft bounce counted"
        if status := address_stop(event):
            stop_mail(status)
            return status
        return "recorded"


@checks.register(checks.Tags.security, deploy=True)
def webhook_credentials(**kwargs: Any) -> list[checks.CheckMessage]:
    """Outside DEBUG the webhooks must demand basic-auth credentials, or anyone could post a
    fake bounce and stop a reader's mail."""
    if settings.DEBUG or settings.ANYMAIL.get("WEBHOOK_SECRET"):
        return []
    return [
        checks.Error(
            "ANYMAIL_WEBHOOK_SECRET is not set, so anyone could post delivery events.",
            hint="Set ANYMAIL_WEBHOOK_SECRET=user:password (comma-separate several to rotate) "
            "and give the same credentials in the provider's webhook URL.",
            id="newsletter.E001",
        )
    ]


# --- Clicks and feedback ------------------------------------------------------------------------

# Mail security gateways and link previewers follow links before (or instead of) the reader.
SCANNERS = re.compile(
    r"bot\b|crawler|spider|scanner|preview|barracuda|mimecast|proofpoint|safelinks|symantec"
    r"|urldefense|forcepoint|trendmicro|microsoft office|python-requests|curl/|wget/",
    re.IGNORECASE,
)


def from_reader(request: HttpRequest, digest_id: int) -> bool:
    """A GET of a link of ``digest_id`` from a reader's browser: not a HEAD, not a known link
    scanner, and not one of a burst of the digest's links (``scanned``)."""
    agent = request.headers.get("User-Agent", "")
    if request.method != "GET" or not agent or SCANNERS.search(agent):
        return False
    return not scanned(digest_id, timezone.now())


# Scanners that send a browser's User-Agent (those of many universities' mail among them) give
# themselves away otherwise: they follow every link of a message within a second or two, which
# no reader does. Clicks and votes teach the ranking, so a scanner would have the reader like
# (and dislike) everything they were sent.
SCAN_BURST = 4  # links of one digest followed within SCAN_SECONDS: a scanner, not a reader
SCAN_SECONDS = 3
SCAN_KEPT = 100  # the times kept per digest, at most


def scanned(digest_id: int, now: datetime) -> bool:
    """Whether the links of ``digest_id`` are being followed faster than a reader follows them
    (this one at least the SCAN_BURST-th within SCAN_SECONDS). If so, the clicks and votes of
    the burst are forgotten, and the caller records nothing. The times links were followed are
    kept in the cache for SCAN_SECONDS (two requests at the same instant may each miss the
    other: a scanner sending every request at once could slip through; those seen go in turn)."""
    key = f"links-followed:{digest_id}"
    recent = [t for t in cache.get(key, []) if t > now.timestamp() - SCAN_SECONDS]
    recent = [*recent[-SCAN_KEPT:], now.timestamp()]
    cache.set(key, recent, SCAN_SECONDS)
    if len(recent) < SCAN_BURST:
        return False
    since = datetime.fromtimestamp(recent[0], tz=UTC)
    Click.objects.filter(digest_id=digest_id, at__gte=since).delete()
    Feedback.objects.filter(digest_id=digest_id, at__gte=since).delete()
    return True
