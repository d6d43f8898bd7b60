"""Growing past one machine: one sending rate shared by every worker (a token bucket in Redis),
and a queue per kind of work so hosts can be given only the work they should run."""

import gc
import multiprocessing
import time

import pytest
import redis
from celery.signals import worker_process_init
from django.utils import timezone

from config.celery import app
from newsletter import throttle
from newsletter.digests import claim_due_subscribers, compose_chunk, send_queued
from tests.factories import active_subscriber
from tests.test_compose import catalogue  # noqa: F401  (fixture)

RATE, BURST = 20, 3


@pytest.fixture
def bucket(redis_url, settings):  # type: ignore[no-untyped-def]
    settings.REDIS_URL = redis_url
    settings.DIGEST_SEND_PER_SECOND = RATE
    settings.DIGEST_SEND_BURST = BURST
    redis.Redis.from_url(redis_url).delete(throttle.KEY)
    yield
    redis.Redis.from_url(redis_url).delete(throttle.KEY)


def reserve_five(_: int) -> list[float]:
    return [throttle.reserve() for _ in range(5)]


def test_the_bucket_lets_a_burst_through_then_spaces_sends_at_the_rate(bucket) -> None:  # type: ignore[no-untyped-def]
    waits = [throttle.reserve() for _ in range(BURST + 3)]
    assert waits[:BURST] == [0.0] * BURST
    later = waits[BURST:]
    assert later == sorted(later) and later[0] > 0
    assert later[-1] == pytest.approx(3 / RATE, abs=0.02)  # third reservation past the burst


def test_workers_in_several_processes_share_one_rate(bucket) -> None:  # type: ignore[no-untyped-def]
    with multiprocessing.get_context("fork").Pool(2) as pool:
        waits = sorted(w for five in pool.map(reserve_five, range(2)) for w in five)
    # Ten sends from two processes: the burst goes at once, the other seven one slot apart,
    # as if one process had sent them all.
    assert waits[:BURST] == [0.0] * BURST
    slots = [round(w * RATE) for w in waits[BURST:]]
    assert slots == list(range(1, 10 - BURST + 1))


@pytest.mark.django_db
def test_sending_waits_for_the_bucket(bucket, catalogue, mailoutbox, settings) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    settings.DIGEST_SEND_BURST = 1
    settings.DIGEST_SEND_PER_SECOND = 5
    for n in range(3):
        active_subscriber(f"reader{n}@example.org", ["graph neural networks"], digest_size=2)
    queued = compose_chunk(claim_due_subscribers(timezone.now(), 10))
    started = time.monotonic()
    send_queued(queued)
    assert len(mailoutbox) == 3
    assert time.monotonic() - started >= 2 / 5 - 0.02  # the 2nd and 3rd waited a slot each


def test_without_a_rate_or_redis_nothing_waits(settings, redis_url) -> None:  # type: ignore[no-untyped-def]
    settings.REDIS_URL, settings.DIGEST_SEND_PER_SECOND = redis_url, 0
    assert [throttle.reserve() for _ in range(50)] == [0.0] * 50
    settings.REDIS_URL, settings.DIGEST_SEND_PER_SECOND = "", 5
    assert [throttle.reserve() for _ in range(50)] == [0.0] * 50


@pytest.mark.parametrize(
    ("task", "queue"),
    [
        ("papers.tasks.import_daily_papers", "ingest"),
        ("papers.tasks.import_upload", "ingest"),
        ("newsletter.tasks.dispatch_digests", "celery"),
        ("newsletter.tasks.compose_digest_chunk", "compose"),
        ("newsletter.tasks.send_queued_digests", "send"),
    ],
)
def test_each_kind_of_work_has_its_queue(task: str, queue: str) -> None:
    app.loader.import_default_modules()  # what a worker does at start: discover the tasks
    assert task in app.tasks
    assert app.amqp.router.route({}, task)["queue"].name == queue
    assert queue in app.amqp.queues  # a worker started without -Q consumes it


def test_a_worker_process_leaves_its_startup_objects_out_of_garbage_collection() -> None:
    """Each pool process freezes what it starts with (config/celery.py): in a busy worker, full
    collections otherwise walk Django's and Celery's objects every second or two."""
    gc.unfreeze()
    try:
        worker_process_init.send(sender="test")
        assert gc.get_freeze_count() > 100_000
    finally:
        gc.unfreeze()
