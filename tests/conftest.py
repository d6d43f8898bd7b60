"""Shared fixtures. Tests that need PostgreSQL, Redis or Chromium fail in CI when the service is
missing (PAPERBOY_REQUIRE_SERVICES=1, set by .ci/run) and skip, saying why, everywhere else."""

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection, connections
from hypothesis import settings as hypothesis_settings

from devtools import harness
from devtools.harness import CeleryProcess

ROOT = Path(__file__).resolve().parent.parent
REQUIRE_SERVICES = os.environ.get("PAPERBOY_REQUIRE_SERVICES") == "1"

# In CI the property-based tests explore the same examples every run, so a red build names a
# reproducible bug; elsewhere each run explores new ones (and a failure prints its blob).
# `make fuzz` (PAPERBOY_FUZZ=1) explores ten times as many from a fresh seed it prints.
FUZZ = os.environ.get("PAPERBOY_FUZZ") == "1"
EXAMPLES_FACTOR = 10 if FUZZ else 1
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
hypothesis_settings.register_profile("dev", print_blob=True)
hypothesis_settings.register_profile("fuzz", max_examples=100 * EXAMPLES_FACTOR, print_blob=True)
hypothesis_settings.load_profile("fuzz" if FUZZ else "ci" if os.environ.get("CI") else "dev")


def examples(count: int) -> int:
    """A property test's number of examples: ``count``, ten times as many under `make fuzz`."""
    return count * EXAMPLES_FACTOR


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
    """Tasks queued by the code under test run at once in this process, errors raised."""
    from config.celery import app

    app.conf.task_always_eager = app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager = app.conf.task_eager_propagates = False


@pytest.fixture
def postgres() -> None:
    if connection.vendor != "postgresql":
        missing_service("needs PostgreSQL: set DATABASE_URL=postgres://...")


@contextmanager
def address_lookup_plans() -> Iterator[list[str]]:
    """PostgreSQL's plans of the queries run in the block that find subscribers by address, as
    if the table were large (sequential scans off: a plan that still reads every row cannot
    use an index). The list is filled when the block ends."""
    from django.test.utils import CaptureQueriesContext

    plans: list[str] = []
    with CaptureQueriesContext(connection) as captured:
        yield plans
    by_address = [
        query["sql"]
        for query in captured.captured_queries
        if query["sql"].startswith("SELECT") and '("newsletter_subscriber"."email"' in query["sql"]
    ]
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        for sql in by_address:
            cursor.execute(f"EXPLAIN {sql}")
            plans.append("\n".join(row[0] for row in cursor.fetchall()))


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
    return harness.process_env(
        harness.database_url(connection.settings_dict["NAME"]),
        broker_url,
        EMAIL_BACKEND=settings.EMAIL_BACKEND,
        EMAIL_HOST=settings.EMAIL_HOST,
        EMAIL_PORT=str(settings.EMAIL_PORT),
        DIGEST_RETRY_BASE_SECONDS="1",
        DEVTOOLS="true",
    )


@pytest.fixture
def celery_worker(postgres, redis_url, transactional_db, tmp_path) -> Iterator[CeleryProcess]:  # type: ignore[no-untyped-def]
    """A real Celery worker process on the Redis broker, using the test database."""
    broker = settings.CELERY_BROKER_URL
    if not broker.startswith("redis://"):
        missing_service(f"needs a Redis broker: CELERY_BROKER_URL is {broker}")
    import redis

    redis.Redis.from_url(broker).flushdb()
    log = tmp_path / "worker.log"
    try:
        with harness.running_worker(
            worker_environment(broker), log, "--concurrency=2", "--without-heartbeat"
        ) as worker:
            yield worker
    finally:
        print(f"worker log:\n{log.read_text()[-3000:] if log.exists() else ''}")


@pytest.fixture
def smtp_sink(settings) -> Iterator[tuple[harness.SmtpSink, int]]:  # type: ignore[no-untyped-def]
    """A real SMTP server on loopback that keeps what it receives; this process mails it."""
    with harness.smtp_sink(harness.SmtpSink(keep=True)) as (sink, port):
        settings.EMAIL_BACKEND = harness.SMTP_BACKEND
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
        settings.EMAIL_USE_TLS = False
        yield sink, port
