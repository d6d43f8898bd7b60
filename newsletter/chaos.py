"""Fault injection behind ``manage.py chaos`` (``make chaos``): the real pipeline (Celery
workers on a Redis of its own, PostgreSQL, an SMTP server on loopback that misbehaves on
command) run over due subscribers while things break, then checked at the SMTP server and in
the database: every due subscriber has exactly one digest received or a recorded permanent
failure, nobody has two, and nobody who stopped gets anything.

It never touches real data: a scratch database ``<name>_chaos`` (as ``bench_digests`` does) and
a ``redis-server`` it starts on a free port.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import OperationalError, close_old_connections, connection
from django.utils import timezone

from newsletter import bench, digests, subscriptions, tracking
from newsletter.models import DeliveryEvent, Digest, DigestItem, Subscriber

ROOT = Path(settings.BASE_DIR)
Status = Subscriber.Status


class ChaosError(Exception):
    """The run cannot start as asked; the message says why."""


# --- A mail server that misbehaves on command ---------------------------------------------------


@dataclass
class Behaviour:
    temporary_share: float = 0.0  # of first attempts answered 451, or 421 and a dropped link
    refuse_every: int = 0  # every n-th reader's address is refused with 550 (0: none)


class FaultySink:
    """aiosmtpd handler: counts what it accepts per recipient, and fails as told."""

    def __init__(self) -> None:
        self.behaviour = Behaviour()
        self.received: Counter[str] = Counter()
        self.tried: set[str] = set()
        self.rng = random.Random(3)
        self.lock = threading.Lock()

    def reset(self, behaviour: Behaviour) -> None:
        with self.lock:
            self.behaviour, self.received, self.tried = behaviour, Counter(), set()

    def refused(self, address: str) -> bool:
        every = self.behaviour.refuse_every
        number = address.split("@")[0].removeprefix("reader")
        return bool(every) and number.isdigit() and int(number) % every == 0

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if self.refused(address):
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            first = [r for r in envelope.rcpt_tos if r not in self.tried]
            self.tried.update(envelope.rcpt_tos)
            if first and self.rng.random() < self.behaviour.temporary_share:
                if self.rng.random() < 0.5:
                    return "451 4.3.0 Temporary local problem, try again"
                asyncio.get_running_loop().call_soon(server.transport.close)
                return "421 4.3.2 Service shutting down, closing the connection"
            self.received.update(envelope.rcpt_tos)
        return "250 Message accepted"


# --- Processes: Redis, workers, beat ------------------------------------------------------------


class Redis:
    """A redis-server of our own that keeps nothing on disk, so a restart loses the queue."""

    def __init__(self) -> None:
        self.binary = shutil.which("redis-server")
        if not self.binary:
            raise ChaosError("redis-server is not installed (apt-get install redis-server)")
        self.port = bench.free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert self.binary
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return
            time.sleep(0.05)
        raise ChaosError("redis-server did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class Process:
    """A Celery worker or beat in its own process group, so SIGKILL takes all of it."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], logs: Path) -> None:
        self.name, self.args, self.env = name, args, env
        self.log = logs / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, ready: str | None = " ready.", timeout: float = 60) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "config", *self.args],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while ready and ready not in self.log.read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise ChaosError(f"{self.name} did not start:\n{self.log.read_text()[-2000:]}")
            time.sleep(0.1)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process and self.process.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            with suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=30)
            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def worker(name: str, env: dict[str, str], logs: Path) -> Process:
    return Process(
        name,
        [
            "worker",
            "--concurrency=1",
            "--pool=prefork",
            f"--hostname={name}@%h",
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
        ],
        env,
        logs,
    )


def beat(name: str, env: dict[str, str], logs: Path) -> Process:
    schedule = logs / f"{name}-schedule"
    return Process(
        name,
        [
            "beat",
            "--loglevel=INFO",
            "--scheduler=celery.beat:PersistentScheduler",
            f"--schedule={schedule}",
        ],
        env,
        logs,
    )


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

    sink: FaultySink
    redis: Redis
    env: dict[str, str]
    logs: Path
    subscribers: int
    chunk: int
    timeout: float
    rng: random.Random
    processes: list[Process] = field(default_factory=list)

    def worker(self, name: str) -> Process:
        process = worker(name, self.env, self.logs)
        process.start()
        self.processes.append(process)
        return process

    def two_workers(self) -> Process:
        """Start workers chaos-a and chaos-b; return chaos-a."""
        first = self.worker("chaos-a")
        self.worker("chaos-b")
        return first

    def stop_all(self) -> None:
        for process in self.processes:
            process.kill(signal.SIGTERM)
        self.processes = []


