"""The development harness: what the benchmark (``devtools.bench``), the fault injection
(``devtools.chaos``) and the tests (``tests/conftest.py``) run the real pipeline with.

- ``ScratchDatabase``: a database of its own next to the configured one, migrated in a
  subprocess, that this process can point at for a while.
- ``SmtpSink`` and ``smtp_sink``: an SMTP server on loopback (aiosmtpd) that counts what it
  receives per recipient, keeps the messages if asked, and misbehaves on command
  (``Misbehaviour``); ``email_to`` points this process's email at it.
- ``CeleryProcess``, ``worker``, ``beat``, ``running_worker``: Celery in subprocesses, each in
  its own process group, with their CPU time and peak memory read from ``/proc``.
- ``RedisServer``: a ``redis-server`` of our own that keeps nothing on disk.
- ``process_env``, ``private_queues``, ``private_broker``, ``purge_queues``: the environment of
  those subprocesses, and this process's Celery app pointed at the same queues.

Nothing here is product code: it is not in the production image (see Dockerfile).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from django.conf import settings
from django.db import connection
from django.test.utils import override_settings

ROOT = Path(settings.BASE_DIR)


class HarnessError(Exception):
    """A run cannot start or go on as asked; the message says why."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- Scratch database ---------------------------------------------------------------------------


def database_url(name: str) -> str:
    """The configured ``DATABASE_URL`` with another database name (a path with SQLite)."""
    return urlsplit(settings.DATABASE_URL)._replace(path=f"/{name}").geturl()


class ScratchDatabase:
    """A database of its own, ``<configured name>_<suffix>`` (a file under ``var/`` with
    SQLite), migrated in a subprocess; while ``use()`` is active this process's default
    connection points at it. Real data is never touched."""

    def __init__(self, suffix: str = "bench") -> None:
        self.settings_dict = connection.settings_dict
        self.vendor = connection.vendor
        self.original_name = str(self.settings_dict["NAME"])
        if self.vendor == "postgresql":
            self.name = f"{self.original_name}_{suffix}"
            self.url = database_url(self.name)
        elif self.vendor == "sqlite":
            path = Path(settings.VAR_DIR) / f"{suffix}.sqlite3"
            self.name = str(path.resolve())
            self.url = f"sqlite:///{self.name}"
        else:
            raise HarnessError(f"a scratch database needs PostgreSQL or SQLite, not {self.vendor}")

    def admin(self) -> Any:
        """A connection to the server's ``postgres`` database, to create and drop ours."""
        import psycopg

        db = self.settings_dict
        return psycopg.connect(
            host=db.get("HOST") or None,
            port=db.get("PORT") or None,
            user=db.get("USER") or None,
            password=db.get("PASSWORD") or None,
            dbname="postgres",
            autocommit=True,
        )

    def create(self, env: dict[str, str]) -> None:
        """Drop the scratch database if it exists, create it and run the migrations into it."""
        self.drop()
        if self.vendor == "postgresql":
            from psycopg import sql

            with self.admin() as admin:
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))
        migrate = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--no-input", "--verbosity=0"],
            cwd=ROOT,
            env={**env, "DATABASE_URL": self.url},
            capture_output=True,
            text=True,
        )
        if migrate.returncode:
            raise HarnessError(f"migrating {self.name} failed:\n{migrate.stderr[-3000:]}")

    def drop(self) -> None:
        if self.vendor == "postgresql":
            from psycopg import sql

            with self.admin() as admin:
                admin.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(self.name)
                    )
                )
        else:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(self.name + suffix).unlink(missing_ok=True)

    def cut_connections(self) -> None:
        """Terminate every other connection to the scratch database (PostgreSQL)."""
        with self.admin() as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                [self.name],
            )

    @contextmanager
    def use(self) -> Iterator[None]:
        connection.close()
        self.settings_dict["NAME"] = self.name
        try:
            yield
        finally:
            connection.close()
            self.settings_dict["NAME"] = self.original_name


# --- SMTP sink ----------------------------------------------------------------------------------


@dataclass
class Misbehaviour:
    """What the sink does wrong on purpose."""

    temporary_share: float = 0.0  # of first attempts answered 451, or 421 and a dropped link
    refuse_every: int = 0  # every n-th reader's address is refused with 550 (0: none)


