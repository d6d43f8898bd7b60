"""Every way mail stops (the unsubscribe link, a provider's bounce, complaint or unsubscribe,
erasure) goes through ``SubscriberQuerySet.stop_mail``: the reader is stopped at once and the
digests already composed for them are cancelled, not left for the send to find."""

from collections.abc import Callable

import pytest
from django.test import Client

from newsletter import emails, subscriptions, tracking
from newsletter.models import DeliveryEvent, Digest, Subscriber
from tests.factories import active_subscriber

pytestmark = pytest.mark.django_db
Status = Subscriber.Status


def one_click(reader: Subscriber) -> None:
    path = emails.unsubscribe_url(reader).removeprefix("http://localhost:8000")
    response = Client(enforce_csrf_checks=True).post(
        path, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 200


def provider(event_type: str) -> Callable[[Subscriber], None]:
    def report(reader: Subscriber) -> None:
        sent = Digest.objects.create(subscriber=reader, period="2026-01-01", status="sent")
        event = DeliveryEvent.objects.create(
            provider="postmark", event_key=event_type, event_type=event_type, digest=sent
        )
        tracking.apply_event(event.pk)

    return report


WAYS = {
    "one-click unsubscribe": (one_click, Status.UNSUBSCRIBED),
    "hard bounce": (provider("bounced"), Status.BOUNCED),
    "complaint": (provider("complained"), Status.COMPLAINED),
    "provider unsubscribe": (provider("unsubscribed"), Status.UNSUBSCRIBED),
}


@pytest.mark.parametrize("way", WAYS)
def test_each_way_of_stopping_mail_stops_the_reader_and_cancels_their_queued_digest(
    way: str,
) -> None:
    stop, status = WAYS[way]
    reader = active_subscriber("ada@example.org", ["graph neural networks"])
    queued = Digest.objects.create(subscriber=reader, period="2026-01-02", status="queued")

    stop(reader)

    reader.refresh_from_db()
    assert reader.status == status and reader.next_digest_at is None
    queued.refresh_from_db()
    assert queued.status == "cancelled"


def test_erasure_cancels_the_queued_digests_it_leaves_as_anonymous_counts() -> None:
    reader = active_subscriber("ada@example.org", ["graph neural networks"])
    queued = Digest.objects.create(subscriber=reader, period="2026-01-02", status="queued")

    subscriptions.erase(reader)

    queued.refresh_from_db()
    assert queued.subscriber is None and queued.status == "cancelled"


def test_a_complaint_overrides_an_unsubscribe_but_nothing_else_overrides_a_stop() -> None:
    reader = active_subscriber("ada@example.org", ["graph neural networks"])
    readers = Subscriber.objects.filter(pk=reader.pk)

    assert readers.stop_mail(Status.UNSUBSCRIBED) == 1
    assert readers.stop_mail(Status.BOUNCED) == 0
    assert readers.get().status == Status.UNSUBSCRIBED
    assert readers.stop_mail(Status.COMPLAINED) == 1
    assert readers.stop_mail(Status.UNSUBSCRIBED) == 0
    assert readers.get().status == Status.COMPLAINED


def test_only_a_stopped_status_stops_mail() -> None:
    with pytest.raises(ValueError, match="does not stop mail"):
        Subscriber.objects.all().stop_mail(Status.PAUSED)


def test_a_digest_is_handed_off_once_and_only_while_its_reader_is_active() -> None:
    reader = active_subscriber("ada@example.org", ["graph neural networks"])
    digest = Digest.objects.create(subscriber=reader, period="2026-01-02", status="queued")

    assert Digest.transitions.hand_off(digest.pk)
    assert not Digest.transitions.hand_off(digest.pk)  # a second worker, or a redelivery
    Digest.transitions.filter(pk=digest.pk).put_back("451 try again")
    Subscriber.objects.filter(pk=reader.pk).update(status=Status.PAUSED)
    assert not Digest.transitions.hand_off(digest.pk)
    digest.refresh_from_db()
    assert digest.status == "queued" and digest.error == "451 try again"
