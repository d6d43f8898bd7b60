"""The whole sending path in CI: a real Celery worker on Redis, PostgreSQL, an SMTP server."""

import base64
import email
import email.policy
import json
import threading
import time
from email.message import EmailMessage

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from newsletter.digests import claim_due_subscribers, compose_chunk
from newsletter.models import Digest, Subscriber
from newsletter.tasks import compose_digest_chunk, dispatch_digests, send_queued_digests
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
    compose_digest_chunk.delay([s.id for s in due_subscribers])
    dispatch_digests.delay()
    time.sleep(5)

    assert len(sink.messages) == 24
    assert Digest.objects.count() == 24


def test_a_bounce_or_complaint_posted_by_the_provider_stops_mail_already_queued(
    smtp_sink, due_subscribers, celery_worker, client, settings
) -> None:  # type: ignore[no-untyped-def]
    sink, _ = smtp_sink
    settings.ANYMAIL = {"WEBHOOK_SECRET": ["hook:s3cret"]}
    bouncer, complainer = due_subscribers[:2]
    for n, reader in enumerate((bouncer, complainer)):
        Digest.objects.create(
            subscriber=reader, period="2026-01-01", status="sent", message_id=f"<m{n}@x>"
        )
    queued = compose_chunk(claim_due_subscribers(timezone.now(), 100))  # the next round
    assert len(queued) == 24

    auth = "Basic " + base64.b64encode(b"hook:s3cret").decode()
    for n, (reader, kind) in enumerate(((bouncer, "HardBounce"), (complainer, "SpamComplaint"))):
        event = {
            "RecordType": "SpamComplaint" if kind == "SpamComplaint" else "Bounce",
            "ID": 1000 + n,
            "Type": kind,
            "MessageID": f"m{n}@x",
            "Email": reader.email,
            "BouncedAt": timezone.now().isoformat(),  # after they confirmed, or it would not count
            "Description": kind,
        }
        response = client.post(
            "/anymail/postmark/tracking/",
            data=json.dumps(event),
            content_type="application/json",
            HTTP_AUTHORIZATION=auth,
        )
        assert response.status_code == 200
    # The worker applies the events (the webhook only stored them).
    assert wait_for(
        lambda: (
            set(Subscriber.objects.filter(status__in=["bounced", "complained"]))
            == {bouncer, complainer}
        )
    )

    send_queued_digests.delay(queued)
    assert wait_for(lambda: not Digest.objects.filter(status__in=["queued", "sending"]).exists())
    time.sleep(1)
    recipients = [parse(raw)["To"] for raw in sink.messages]
    assert sorted(recipients) == sorted(s.email for s in due_subscribers[2:])
    assert set(
        Digest.objects.filter(
            subscriber__in=[bouncer, complainer], period__gt="2026-01-01"
        ).values_list("status", flat=True)
    ) == {"cancelled"}
