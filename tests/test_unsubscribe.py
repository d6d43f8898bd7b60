import pytest
from django.test import Client
from django.utils import timezone

from newsletter import emails
from newsletter.digests import claim_due_subscribers, compose_chunk, send_queued
from newsletter.models import Digest, Subscriber
from papers.models import Paper
from tests.factories import active_subscriber

pytestmark = pytest.mark.django_db


@pytest.fixture
def reader() -> Subscriber:
    return active_subscriber("ada@example.org", ["graph neural networks"])


def path(subscriber: Subscriber) -> str:
    return emails.unsubscribe_url(subscriber).removeprefix("http://localhost:8000")


def test_a_get_only_asks_for_confirmation(client: Client, reader: Subscriber) -> None:
    response = client.get(path(reader))
    assert response.status_code == 200 and b"<button" in response.content
    reader.refresh_from_db()
    assert reader.status == "active"


def test_one_click_post_without_cookies_or_csrf_token_unsubscribes(reader: Subscriber) -> None:
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        path(reader), "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 200 and not response.has_header("Location")
    reader.refresh_from_db()
    assert (
        reader.status == "unsubscribed" and reader.unsubscribed_at and reader.next_digest_at is None
    )


def test_one_click_post_as_multipart_works_too(reader: Subscriber) -> None:
    response = Client(enforce_csrf_checks=True).post(
        path(reader), {"List-Unsubscribe": "One-Click"}
    )
    assert response.status_code == 200
    assert Subscriber.objects.get().status == "unsubscribed"


def test_unsubscribing_twice_is_harmless(client: Client, reader: Subscriber) -> None:
    client.post(path(reader))
    first = Subscriber.objects.get().unsubscribed_at
    assert client.post(path(reader)).status_code == 200
    assert Subscriber.objects.get().unsubscribed_at == first


def test_it_takes_effect_for_a_digest_already_queued(reader: Subscriber, mailoutbox) -> None:  # type: ignore[no-untyped-def]
    Paper.objects.create(
        title="Graph neural networks at scale",
        title_key="gnn",
        abstract="Graph neural networks.",
        listed_on=timezone.now().date(),
        source="text",
    )
    queued = compose_chunk(claim_due_subscribers(timezone.now(), 10))
    assert queued

    Client().post(path(reader))
    send_queued(queued)

    assert mailoutbox == []
    assert Digest.objects.get().status == "cancelled"
