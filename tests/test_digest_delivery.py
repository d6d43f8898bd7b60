"""The whole sending path in CI: a real Celery worker on Redis, PostgreSQL, an SMTP server."""

import email
import email.policy
import threading
import time
from email.message import EmailMessage

import pytest
from django.core.management import call_command
from django.db import connection

from newsletter.models import Digest
from newsletter.tasks import dispatch_digests, send_digest_chunk
from tests.factories import active_subscriber

pytestmark = pytest.mark.integration
INTERESTS = [
    ["graph neural networks"],
    ["diffusion models", "image editing"],
    ["large language models", "reasoning"],
    ["quantization", "efficient inference"],
    ["reinforcement learning"],
    ["3D", "neural radiance fields"],
]


def wait_for(predicate, seconds: float = 90) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.3)
    return predicate()


@pytest.fixture
def due_subscribers(transactional_db):  # type: ignore[no-untyped-def]
    call_command("load_demo_papers", verbosity=0)
    return [
        active_subscriber(f"reader{n}@example.org", INTERESTS[n % len(INTERESTS)])
        for n in range(24)
    ]


def parse(raw: bytes) -> EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


def test_n_due_subscribers_get_exactly_n_multipart_digests(
    smtp_sink, due_subscribers, celery_worker, settings
) -> None:  # type: ignore[no-untyped-def]
    sink, _ = smtp_sink
    settings.DIGEST_CHUNK_SIZE = 5
    assert dispatch_digests() == 24  # claims here, in chunks of 5 queued to the worker

    assert wait_for(lambda: Digest.objects.filter(status="sent").count() == 24)
    time.sleep(1)
    assert len(sink.messages) == 24
    digest_message_ids = set(Digest.objects.values_list("message_id", flat=True))
    recipients = set()
    for raw in sink.messages:
        message = parse(raw)
        recipients.add(message["To"])
        assert message.is_multipart()
        assert {part.get_content_type() for part in message.iter_parts()} >= {
            "text/plain",
            "text/html",
        }
        assert message["List-Unsubscribe"].strip().startswith("<http")
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert message["Message-ID"] in digest_message_ids
    assert recipients == {s.email for s in due_subscribers}


def test_dispatching_twice_at_once_or_redelivering_a_chunk_sends_nothing_twice(
    smtp_sink, due_subscribers, celery_worker
) -> None:  # type: ignore[no-untyped-def]
    sink, _ = smtp_sink
    # Two dispatchers racing in this process and one in the worker.
    dispatch_digests.delay()

    def dispatch_and_close() -> None:
        dispatch_digests()
        connection.close()

    racers = [threading.Thread(target=dispatch_and_close) for _ in range(2)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()
    assert wait_for(lambda: Digest.objects.filter(status="sent").count() == 24)

    # The broker delivers at least once: the same chunk again must send nothing.
    send_digest_chunk.delay([s.id for s in due_subscribers])
    dispatch_digests.delay()
    time.sleep(5)

    assert len(sink.messages) == 24
    assert Digest.objects.count() == 24