class SmtpSink:
    """An aiosmtpd handler that accepts mail, counts it per recipient (``received``), keeps the
    raw messages when ``keep`` is set, and fails as ``misbehaviour`` says."""

    def __init__(self, misbehaviour: Misbehaviour | None = None, keep: bool = False) -> None:
        self.keep = keep
        self.lock = threading.Lock()
        self.rng = random.Random(3)
        self.reset(misbehaviour)

    def reset(self, misbehaviour: Misbehaviour | None = None) -> None:
        with self.lock:
            self.misbehaviour = misbehaviour or Misbehaviour()
            self.received: Counter[str] = Counter()
            self.tried: set[str] = set()
            self.messages: list[bytes] = []
            self.count = 0  # messages accepted
            self.last = 0.0  # time.perf_counter() when the last one arrived

    @property
    def duplicates(self) -> int:
        """Messages to a recipient who had already received one."""
        return sum(n - 1 for n in self.received.values() if n > 1)

    def refused(self, address: str) -> bool:
        every = self.misbehaviour.refuse_every
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
            if first and self.rng.random() < self.misbehaviour.temporary_share:
                if self.rng.random() < 0.5:
                    return "451 4.3.0 Temporary local problem, try again"
                asyncio.get_running_loop().call_soon(server.transport.close)
                return "421 4.3.2 Service shutting down, closing the connection"
            self.received.update(envelope.rcpt_tos)
            if self.keep:
                self.messages.append(envelope.original_content or envelope.content)
            self.count += 1
            self.last = time.perf_counter()
        return "250 Message accepted for delivery"


Handler = TypeVar("Handler")


@contextmanager
def smtp_sink(handler: Handler, port: int | None = None) -> Iterator[tuple[Handler, int]]:
    """An aiosmtpd server with ``handler`` on loopback, on ``port`` or a free one, while the
    block runs."""
    from aiosmtpd.controller import Controller

    # aiosmtpd logs every command at INFO; the callers say enough.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    port = port or free_port()
    # The default limit (33 MB) is fine; a digest is ~20 kB. No TLS: loopback only.
    controller = Controller(handler, hostname="127.0.0.1", port=port, ready_timeout=10)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


SMTP_BACKEND = "django.core.mail.backends.smtp.EmailBackend"


def email_to(port: int) -> override_settings:
    """This process's emails go to the sink on ``port`` (a context manager)."""
    return override_settings(
        EMAIL_BACKEND=SMTP_BACKEND, EMAIL_HOST="127.0.0.1", EMAIL_PORT=port, EMAIL_USE_TLS=False
    )


# --- Environment, queues and broker -------------------------------------------------------------


def process_env(
    database: str, broker: str, smtp_port: int | None = None, **overrides: str
) -> dict[str, str]:
    """The environment of a subprocess (a worker, beat, ``manage.py``) that works on the
    database and broker at these URLs and, with ``smtp_port``, mails the sink on loopback."""
    env = {
        **os.environ,
        "DATABASE_URL": database,
        "CELERY_BROKER_URL": broker,
        "SECRET_KEY": settings.SECRET_KEY,  # for DEBUG=false among the overrides
        "PYTHONUNBUFFERED": "1",
    }
    if smtp_port is not None:
        env |= {
            "EMAIL_BACKEND": SMTP_BACKEND,
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(smtp_port),
            "EMAIL_USE_TLS": "false",
            "EMAIL_HOST_USER": "",
            "EMAIL_HOST_PASSWORD": "",
        }
    return env | overrides


def purge_queues(prefix: str = "") -> None:
    """Empty every queue of ``settings.CELERY_TASK_QUEUES`` (names given the ``prefix``)."""
    from config.celery import app

    with app.connection_for_write() as conn:
        for queue in settings.CELERY_TASK_QUEUES:
            conn.default_channel.queue_purge(prefix + queue.name)


@contextmanager
def private_queues(prefix: str) -> Iterator[None]:
    """Tasks sent from this process go to queues of their own (give the workers the same
    ``CELERY_QUEUE_PREFIX``), so no other worker on the broker takes them, and those workers
    take nothing else. The queues start empty."""
    from config.celery import app

    saved = app.conf.task_default_queue, app.conf.task_routes
    app.conf.task_default_queue = f"{prefix}celery"
    app.conf.task_routes = {
        task: {"queue": prefix + route["queue"]}
        for task, route in settings.CELERY_TASK_ROUTES.items()
    }
    app.amqp.flush_routes()
    purge_queues(prefix)
    try:
        yield
    finally:
        app.conf.task_default_queue, app.conf.task_routes = saved
        app.amqp.flush_routes()


