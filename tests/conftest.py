"""Shared fixtures. Tests that need PostgreSQL, Redis or Chromium fail in CI when the service is
missing (PAPERBOY_REQUIRE_SERVICES=1, set by .ci/run) and skip, saying why, everywhere else."""

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection, connections
from hypothesis import settings as hypothesis_settings

ROOT = Path(__file__).resolve().parent.parent
REQUIRE_SERVICES = os.environ.get("PAPERBOY_REQUIRE_SERVICES") == "1"

# In CI the property-based tests explore the same examples every run, so a red build names a
# reproducible bug; elsewhere each run explores new ones (and a failure prints its blob).
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
hypothesis_settings.register_profile("dev", print_blob=True)
hypothesis_settings.load_profile("ci" if os.environ.get("CI") else "dev")


def missing_service(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (services are required here: PAPERBOY_REQUIRE_SERVICES=1)")
    pytest.skip(f"{reason}; .ci/run provides it")


@pytest.fixture(autouse=True)
def _fast_and_isolated(settings, tmp_path):  # type: ignore[no-untyped-def]
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.PAPERS_FETCH_BACKOFF = 0.01
    settings.PAPERS_POLITE_INTERVAL = 0  # the tests of politeness set it
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    from django.core.cache import cache

    cache.clear()  # rate-limit counters must not leak from one test into the next


@pytest.fixture
def eager_tasks() -> Iterator[None]:
    """Celery tasks run where they are queued, in this process (after the commit, for those
    queued on commit)."""
    from config.celery import app

    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


@pytest.fixture
def postgres() -> None:
    if connection.vendor != "postgresql":
        missing_service("needs PostgreSQL: set DATABASE_URL=postgres://...")


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("REDIS_URL", "")
    if not url:
        missing_service("needs Redis: set REDIS_URL=redis://...")
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        missing_service(f"Redis at {url} does not answer: {exc}")
    return url


@pytest.fixture
def chromium_path() -> str:
    path = shutil.which("chromium")
    if not path:
        missing_service("needs Debian's chromium on PATH (apt-get install chromium)")
    return str(path)


ARTIFACTS = ROOT / "test-artifacts"  # screenshots of the browser tests (not committed)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture
def browser(chromium_path, live_server, settings, monkeypatch):  # type: ignore[no-untyped-def]
    """Headless Chromium driven by Playwright, with the site's links pointing at live_server."""
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are safe.
    # Only for this test: a subprocess of another test must not inherit it.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    settings.SITE_URL = live_server.url  # links in emails and pages lead to this server
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path, args=FLAGS)
        yield chromium
        # The test's ORM calls, made while Playwright's loop ran, had a connection of their own
        # (another async context): close it here, or it outlives the test database.
        connections.close_all()
        chromium.close()


def worker_environment(broker_url: str) -> dict[str, str]:
    """The environment a subprocess needs to share this test's database, broker and mail."""
    db = connection.settings_dict
    env = dict(os.environ)
    env.update(
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        CELERY_BROKER_URL=broker_url,
        PYTHONUNBUFFERED="1",
        EMAIL_BACKEND=settings.EMAIL_BACKEND,
        EMAIL_HOST=settings.EMAIL_HOST,
        EMAIL_PORT=str(settings.EMAIL_PORT),
        DIGEST_RETRY_BASE_SECONDS="1",
    )
    return env


@pytest.fixture
def celery_worker(
    postgres, redis_url, transactional_db, tmp_path
) -> Iterator[subprocess.Popen[bytes]]:  # type: ignore[no-untyped-def]
    """A real Celery worker process on the Redis broker, using the test database."""
    broker = settings.CELERY_BROKER_URL
    if not broker.startswith("redis://"):
        missing_service(f"needs a Redis broker: CELERY_BROKER_URL is {broker}")
    import redis

    redis.Redis.from_url(broker).flushdb()
    options = ("--concurrency=2", "--without-gossip", "--without-mingle", "--without-heartbeat")
    with running_worker(worker_environment(broker), tmp_path / "worker.log", *options) as proc:
        yield proc


@contextmanager
def running_worker(
    env: dict[str, str], log_path: Path, *options: str
) -> Iterator[subprocess.Popen[bytes]]:
    """A real Celery worker process with ``env``, once it says it is ready; stopped after."""
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--loglevel=INFO", *options],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while " ready." not in log_path.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the Celery worker did not start:\n{log_path.read_text()}")
            time.sleep(0.2)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        print(f"worker log:\n{log_path.read_text()[-3000:]}")


class SmtpSink:
    """A real SMTP server on loopback (aiosmtpd) that keeps what it receives.

    Recipients containing ``reject`` get a permanent 550; those containing ``busy`` get a
    transient 451 the first ``busy_times`` times they are tried.
    """

    def __init__(self, busy_times: int = 1) -> None:
        self.messages: list[bytes] = []
        self.busy_times = busy_times
        self.busy_seen: dict[str, int] = {}

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        if "reject" in address:
            return "550 5.1.1 No such user here"
        if "busy" in address:
            self.busy_seen[address] = self.busy_seen.get(address, 0) + 1
            if self.busy_seen[address] <= self.busy_times:
                return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.messages.append(envelope.original_content or envelope.content)
        return "250 Message accepted for delivery"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def smtp_sink(settings) -> Iterator[tuple[SmtpSink, int]]:  # type: ignore[no-untyped-def]
    """Start the sink and point this process's email settings at it."""
    from aiosmtpd.controller import Controller

    sink = SmtpSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_USE_TLS = False
    try:
        yield sink, port
    finally:
        controller.stop()
