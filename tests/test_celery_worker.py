"""Ingestion through a real Celery worker process on Redis, against PostgreSQL."""

import time

import pytest

from papers.models import ImportRun, Paper
from papers.tasks import import_daily_papers
from tests.factories import hf_item, hf_json, http_server

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