@contextmanager
def private_broker(url: str) -> Iterator[None]:
    """This process's Celery app sends to the broker at ``url`` while the block runs."""
    from config.celery import app

    # Celery prefers the CELERY_BROKER_URL variable to its configuration: point both at it.
    saved_env, saved_conf = os.environ.get("CELERY_BROKER_URL"), app.conf.broker_url
    os.environ["CELERY_BROKER_URL"] = app.conf.broker_url = url
    app._after_fork()  # drop pooled connections to the old broker; new ones go to ours
    try:
        yield
    finally:
        if saved_env is None:
            os.environ.pop("CELERY_BROKER_URL", None)
        else:
            os.environ["CELERY_BROKER_URL"] = saved_env
        app.conf.broker_url = saved_conf
        app._after_fork()


# --- Processes: Celery workers and beat, Redis --------------------------------------------------


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += children.get(current, [])
    return found


def peak_rss_mb(pids: list[int]) -> dict[int, float]:
    """Each process's peak resident set size (VmHWM) in MB; processes gone are left out."""
    peaks = {}
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
        if match:
            peaks[pid] = int(match.group(1)) / 1024
    return peaks


TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """Each process's CPU time so far (user + system) in seconds; processes gone are left out."""
    found = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[pid] = (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime
    return found


class CeleryProcess:
    """``celery -A config ARGS`` in its own process group (so SIGKILL takes the pool too),
    logging to a file. ``sample()`` keeps each of its processes' peak RSS and CPU time, read
    while they run: they vanish on exit."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.args, self.env, self.log = name, args, env, log
        self.process: subprocess.Popen[bytes] | None = None
        self.peaks: dict[int, float] = {}
        self.cpu: dict[int, float] = {}

    def start(self, ready: str | None = " ready.", timeout: float = 60) -> None:
        """Start, and wait until the log says ``ready`` (None: don't wait)."""
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
                raise HarnessError(f"{self.name} did not start:\n{self.log_tail()}")
            time.sleep(0.1)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def sample(self) -> None:
        if self.process is None:
            return
        pids = descendants(self.process.pid)
        for pid, mb in peak_rss_mb(pids).items():
            self.peaks[pid] = max(self.peaks.get(pid, 0.0), mb)
        self.cpu.update(cpu_seconds(pids))

    def cpu_total(self) -> float:
        """CPU seconds of every process of it seen so far (by ``sample``)."""
        return sum(self.cpu.values())

    def kill(self) -> None:
        """SIGKILL the whole process group, at once: no warm shutdown."""
        if self.alive():
            assert self.process is not None
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM (a warm shutdown), and SIGKILL for all of it after ``timeout`` seconds."""
        if not self.alive():
            return
        assert self.process is not None
        self.sample()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        with suppress(ProcessLookupError):  # a pool child orphaned by the parent's exit
            os.killpg(self.process.pid, signal.SIGKILL)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text()[-chars:] if self.log.exists() else ""


def worker(name: str, env: dict[str, str], log: Path, *options: str) -> CeleryProcess:
    """A Celery worker (prefork) with ``options`` (``--concurrency=1`` unless given)."""
    if not any(o.startswith("--concurrency") for o in options):
        options = ("--concurrency=1", *options)
    return CeleryProcess(
        name,
        [
            "worker",
            "--pool=prefork",
            f"--hostname={name}@%h",
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
            *options,
        ],
        env,
        log,
    )


def beat(name: str, env: dict[str, str], log: Path, *options: str) -> CeleryProcess:
    """Celery beat with ``options``; unless they name a ``--scheduler``, with a schedule file
    of its own beside the log (several beats at once keep apart), not the database's."""
    if not any(o.startswith("--scheduler") for o in options):
        schedule = log.with_name(f"{name}-schedule")
        options = (
            "--scheduler=celery.beat:PersistentScheduler",
            f"--schedule={schedule}",
            *options,
        )
    pidfile = log.with_name(f"{name}.pid")  # not celerybeat.pid in the working directory
    return CeleryProcess(
        name, ["beat", "--loglevel=INFO", f"--pidfile={pidfile}", *options], env, log
    )


@contextmanager
def running_worker(env: dict[str, str], log: Path, *options: str) -> Iterator[CeleryProcess]:
    """A started Celery worker while the block runs; stopped after."""
    process = worker(f"worker{os.getpid()}", env, log, *options)
    try:
        process.start()
        yield process
    finally:
        process.stop()


class RedisServer:
    """A redis-server of our own on a free port that keeps nothing on disk, so a restart
    loses its queues."""

    def __init__(self) -> None:
        self.binary = shutil.which("redis-server")
        if not self.binary:
            raise HarnessError("redis-server is not installed (apt-get install redis-server)")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert self.binary
        self.process = subprocess.Popen(
            [
                *(self.binary, "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no"),  # nothing on disk
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return
            time.sleep(0.05)
        raise HarnessError("redis-server did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
