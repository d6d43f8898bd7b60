"""The confirmation email goes through a real Celery worker (issue 22): while the mail server is
down the visitor still gets "check your inbox", no 500, and the email follows once it is back."""

import re
import time
from collections.abc import Iterator

import pytest
from django.test import Client

from devtools.harness import SmtpSink, free_port, smtp_sink
from newsletter.models import Subscriber
from tests.test_digest_delivery import wait_for

pytestmark = pytest.mark.integration

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
