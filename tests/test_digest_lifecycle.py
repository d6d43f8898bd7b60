"""A digest's lifecycle (``Digest.transitions``, newsletter/models.py): each transition moves a
digest only from the status its docstring names, refuses every other, and does nothing the
second time. So a redelivered task, a second worker or a worker killed mid-send never sends a
digest twice, and a digest the mail server did not accept is never lost."""

import re
import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
import time_machine
from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from devtools.harness import Misbehaviour
from newsletter.digests import claim_due_subscribers, compose_chunk, send_queued
from newsletter.models import Digest, Subscriber
from newsletter.tasks import dispatch_digests, send_queued_digests
from papers.models import Paper
from tests.factories import active_subscriber

pytestmark = pytest.mark.django_db
Status = Digest.Status
ALL = list(Status)


def a_digest(status: str = Status.QUEUED, reader: Subscriber | None = None) -> Digest:
    reader = reader or active_subscriber("ada@example.org", ["graph neural networks"])
    return Digest.objects.create(subscriber=reader, period="2026-01-02", status=status)


def status_of(digest: Digest) -> str:
    return Digest.objects.values_list("status", flat=True).get(pk=digest.pk)


def of(digest: Digest) -> Digest:
    return Digest.objects.get(pk=digest.pk)


# Each transition, as a worker or the dispatcher calls it: (apply, from, to). Apply answers how
# many digests it moved.
TRANSITIONS: dict[str, tuple[Callable[[Digest], int], set[str], str]] = {
    "hand_off": (lambda d: int(Digest.transitions.hand_off(d.pk)), {Status.QUEUED}, Status.SENDING),
    "refused": (
        lambda d: Digest.transitions.filter(pk=d.pk).refused("550 no such user"),
        {Status.SENDING},
        Status.FAILED,
    ),
    "put_back": (
        lambda d: Digest.transitions.filter(pk=d.pk).put_back("451 try again later"),
        {Status.SENDING},
        Status.QUEUED,
    ),
    "cancel": (
        lambda d: Digest.transitions.filter(pk=d.pk).cancel(),
        {Status.QUEUED},
        Status.CANCELLED,
    ),
    "give_up": (
        lambda d: Digest.transitions.filter(pk=d.pk).give_up("gave up after 6 retries"),
        {Status.QUEUED},
        Status.FAILED,
    ),
}


@pytest.mark.parametrize("start", ALL)
@pytest.mark.parametrize("name", TRANSITIONS)
def test_each_transition_moves_a_digest_only_from_its_own_status_and_only_once(
    name: str, start: str
) -> None:
    apply, allowed, end = TRANSITIONS[name]
    digest = a_digest(start)

    moved = apply(digest)

    if start in allowed:
        assert (moved, status_of(digest)) == (1, end)
        assert (apply(digest), status_of(digest)) == (0, end)  # a repeat or a redelivery
    else:
        assert (moved, status_of(digest)) == (0, start)


def test_a_refusal_keeps_the_servers_answer_and_a_long_one_is_cut_not_refused() -> None:
    digest = a_digest(Status.SENDING)

    Digest.transitions.filter(pk=digest.pk).refused("550 " + "x" * 5000)

    assert of(digest).error.startswith("550 xxx") and len(of(digest).error) == 2000


@pytest.mark.parametrize(
    "reader_status",
    [Subscriber.Status.PENDING, Subscriber.Status.PAUSED, *Subscriber.STOPPED],
)
def test_a_digest_is_handed_off_only_while_its_reader_is_active(reader_status: str) -> None:
    reader = active_subscriber("ada@example.org", ["graph neural networks"])
    digest = a_digest(reader=reader)
    Subscriber.objects.filter(pk=reader.pk).update(status=reader_status)

    assert not Digest.transitions.hand_off(digest.pk)
    assert status_of(digest) == Status.QUEUED


def test_a_digest_whose_reader_was_erased_is_never_handed_off() -> None:
    digest = a_digest()
    Subscriber.objects.all().delete()  # as the admin deletes; erasure also cancels first

    assert not Digest.transitions.hand_off(digest.pk)


def test_a_reader_gets_one_digest_per_period() -> None:
    digest = a_digest()
    with pytest.raises(IntegrityError):
        Digest.objects.create(subscriber=digest.subscriber, period=digest.period)


