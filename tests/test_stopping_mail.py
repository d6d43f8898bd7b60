"""Every way mail stops (the unsubscribe link and page, the manage page, a provider's bounce,
complaint or unsubscribe, soft bounces in a row, erasure) goes through
``SubscriberQuerySet.stop_mail``: the reader is stopped at once and the digests already composed
for them are cancelled, not left for the send to find."""

import re
from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from newsletter import emails, subscriptions, tracking
from newsletter.admin import SubscriberForm
from newsletter.models import DeliveryEvent, Digest, Subscriber
from tests.factories import active_subscriber
from tests.test_admin import form_fields

pytestmark = pytest.mark.django_db
Status = Subscriber.Status


def one_click(reader: Subscriber) -> None:
    path = emails.unsubscribe_url(reader).removeprefix("http://localhost:8000")
    response = Client(enforce_csrf_checks=True).post(
        path, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 200


def press_the_button(url: str, **fields: str) -> None:
    """Open the page at ``url`` and submit its form as a browser would (CSRF token included)."""
    client = Client(enforce_csrf_checks=True)
    path = url.removeprefix("http://localhost:8000")
    page = client.get(path).content.decode()
    token = re.findall(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)[0]
    response = client.post(path, {"csrfmiddlewaretoken": token, **fields})
    assert response.status_code in (200, 302)


def unsubscribe_page(reader: Subscriber) -> None:
    press_the_button(emails.unsubscribe_url(reader))


def manage_page(reader: Subscriber) -> None:
    press_the_button(emails.manage_url(reader), action="unsubscribe")


def provider(event_type: str, soft: bool = False, times: int = 1) -> Callable[[Subscriber], None]:
    def report(reader: Subscriber) -> None:
        for n in range(times):
            sent = Digest.objects.create(
                subscriber=reader, period=f"2025-12-{n + 1}", status="sent"
            )
            event = DeliveryEvent.objects.create(
                provider="postmark",
                event_key=f"{event_type}-{n}",
                event_type=event_type,
                soft=soft,
                digest=sent,
            )
            tracking.apply_event(event.pk)

    return report


def staff_in_the_admin(reader: Subscriber) -> None:
    client = Client()
    client.force_login(User.objects.create_superuser("staff", "staff@example.org", "pw"))
    url = reverse("admin:newsletter_subscriber_change", args=[reader.pk])
    data = form_fields(client.get(url).content)
    data["status"] = Status.UNSUBSCRIBED
    assert client.post(url, data).status_code == 302


WAYS = {
    "one-click unsubscribe": (one_click, Status.UNSUBSCRIBED),
    "unsubscribe page": (unsubscribe_page, Status.UNSUBSCRIBED),
    "manage page": (manage_page, Status.UNSUBSCRIBED),
    "hard bounce": (provider("bounced"), Status.BOUNCED),
    "soft bounces in a row": (provider("bounced", soft=True, times=3), Status.BOUNCED),
    "complaint": (provider("complained"), Status.COMPLAINED),
    "provider unsubscribe": (provider("unsubscribed"), Status.UNSUBSCRIBED),
    "staff in the admin": (staff_in_the_admin, Status.UNSUBSCRIBED),
}


@pytest.mark.parametrize("way", WAYS)
def test_each_way_of_stopping_mail_stops_the_reader_and_cancels_their_queued_digest(
    way: str, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.NEWSLETTER_SOFT_BOUNCE_LIMIT = 3
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

    press_the_button(reverse("erase", args=[emails.sign(reader.pk, "manage")]))

    assert not Subscriber.objects.exists()
    queued.refresh_from_db()
    assert queued.subscriber is None and queued.status == "cancelled"


def test_deleting_a_reader_in_the_admin_is_an_erasure(admin_client) -> None:  # type: ignore[no-untyped-def]
    reader = active_subscriber("ada@example.org", ["graph neural networks"])
    queued = Digest.objects.create(subscriber=reader, period="2026-01-02", status="queued")
    bounce = DeliveryEvent.objects.create(
        provider="postmark", event_key="b", event_type="bounced", recipient="ada@example.org"
    )
    url = reverse("admin:newsletter_subscriber_delete", args=[reader.pk])

    assert admin_client.post(url, {"post": "yes"}).status_code == 302

    assert not Subscriber.objects.exists()
    queued.refresh_from_db()
    bounce.refresh_from_db()
    assert queued.status == "cancelled" and bounce.recipient == ""


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


def test_saving_preferences_from_a_page_loaded_before_the_reader_left_keeps_them_stopped() -> None:
    reader = active_subscriber("ada@example.org", ["graph neural networks"])
    loaded = Subscriber.objects.get(pk=reader.pk)  # the manage page's copy, still active
    Subscriber.objects.filter(pk=reader.pk).stop_mail(Status.UNSUBSCRIBED)  # one-click, meanwhile

    subscriptions.apply_preferences(loaded, {"frequency": "weekly", "send_hour": 6})

    reader.refresh_from_db()
    assert reader.status == Status.UNSUBSCRIBED and reader.unsubscribed_at is not None
    assert reader.next_digest_at is None and reader.claimed_at is None
    assert (reader.frequency, reader.send_hour) == ("weekly", 6)  # the preferences still saved


def test_resuming_loses_to_an_unsubscribe_that_lands_while_it_runs(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    reader = active_subscriber("ada@example.org", ["graph neural networks"])
    subscriptions.pause(reader)
    next_send_after = Subscriber.next_send_after

    def the_reader_unsubscribes_meanwhile(self, moment):  # type: ignore[no-untyped-def]
        Subscriber.objects.filter(pk=self.pk).stop_mail(Status.UNSUBSCRIBED)
        return next_send_after(self, moment)

    monkeypatch.setattr(Subscriber, "next_send_after", the_reader_unsubscribes_meanwhile)
    subscriptions.resume(reader)

    reader.refresh_from_db()
    assert reader.status == Status.UNSUBSCRIBED and reader.next_digest_at is None


def test_an_admin_form_loaded_before_the_reader_left_cannot_make_them_active_again() -> None:
    reader = active_subscriber("ada@example.org", ["graph neural networks"])
    client = Client()
    client.force_login(User.objects.create_superuser("staff", "staff@example.org", "pw"))
    url = reverse("admin:newsletter_subscriber_change", args=[reader.pk])
    data = form_fields(client.get(url).content)
    assert data["status"] == Status.ACTIVE
    Subscriber.objects.filter(pk=reader.pk).stop_mail(Status.UNSUBSCRIBED)  # one-click, meanwhile

    data["send_hour"] = "6"
    response = client.post(url, data)

    assert response.status_code == 200 and "only they can subscribe again" in response.text
    reader.refresh_from_db()
    assert reader.status == Status.UNSUBSCRIBED and reader.next_digest_at is None


def test_an_admin_save_racing_an_unsubscribe_leaves_it_stopped(monkeypatch) -> None:  # type: ignore[no-untyped-def]

    reader = active_subscriber("ada@example.org", ["graph neural networks"])
    client = Client()
    client.force_login(User.objects.create_superuser("staff", "staff@example.org", "pw"))
    url = reverse("admin:newsletter_subscriber_change", args=[reader.pk])
    data = form_fields(client.get(url).content)
    data["status"] = Status.PAUSED
    data["send_hour"] = "6"
    clean_status = SubscriberForm.clean_status

    def the_reader_unsubscribes_after_the_form_loaded_them(self):  # type: ignore[no-untyped-def]
        Subscriber.objects.filter(pk=reader.pk).stop_mail(Status.UNSUBSCRIBED)
        return clean_status(self)

    meanwhile = the_reader_unsubscribes_after_the_form_loaded_them
    monkeypatch.setattr(SubscriberForm, "clean_status", meanwhile)
    assert client.post(url, data).status_code == 302

    reader.refresh_from_db()
    assert reader.status == Status.UNSUBSCRIBED and reader.next_digest_at is None
    assert reader.send_hour == 6
