"""The confirmation email goes through a real Celery worker (issue 22): while the mail server is
down the visitor still gets "check your inbox", no 500, and the email follows once it is back.
While the broker is down the email is owed in the database, and the next dispatch round after
the broker is back sends it, once."""

import re
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db.models import F
from django.test import Client
from kombu.exceptions import OperationalError

from devtools.harness import SmtpSink, free_port, smtp_sink
from newsletter import subscriptions, tasks
from newsletter.models import OwedEmail, Subscriber
from tests.factories import active_subscriber
from tests.test_digest_delivery import wait_for

SIGNUP = {
    "email": "ada@example.org",
    "keywords": "graph neural networks",
    "frequency": "daily",
    "weekday": "0",
    "send_hour": "8",
    "timezone": "UTC",
    "consent": "on",
}


@pytest.fixture
def mail_server_down(settings) -> Iterator[int]:  # type: ignore[no-untyped-def]
    """Point this process and the worker (started after) at a port where nothing listens yet."""
    port = free_port()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_USE_TLS = "127.0.0.1", port, False
    yield port


@pytest.mark.integration
def test_a_signup_during_a_mail_outage_gets_its_confirmation_once_the_server_is_back(
    mail_server_down, celery_worker, client: Client
) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/", SIGNUP)

    assert response.status_code == 200 and b"Check your inbox" in response.content
    assert Subscriber.objects.get().status == "pending"
    time.sleep(2)  # the worker has tried and failed by now

    with smtp_sink(SmtpSink(keep=True), mail_server_down) as (sink, _):
        assert wait_for(lambda: len(sink.messages) >= 1), "the confirmation never came"
        time.sleep(2)
    [message] = sink.messages
    assert b"To: ada@example.org" in message and re.search(rb"/confirm/\S+/", message)


@pytest.fixture
def broker_down(monkeypatch):  # type: ignore[no-untyped-def]
    """Queuing a subscription email fails as kombu fails when the broker refuses connections."""

    def refused(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(tasks.send_subscription_email, "apply_async", refused)
    return monkeypatch


def a_while_ago() -> None:
    """The owed emails were asked for minutes ago (their task was lost by then)."""
    OwedEmail.objects.update(owed_since=F("owed_since") - timedelta(minutes=3))


def received_by(sink: SmtpSink, address: str) -> list[bytes]:
    return [m for m in sink.messages if f"To: {address}".encode() in m]


@pytest.mark.django_db
def test_a_signup_while_the_broker_is_down_is_confirmed_once_by_a_later_dispatch_round(
    broker_down, eager_tasks, smtp_sink, client: Client
) -> None:  # type: ignore[no-untyped-def]
    sink, _ = smtp_sink
    response = client.post("/", SIGNUP)

    assert response.status_code == 200 and b"Check your inbox" in response.content
    assert Subscriber.objects.get().status == "pending"
    assert list(OwedEmail.objects.values_list("name", flat=True)) == ["confirm"]
    broker_down.undo()  # the broker is back
    tasks.dispatch_digests()
    assert sink.messages == [], "a round queued an email whose task may still be on its way"

    a_while_ago()
    tasks.dispatch_digests()
    tasks.dispatch_digests()

    [message] = sink.messages
    assert b"To: ada@example.org" in message and re.search(rb"/confirm/\S+/", message)
    assert not OwedEmail.objects.exists()


@pytest.mark.django_db
def test_the_manage_link_asked_for_while_the_broker_is_down_follows_too(
    broker_down, eager_tasks, smtp_sink, client: Client
) -> None:  # type: ignore[no-untyped-def]
    sink, _ = smtp_sink
    active_subscriber("ada@example.org", ["graph neural networks"])
    assert client.post("/", SIGNUP).status_code == 200
    broker_down.undo()
    a_while_ago()
    tasks.dispatch_digests()

    [message] = sink.messages
    assert b"To: ada@example.org" in message and b"/manage/" in message


@pytest.mark.django_db
def test_a_second_delivery_of_the_task_sends_nothing(
    eager_tasks, smtp_sink, client: Client
) -> None:  # type: ignore[no-untyped-def]
    sink, _ = smtp_sink
    client.post("/", SIGNUP)
    reader = Subscriber.objects.get()
    assert len(sink.messages) == 1

    # The broker delivers at least once: the same task again, and a dispatch round's.
    assert tasks.send_subscription_email.apply(args=[reader.pk, "confirm"]).get() == "not owed"
    a_while_ago()
    tasks.dispatch_digests()
    assert len(sink.messages) == 1


@pytest.mark.django_db
def test_a_delivery_while_another_worker_sends_the_email_sends_nothing(smtp_sink) -> None:  # type: ignore[no-untyped-def]
    sink, _ = smtp_sink
    reader = Subscriber.objects.create(email="ada@example.org")
    subscriptions.owe_email(reader.pk, "confirm")
    OwedEmail.objects.update(claimed_at=F("owed_since"))  # claimed, being sent

    assert subscriptions.send_email(reader.pk, "confirm") == "not owed"
    assert sink.messages == []


@pytest.mark.django_db
def test_a_signup_asked_again_before_its_email_went_gets_one_email(
    broker_down, eager_tasks, smtp_sink, client: Client
) -> None:  # type: ignore[no-untyped-def]
    sink, _ = smtp_sink
    client.post("/", SIGNUP)
    broker_down.undo()
    client.post("/", SIGNUP)  # its own task sends what is owed
    a_while_ago()
    tasks.dispatch_digests()

    assert len(received_by(sink, "ada@example.org")) == 1


@pytest.mark.django_db
@pytest.mark.parametrize("leaves", ["unsubscribes", "is erased"])
def test_a_reader_who_left_before_the_round_gets_nothing(
    leaves, broker_down, eager_tasks, smtp_sink, client: Client
) -> None:  # type: ignore[no-untyped-def]
    sink, _ = smtp_sink
    active_subscriber("ada@example.org", ["graph neural networks"])
    client.post("/", SIGNUP)  # asks for the manage link while the broker is down
    reader = Subscriber.objects.get()
    if leaves == "unsubscribes":
        subscriptions.unsubscribe(reader)
    else:
        subscriptions.erase(reader)
    broker_down.undo()
    a_while_ago()
    tasks.dispatch_digests()

    assert sink.messages == []
    assert not OwedEmail.objects.exists()
