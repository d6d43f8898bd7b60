import random
from datetime import timedelta
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from newsletter import digests, subscriptions, tracking
from newsletter.models import DeliveryEvent


def backoff(retries: int) -> float:
    """Exponential backoff with jitter, so retries of many chunks don't arrive together."""
    delay = settings.DIGEST_RETRY_BASE_SECONDS * 2**retries
    return min(delay, 3600) * random.uniform(0.5, 1.5)


@shared_task
def dispatch_digests() -> int:
    """Beat, every few minutes: claim due subscribers in chunks and queue one task per chunk."""
    now = timezone.now()
    claimed = 0
    while ids := digests.claim_due_subscribers(now, settings.DIGEST_CHUNK_SIZE):
        compose_digest_chunk.delay(ids)
        claimed += len(ids)
    digests.interrupted_sends(now)
    if stale := digests.stale_queued(now, settings.DIGEST_CHUNK_SIZE):
        send_queued_digests.delay(stale)
    # Delivery events whose task was lost (broker down at the time) are applied now.
    for event_id in DeliveryEvent.objects.filter(
        processed_at__isnull=True, received__lt=now - timedelta(minutes=2)
    ).values_list("id", flat=True)[: settings.DIGEST_CHUNK_SIZE]:
        apply_delivery_event.delay(event_id)
    return claimed


@shared_task(autoretry_for=(DatabaseError,), retry_backoff=True, retry_jitter=True)
def apply_delivery_event(event_id: int) -> str:
    """Act on a provider's event after the webhook has stored it (see ``tracking.apply_event``)."""
    return tracking.apply_event(event_id)


@shared_task(autoretry_for=(DatabaseError,), retry_backoff=True, retry_jitter=True)
def compose_digest_chunk(subscriber_ids: list[int]) -> int:
    """Queue "compose": rank and store a chunk's digests, then hand them to the "send" queue.
    Digests composed but never handed on (a worker lost in between) are found by
    ``digests.stale_queued`` in a later dispatch round."""
    to_send = digests.compose_chunk(subscriber_ids)
    if to_send:
        send_queued_digests.delay(to_send)
    return len(to_send)


@shared_task(
    bind=True,
    autoretry_for=(DatabaseError,),
    retry_backoff=True,
    retry_jitter=True,
    max_retries=settings.DIGEST_SEND_RETRIES,
)
def send_queued_digests(self: Any, digest_ids: list[int]) -> dict[str, int]:
    """Queue "send": send queued digests at the provider's rate; those refused for now (421,
    451, a dropped link) are retried with backoff, only they, until the retries run out."""
    result = digests.send_queued(digest_ids)
    if result.retry:
        if self.request.retries >= self.max_retries:
            digests.fail_queued(result.retry, f"gave up after {self.max_retries} retries")
        else:
            raise self.retry(args=[result.retry], countdown=backoff(self.request.retries), exc=None)
    return {"sent": result.sent, "failed": result.failed, "cancelled": result.cancelled}


@shared_task(bind=True, max_retries=settings.DIGEST_SEND_RETRIES)
def send_subscription_email(self: Any, subscriber_id: int, name: str) -> str:
    """A confirmation or "manage your subscription" email, out of the signup request: while
    the mail server or provider is down it is retried with backoff, as digests are."""
    try:
        return subscriptions.send_email(subscriber_id, name)
    except Exception as exc:
        if not digests.classify(exc) or self.request.retries >= self.max_retries:
            raise
        raise self.retry(countdown=backoff(self.request.retries), exc=exc) from exc


@shared_task
def purge_unconfirmed() -> int:
    """Beat: forget signups that were never confirmed."""
    return subscriptions.purge_unconfirmed()