@pytest.mark.django_db(transaction=True)
def test_of_workers_handing_off_the_same_digest_at_the_same_moment_exactly_one_wins(
    postgres,
) -> None:  # type: ignore[no-untyped-def]
    digest = a_digest()
    start = threading.Barrier(6)
    won: list[bool] = []

    def worker() -> None:
        try:
            start.wait()
            won.append(Digest.transitions.hand_off(digest.pk))
        finally:
            connection.close()  # each thread has a connection of its own

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(won) == [False] * 5 + [True]


def test_a_send_is_recorded_sent_with_the_moment_and_the_message_id() -> None:
    digest = a_digest(Status.SENDING)

    Digest.transitions.record_sent(digest.pk, "<digest.1@example.org>")

    sent = of(digest)
    assert (sent.status, sent.message_id) == (Status.SENT, "<digest.1@example.org>")
    assert sent.sent_at is not None and timezone.now() - sent.sent_at < timedelta(seconds=5)


# --- Interrupted and stale sends ----------------------------------------------------------------


def test_a_send_never_recorded_is_failed_after_the_lease_as_delivery_unknown(settings) -> None:  # type: ignore[no-untyped-def]
    lease = timedelta(minutes=settings.DIGEST_CLAIM_LEASE_MINUTES)
    digest = a_digest()
    handed = timezone.now()
    with time_machine.travel(handed, tick=False):
        assert Digest.transitions.hand_off(digest.pk)
    # ... and the worker died before the server's answer was recorded.

    assert Digest.transitions.interrupted(handed + lease - timedelta(minutes=1)) == 0
    assert status_of(digest) == Status.SENDING
    assert Digest.transitions.interrupted(handed + lease + timedelta(minutes=1)) == 1
    assert status_of(digest) == Status.FAILED and "delivery unknown" in of(digest).error
    assert not Digest.transitions.hand_off(digest.pk)  # never sent again


def test_a_send_under_way_is_not_taken_for_interrupted_however_long_ago_it_was_composed(
    settings,
) -> None:  # type: ignore[no-untyped-def]
    # Composed an hour ago and refused for now ever since (a mail outage): its retry has just
    # handed it off, while the dispatcher looks for sends that died.
    digest = a_digest()
    Digest.objects.filter(pk=digest.pk).update(created=timezone.now() - timedelta(hours=1))
    assert Digest.transitions.hand_off(digest.pk)

    assert Digest.transitions.interrupted(timezone.now()) == 0

    Digest.transitions.filter(pk=digest.pk).put_back("421 shutting down")  # still refused
    assert status_of(digest) == Status.QUEUED  # so its next retry sends it


def test_a_send_that_outlived_the_lease_is_recorded_sent_once_the_server_accepts_it(
    settings,
) -> None:  # type: ignore[no-untyped-def]
    lease = timedelta(minutes=settings.DIGEST_CLAIM_LEASE_MINUTES)
    digest = a_digest()
    assert Digest.transitions.hand_off(digest.pk)
    Digest.transitions.interrupted(timezone.now() + lease * 2)  # a server that took that long

    Digest.transitions.record_sent(digest.pk, "<late@example.org>")

    assert status_of(digest) == Status.SENT


def test_stale_digests_are_the_queued_ones_older_than_the_lease_oldest_first(settings) -> None:  # type: ignore[no-untyped-def]
    lease = timedelta(minutes=settings.DIGEST_CLAIM_LEASE_MINUTES)
    now = timezone.now()
    ages = {"a": 3 * lease, "b": 2 * lease, "fresh": lease / 2}
    made = {}
    for name, age in ages.items():
        reader = active_subscriber(f"{name}@example.org", ["graph neural networks"])
        made[name] = Digest.objects.create(subscriber=reader, period="p", created=now - age)
    for status in set(ALL) - {Status.QUEUED}:
        reader = active_subscriber(f"{status}@example.org", ["graph neural networks"])
        Digest.objects.create(subscriber=reader, period="p", status=status, created=now - 3 * lease)

    stale = list(Digest.transitions.stale(now).values_list("pk", flat=True))

    assert stale == [made["a"].pk, made["b"].pk]


