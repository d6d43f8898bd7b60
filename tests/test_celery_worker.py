"""Ingestion through a real Celery worker process on Redis, against PostgreSQL."""

import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from devtools import harness
from papers.importing import last_announcement
from papers.models import ImportRun, Paper
from papers.tasks import import_daily_papers
from tests.conftest import worker_environment
from tests.factories import Request, hf_item, hf_json, http_server

FIXTURES = Path(__file__).resolve().parent / "fixtures"

pytestmark = pytest.mark.integration


@pytest.fixture
def daily_papers_api(monkeypatch):  # type: ignore[no-untyped-def]
    """A local stand-in for huggingface.co's API; the worker reads its address from the env."""

    def respond(path: str, nth: int) -> tuple[int, str, str]:
        day = path.rsplit("=", 1)[-1]
        return (
            200,
            "application/json",
            hf_json(hf_item(arxiv_id=f"2511.{day[-2:]}001", title=f"Paper of {day}", day=day)),
        )

    with http_server(respond) as base:
        monkeypatch.setenv("PAPERS_HF_API_URL", f"{base}/api/daily_papers")
        yield base


def test_a_worker_imports_the_daily_papers_through_redis(daily_papers_api, celery_worker) -> None:  # type: ignore[no-untyped-def]
    import_daily_papers.delay()

    deadline = time.monotonic() + 60
    while Paper.objects.count() < 2 and time.monotonic() < deadline:
        time.sleep(0.3)

    assert Paper.objects.count() == 2  # today's and yesterday's listings
    assert ImportRun.objects.get().new == 2


@pytest.fixture
def arxiv_feed(monkeypatch):  # type: ignore[no-untyped-def]
    """rss.arxiv.org on loopback, serving a published capture; the worker reads the env."""
    # The capture, dated the day its announcement is due now, as arXiv would date today's.
    due = last_announcement(timezone.now()) + timedelta(days=1)
    capture = (FIXTURES / "arxiv_rss_cs.LG_2026-05-22.xml").read_text()
    feed = capture.replace("Fri, 22 May 2026", f"{due:%a, %d %b %Y}")
    seen: list[Request] = []
    with http_server(lambda path, nth: (200, "application/rss+xml", feed), seen) as base:
        monkeypatch.setenv("PAPERS_ARXIV_RSS_URL", f"{base}/rss")
        monkeypatch.setenv("PAPERS_ARXIV_CATEGORIES", "cs.LG,stat.ML")
        monkeypatch.setenv("PAPERS_ARXIV_CHECK_EVERY", "10")
        yield seen


def test_beat_schedules_the_arxiv_import_and_a_worker_runs_it(
    arxiv_feed, daily_papers_api, celery_worker, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    beat = harness.beat(
        "beat",
        worker_environment(settings.CELERY_BROKER_URL),
        tmp_path / "beat.log",
        f"--scheduler={settings.CELERY_BEAT_SCHEDULER}",  # the entries in the database
    )
    beat.start(ready=None)
    try:
        # Beat queues a check as it starts, then its entry every 10 s here: the first imports
        # the announcement, the next find it imported and ask arXiv nothing.
        deadline = time.monotonic() + 90
        while beat.log.read_text().count("Sending due task import-arxiv") < 2:
            assert time.monotonic() < deadline, beat.log_tail()
            time.sleep(0.5)
        time.sleep(2)  # the worker runs that check
    finally:
        beat.stop()

    entry = PeriodicTask.objects.get(name="import-arxiv")
    assert entry.task == "papers.tasks.import_arxiv" and entry.interval is not None
    assert [r.path for r in arxiv_feed] == ["/rss/cs.LG+stat.ML"]
    run = ImportRun.objects.get(source="arxiv")
    assert run.new == 3 and run.failure == "" and run.announced_on is not None
    assert Paper.objects.filter(source="arxiv-rss").count() == 3
