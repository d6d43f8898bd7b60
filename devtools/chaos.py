"""Fault injection behind ``manage.py chaos`` (``make chaos``): the real pipeline (Celery
workers on a Redis of its own, PostgreSQL, an SMTP server on loopback that misbehaves on
command) run over due subscribers while things break, then checked at the SMTP server and in
the database: every due subscriber has exactly one digest received or a recorded permanent
failure, nobody has two, and nobody who stopped gets anything.

It never touches real data: a scratch database ``<name>_chaos`` (as ``bench_digests`` does) and
a ``redis-server`` it starts on a free port.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import OperationalError, close_old_connections, connection
from django.test.utils import override_settings
from django.utils import timezone

from devtools import harness
from devtools.harness import CeleryProcess, HarnessError, Misbehaviour, RedisServer, SmtpSink
from devtools.population import create_papers, create_subscribers
from newsletter import digests
from newsletter.models import DeliveryEvent, Digest, DigestItem, Subscriber
from papers.models import Paper

Status = Subscriber.Status


# --- Cases --------------------------------------------------------------------------------------


@dataclass
class Outcome:
    case: str
    due: int
    received: int = 0
    duplicates: int = 0
    lost: int = 0
    failed: int = 0
    unwanted: int = 0  # mail to subscribers who had stopped
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.duplicates or self.lost or self.unwanted)


@dataclass
class Run:
    """What a case works with."""

    sink: SmtpSink
    redis: RedisServer
    scratch: harness.ScratchDatabase
    env: dict[str, str]
    logs: Path
    subscribers: int
    chunk: int
    timeout: float
    rng: random.Random
    processes: list[CeleryProcess] = field(default_factory=list)

    def start(self, process: CeleryProcess, ready: str | None = " ready.") -> CeleryProcess:
        self.processes.append(process)
        process.start(ready)
        return process

    def worker(self, name: str) -> CeleryProcess:
        return self.start(harness.worker(name, self.env, self.logs / f"{name}.log"))

    def two_workers(self) -> CeleryProcess:
        """Start workers chaos-a and chaos-b; return chaos-a."""
        first = self.worker("chaos-a")
        self.worker("chaos-b")
        return first

    def stop_all(self) -> None:
        for process in self.processes:
            process.stop()
        self.processes = []


def reset(run: Run, misbehaviour: Misbehaviour) -> list[int]:
    """Fresh subscribers, all due now; no digests or events yet; an empty queue."""

    DeliveryEvent.objects.all().delete()
    DigestItem.objects.all().delete()
    Digest.objects.all().delete()
    Subscriber.objects.all().delete()
    papers = list(Paper.objects.all())
    ids = create_subscribers(run.rng, run.subscribers, papers, timezone.now())
    harness.purge_queues()
    run.sink.reset(misbehaviour)
    return ids


def dispatch_safely() -> str:
    """``dispatch_digests`` as beat would run it, surviving a broker or database outage."""
    from newsletter.tasks import dispatch_digests

    try:
        dispatch_digests()
        return ""
    except Exception as exc:  # the outage is the point of the case; try again next tick
        close_old_connections()
        with suppress(Exception):
            connection.close()
        return f"dispatch failed: {type(exc).__name__}: {exc}"[:160]


def settled() -> bool:
    now = timezone.now()
    waiting = Subscriber.objects.filter(status=Status.ACTIVE, next_digest_at__lte=now).exists()
    open_digests = Digest.objects.filter(status__in=["queued", "sending"]).exists()
    return not waiting and not open_digests


def drive(run: Run, fault: Callable[[], None] | None = None, after: float = 0.2) -> list[str]:
    """Dispatch every two seconds (a fast beat) until everything settles; call ``fault`` once
    when ``after`` of the due digests have arrived."""
    errors: Counter[str] = Counter()
    deadline = time.monotonic() + run.timeout
    faulted = fault is None
    while time.monotonic() < deadline:
        if error := dispatch_safely():
            errors[error] += 1
        if not faulted and sum(run.sink.received.values()) >= after * run.subscribers:
            fault()  # type: ignore[misc]
            faulted = True
        try:
            if faulted and settled():
                time.sleep(2)  # let late redeliveries show themselves as duplicates
                if settled():
                    break
        except OperationalError:
            connection.close()
        time.sleep(2)
    else:
        errors[f"did not settle within {run.timeout:.0f} s"] += 1
    return [f"{error} (x{n})" if n > 1 else error for error, n in errors.items()]


def judge(
    run: Run,
    case: str,
    started: float,
    notes: list[str],
    stopped: frozenset[str] = frozenset(),
) -> Outcome:
    close_old_connections()
    everyone = set(Subscriber.objects.values_list("email", flat=True))
    due = everyone - stopped
    failed = set(
        Digest.objects.filter(status=Digest.Status.FAILED).values_list(
            "subscriber__email", flat=True
        )
    )
    received = run.sink.received
    return Outcome(
        case=case,
        due=len(due),
        received=sum(1 for e in due if received[e]),
        duplicates=sum(1 for e in everyone if received[e] > 1),
        lost=sum(1 for e in due if not received[e] and e not in failed),
        failed=len(failed & due),
        unwanted=sum(1 for e in stopped if received[e]),
        seconds=round(time.monotonic() - started, 1),
        notes=notes,
    )


def case_worker_killed(run: Run) -> Outcome:
    reset(run, Misbehaviour())
    started = time.monotonic()
    victim = run.two_workers()
    return judge(
        run,
        "one of two workers SIGKILLed mid-chunk",
        started,
        drive(run, victim.kill),
    )


def case_double_dispatch(run: Run) -> Outcome:
    reset(run, Misbehaviour())
    started = time.monotonic()
    run.two_workers()
    for n in (1, 2):
        run.start(harness.beat(f"chaos-beat-{n}", run.env, run.logs / f"chaos-beat-{n}.log"), None)

    def race() -> None:
        dispatch_safely()
        connection.close()

    racers = [threading.Thread(target=race) for _ in range(3)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()
    return judge(run, "dispatch run three times at once, and two beats", started, drive(run))


def case_flaky_smtp(run: Run) -> Outcome:
    reset(run, Misbehaviour(temporary_share=0.3, refuse_every=25))
    started = time.monotonic()
    run.two_workers()
    outcome = judge(
        run, "SMTP 421/451 and dropped links (30%), 550 for 1 in 25", started, drive(run)
    )
    refused = {e for e in Subscriber.objects.values_list("email", flat=True) if run.sink.refused(e)}
    not_failed = refused - set(
        Digest.objects.filter(status="failed").values_list("subscriber__email", flat=True)
    )
    if not_failed:
        outcome.lost += len(not_failed)
        outcome.notes.append(f"{len(not_failed)} refused addresses not recorded as failed")
    return outcome


def case_redis_restart(run: Run) -> Outcome:
    reset(run, Misbehaviour())
    started = time.monotonic()
    run.two_workers()

    def restart() -> None:
        run.redis.stop()
        time.sleep(3)
        run.redis.start()

    return judge(run, "Redis restarted mid-run (its queue lost)", started, drive(run, restart))


def case_postgres_cut(run: Run) -> Outcome:
    reset(run, Misbehaviour())
    started = time.monotonic()
    run.two_workers()

    def cut() -> None:
        for _ in range(3):
            run.scratch.cut_connections()
            time.sleep(1)

    return judge(run, "PostgreSQL connections cut mid-run (3 times)", started, drive(run, cut))


def case_stop_after_claim(run: Run) -> Outcome:
    """Unsubscribes, bounces and complaints arriving between the claim and the send."""
    from newsletter.tasks import compose_digest_chunk, send_queued_digests

    ids = reset(run, Misbehaviour())
    started = time.monotonic()
    claimed = digests.claim_due_subscribers(timezone.now(), run.subscribers)
    readers = list(Subscriber.objects.filter(id__in=claimed).order_by("id"))
    stopped: set[str] = set()
    ways = [Status.UNSUBSCRIBED, Status.BOUNCED, Status.COMPLAINED]

    def stop(batch: list[Subscriber]) -> None:
        for n, reader in enumerate(batch):
            Subscriber.objects.filter(pk=reader.pk).stop_mail(ways[n % len(ways)])
            stopped.add(reader.email)

    tenth = len(readers) // 10
    stop(readers[:tenth])  # a tenth stop after the claim
    half = len(claimed) // 2
    queued = digests.compose_chunk(claimed[:half])  # composed, not yet sent...
    stop(readers[half : half + tenth])  # ...and a tenth of those stop too
    run.two_workers()
    send_queued_digests.delay(queued)
    for start in range(half, len(claimed), run.chunk):
        compose_digest_chunk.delay(claimed[start : start + run.chunk])
    outcome = judge(
        run,
        "unsubscribe/bounce/complaint after claim, before send",
        started,
        drive(run),
        frozenset(stopped),
    )
    outcome.notes.append(f"{len(stopped)} of {len(ids)} stopped")
    return outcome


CASES: dict[str, Callable[[Run], Outcome]] = {
    "kill-worker": case_worker_killed,
    "double-dispatch": case_double_dispatch,
    "flaky-smtp": case_flaky_smtp,
    "redis-restart": case_redis_restart,
    "postgres-cut": case_postgres_cut,
    "stop-after-claim": case_stop_after_claim,
}


def run_cases(
    names: list[str],
    subscribers: int,
    chunk: int,
    timeout: float,
    report: Callable[[Outcome], None],
) -> list[Outcome]:
    if connection.vendor != "postgresql":
        raise HarnessError("chaos needs PostgreSQL: set DATABASE_URL=postgres://...")
    scratch = harness.ScratchDatabase("chaos")
    redis = RedisServer()
    redis.start()
    logs = Path(settings.VAR_DIR) / "chaos"
    outcomes = []
    try:
        with (
            override_settings(
                DEBUG=False,
                DIGEST_CHUNK_SIZE=chunk,
                DIGEST_CLAIM_LEASE_MINUTES=1,  # recover from lost work within a minute
                DIGEST_WHEN_NOTHING_MATCHES="trending",  # so every due subscriber gets one
            ),
            harness.private_broker(redis.url),
            harness.smtp_sink(SmtpSink()) as (sink, port),
        ):
            env = harness.process_env(
                scratch.url,
                redis.url,
                port,
                DEBUG="false",
                DIGEST_CHUNK_SIZE=str(chunk),
                DIGEST_WHEN_NOTHING_MATCHES="trending",
                DIGEST_CLAIM_LEASE_MINUTES="1",
                DIGEST_RETRY_BASE_SECONDS="1",
                DIGEST_SEND_RETRIES="8",
                DIGEST_DISPATCH_EVERY="10",
                REDIS_URL="",
            )
            scratch.create(env)
            with scratch.use():
                create_papers(random.Random(1), 300, timezone.now())
                run = Run(
                    sink, redis, scratch, env, logs, subscribers, chunk, timeout, random.Random(2)
                )
                for name in names:
                    try:
                        outcome = CASES[name](run)
                    finally:
                        run.stop_all()
                    report(outcome)
                    outcomes.append(outcome)
    finally:
        redis.stop()
        scratch.drop()
    return outcomes