@pytest.mark.usefixtures("postgres")
def test_the_stale_and_interrupted_scans_read_only_their_partial_indexes() -> None:
    # Every dispatch round runs both; the table grows by a digest per reader per day, and
    # only the few queued or sending rows are worth reading (a sequential scan over a million
    # digests took 47 ms, the index 0.08 ms: see migration 0013).
    now = timezone.now()
    with CaptureQueriesContext(connection) as captured:
        list(Digest.transitions.stale(now))
        Digest.transitions.interrupted(now)
    plans = []
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # as if the table were large
        for query in captured.captured_queries:
            cursor.execute(f"EXPLAIN {query['sql']}")
            plans.append("\n".join(row[0] for row in cursor.fetchall()))

    assert "digest_queued_since" in plans[0], plans[0]
    assert "digest_sending_since" in plans[1], plans[1]


# --- Through the send path: redeliveries, refusals, retries ------------------------------------


@pytest.fixture
def composed() -> Callable[[str], int]:
    """Compose a real digest for a new reader at ``address``; its id."""
    Paper.objects.create(
        title="Graph neural networks at scale",
        title_key="gnn",
        abstract="Graph neural networks on a billion edges.",
        listed_on=timezone.now().date(),
        source="text",
    )

    def compose(address: str) -> int:
        active_subscriber(address, ["graph neural networks"])
        [digest_id] = compose_chunk(claim_due_subscribers(timezone.now(), 10))
        return digest_id

    return compose


def test_a_redelivered_send_task_sends_nothing_twice(composed, mailoutbox) -> None:  # type: ignore[no-untyped-def]
    digest_id = composed("ada@example.org")

    first, again = send_queued([digest_id]), send_queued([digest_id])

    assert (first.sent, again.sent, again.cancelled) == (1, 0, 0)
    assert len(mailoutbox) == 1


def test_a_stale_digest_resent_by_the_dispatcher_beside_its_own_task_goes_once(
    composed, mailoutbox, eager_tasks, settings
) -> None:  # type: ignore[no-untyped-def]
    digest_id = composed("ada@example.org")
    Digest.objects.filter(pk=digest_id).update(created=timezone.now() - timedelta(hours=1))

    dispatch_digests()  # finds it stale and sends it
    send_queued([digest_id])  # the lost task turns up after all

    assert len(mailoutbox) == 1 and status_of(Digest(pk=digest_id)) == Status.SENT


def test_refused_for_now_goes_back_to_the_queue_and_the_retry_sends_it_once(
    composed, smtp_sink
) -> None:  # type: ignore[no-untyped-def]
    sink, _ = smtp_sink
    sink.reset(Misbehaviour(temporary_share=1.0))  # every first attempt: 421 or 451
    digest_id = composed("ada@example.org")

    result = send_queued([digest_id])

    assert result.retry == [digest_id] and result.sent == 0
    digest = Digest.objects.get(pk=digest_id)
    assert digest.status == Status.QUEUED and re.match(r"\((421|451), ", digest.error)
    assert send_queued([digest_id]).sent == 1
    assert sink.received == {"ada@example.org": 1}


def test_refused_for_good_is_failed_and_never_tried_again(composed, smtp_sink) -> None:  # type: ignore[no-untyped-def]
    sink, _ = smtp_sink
    sink.reset(Misbehaviour(refuse_every=5))  # reader5@ has no mailbox: 550
    digest_id = composed("reader5@example.org")

    assert send_queued([digest_id]).failed == 1
    digest = Digest.objects.get(pk=digest_id)
    assert digest.status == Status.FAILED and "550" in digest.error
    assert send_queued([digest_id]).failed == 0
    assert sink.received == {}


def test_a_digest_still_refused_for_now_after_the_last_retry_is_failed_not_left_queued(
    composed, smtp_sink, settings
) -> None:  # type: ignore[no-untyped-def]
    sink, _ = smtp_sink
    sink.reset(Misbehaviour(temporary_share=1.0))
    digest_id = composed("ada@example.org")

    send_queued_digests.apply(args=[[digest_id]], retries=settings.DIGEST_SEND_RETRIES)

    digest = Digest.objects.get(pk=digest_id)
    assert digest.status == Status.FAILED and digest.error.startswith("gave up after")
    assert sink.received == {}