def reset(run: Run, behaviour: Behaviour) -> list[int]:
    """Fresh subscribers, all due now; no digests or events yet; an empty queue."""

    DeliveryEvent.objects.all().delete()
    DigestItem.objects.all().delete()
    Digest.objects.all().delete()
    Subscriber.objects.all().delete()
    papers = list(bench.Paper.objects.all())
    ids = bench.create_subscribers(run.rng, run.subscribers, papers, timezone.now())
    bench.purge_queues()
    run.sink.reset(behaviour)
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
    reset(run, Behaviour())
    started = time.monotonic()
    victim = run.two_workers()
    return judge(
        run,
        "one of two workers SIGKILLed mid-chunk",
        started,
        drive(run, lambda: victim.kill(signal.SIGKILL)),
    )


def case_double_dispatch(run: Run) -> Outcome:
    reset(run, Behaviour())
    started = time.monotonic()
    run.two_workers()
    beats = [beat(f"chaos-beat-{n}", run.env, run.logs) for n in (1, 2)]
    for b in beats:
        b.start(ready=None)
        run.processes.append(b)

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
    reset(run, Behaviour(temporary_share=0.3, refuse_every=25))
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
    reset(run, Behaviour())
    started = time.monotonic()
    run.two_workers()

    def restart() -> None:
        run.redis.stop()
        time.sleep(3)
        run.redis.start()

    return judge(run, "Redis restarted mid-run (its queue lost)", started, drive(run, restart))


def case_postgres_cut(run: Run) -> Outcome:
    reset(run, Behaviour())
    started = time.monotonic()
    run.two_workers()
    name = connection.settings_dict["NAME"]

    def cut() -> None:
        for _ in range(3):
            with bench.ScratchDatabase().admin() as admin:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    [name],
                )
            time.sleep(1)

    return judge(run, "PostgreSQL connections cut mid-run (3 times)", started, drive(run, cut))


def case_stop_after_claim(run: Run) -> Outcome:
    """Unsubscribes, bounces and complaints arriving between the claim and the send."""
    from newsletter.tasks import compose_digest_chunk, send_queued_digests

    ids = reset(run, Behaviour())
    started = time.monotonic()
    claimed = digests.claim_due_subscribers(timezone.now(), run.subscribers)
    readers = list(Subscriber.objects.filter(id__in=claimed).order_by("id"))
    stopped: set[str] = set()
    ways = [
        subscriptions.unsubscribe,
        lambda r: tracking.stop_mail(r.pk, Status.BOUNCED),
        lambda r: tracking.stop_mail(r.pk, Status.COMPLAINED),
    ]

    def stop(batch: list[Subscriber]) -> None:
        for n, reader in enumerate(batch):
            ways[n % len(ways)](reader)
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
        raise ChaosError("chaos needs PostgreSQL: set DATABASE_URL=postgres://...")
    from config.celery import app

    scratch = bench.ScratchDatabase("chaos")
    redis = Redis()
    redis.start()
    logs = Path(settings.VAR_DIR) / "chaos"
    saved = {
        n: getattr(settings, n)
        for n in (
            "DEBUG",
            "DIGEST_CHUNK_SIZE",
            "DIGEST_CLAIM_LEASE_MINUTES",
            "DIGEST_WHEN_NOTHING_MATCHES",
        )
    }
    settings.DEBUG = False
    settings.DIGEST_CHUNK_SIZE = chunk
    settings.DIGEST_CLAIM_LEASE_MINUTES = 1  # recover from lost work within a minute
    settings.DIGEST_WHEN_NOTHING_MATCHES = "trending"  # so every due subscriber gets one
    # Celery prefers the CELERY_BROKER_URL variable to its configuration: point both at ours.
    saved_broker = os.environ.get("CELERY_BROKER_URL")
    os.environ["CELERY_BROKER_URL"] = app.conf.broker_url = redis.url
    app._after_fork()  # drop pooled connections to the configured broker; new ones go to ours
    outcomes = []
    try:
        with bench.smtp_sink(FaultySink()) as (sink, port):
            env = bench.worker_env(scratch.url, redis.url, port, chunk) | {
                "DIGEST_CLAIM_LEASE_MINUTES": "1",
                "DIGEST_RETRY_BASE_SECONDS": "1",
                "DIGEST_SEND_RETRIES": "8",
                "DIGEST_DISPATCH_EVERY": "10",
                "REDIS_URL": "",
            }
            scratch.create(env)
            with scratch.use():
                bench.create_papers(random.Random(1), 300, timezone.now())
                run = Run(sink, redis, env, logs, subscribers, chunk, timeout, random.Random(2))
                for name in names:
                    try:
                        outcome = CASES[name](run)
                    finally:
                        run.stop_all()
                    report(outcome)
                    outcomes.append(outcome)
    finally:
        for name, value in saved.items():
            setattr(settings, name, value)
        if saved_broker is None:
            os.environ.pop("CELERY_BROKER_URL", None)
        else:
            os.environ["CELERY_BROKER_URL"] = saved_broker
        app._after_fork()
        redis.stop()
        scratch.drop()
    return outcomes
