"""Celery tasks, and the two places that queue them from outside a task: the provider
webhooks' signal and the subscription emails. Each is a few lines around a function of
``digests``, ``subscriptions`` or ``tracking``, which never import this module."""

import logging
import random
from datetime import timedelta
from typing import Any

from anymail import signals as anymail
from celery import shared_task
from django.conf import settings
from django.db import DatabaseError, transaction
from django.dispatch import receiver
from django.utils import timezone
from kombu.exceptions import OperationalError

from newsletter import digests, subscriptions, tracking
from newsletter.models import DeliveryEvent, Digest

logger = logging.getLogger(__name__)


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
    Digest.transitions.interrupted(now)
    stale = Digest.transitions.stale(now).values_list("id", flat=True)
    if lost := list(stale[: settings.DIGEST_CHUNK_SIZE]):
        send_queued_digests.delay(lost)
    # Delivery events whose task was lost (broker down at the time) are applied now.
    for event_id in DeliveryEvent.objects.filter(
        processed_at__isnull=True, received__lt=now - timedelta(minutes=2)
    ).values_list("id", flat=True)[: settings.DIGEST_CHUNK_SIZE]:
        apply_delivery_event.delay(event_id)
    # So are confirmation and "manage" emails whose task was lost.
    for subscriber_id, name in subscriptions.owed_emails(now, settings.DIGEST_CHUNK_SIZE):
        send_subscription_email.delay(subscriber_id, name)
    return claimed


@shared_task(autoretry_for=(DatabaseError,), retry_backoff=True, retry_jitter=True)
def apply_delivery_event(event_id: int) -> str:
    """Act on a provider's event after the webhook has stored it (see ``tracking.apply_event``)."""
    return tracking.apply_event(event_id)


@receiver(anymail.tracking, dispatch_uid="newsletter.store_event")
def delivery_event_received(
    sender: Any, event: anymail.AnymailTrackingEvent, esp_name: str, **kwargs: Any
) -> None:
    """A provider's webhook (through anymail): store the event once, apply it in a task."""
    stored = tracking.store_event(event, esp_name)
    if stored is not None:
        transaction.on_commit(lambda: apply_delivery_event.delay(stored.id))


def queue_subscription_email(subscriber_id: int, name: str) -> None:
    """Hand a subscription email ("confirm" or "manage-link"), recorded as owed
    (``subscriptions.owe_email``), to a worker, which retries while the mail server or provider
    is down: the visitor's page never waits for it or fails with it."""
    try:
        send_subscription_email.delay(subscriber_id, name)
    except OperationalError:  # the broker is down, and /healthz says so; the email stays owed
        # and the first dispatch round after the broker is back queues it.
        logger.exception("Could not queue the %s email of subscriber %s", name, subscriber_id)


@shared_task(autoretry_for=(DatabaseError,), retry_backoff=True, retry_jitter=True)
def compose_digest_chunk(subscriber_ids: list[int]) -> int:
    """Queue "compose": rank and store a chunk's digests, then hand them to the "send" queue.
    Digests composed but never handed on (a worker lost in between) are found by
    ``DigestQuerySet.stale`` in a later dispatch round."""
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
            Digest.transitions.filter(id__in=result.retry).give_up(
                f"gave up after {self.max_retries} retries"
            )
        else:
            raise self.retry(args=[result.retry], countdown=backoff(self.request.retries), exc=None)
    return {"sent": result.sent, "failed": result.failed, "cancelled": result.cancelled}


@shared_task(bind=True, max_retries=settings.DIGEST_SEND_RETRIES)
def send_subscription_email(self: Any, subscriber_id: int, name: str) -> str:
    """A confirmation or "manage your subscription" email, out of the signup request, sent
    once however often the task is delivered (``subscriptions.send_email``): while the mail
    server or provider is down it is retried with backoff, as digests are, and once the
    retries run out the dispatch rounds start again."""
    try:
        return subscriptions.send_email(subscriber_id, name)
    except Exception as exc:
        if not digests.classify(exc):
            subscriptions.forgive_email(subscriber_id, name)
            raise
        if self.request.retries >= self.max_retries:
            raise
        countdown = backoff(self.request.retries)
        subscriptions.postpone_email(subscriber_id, name, countdown)
        raise self.retry(countdown=countdown, exc=exc) from exc


@shared_task
def purge_unconfirmed() -> int:
    """Beat: forget signups that were never confirmed."""
    return subscriptions.purge_unconfirmed()
