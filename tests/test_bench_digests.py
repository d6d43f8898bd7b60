"""The benchmark command runs end to end at a tiny size: scratch database, Celery workers on
Redis, the SMTP sink, the baseline. Timings are never asserted here, only that it works."""

import json
import subprocess
import sys

import pytest
from django.conf import settings

from devtools import bench
from tests.conftest import ROOT, worker_environment

pytestmark = pytest.mark.integration

KEYS = {
    "digests_per_second",
    "ranking_us_per_subscriber",
    "render_ms_per_digest",
    "queries_per_chunk",
    "worker_peak_rss_mb",
    "worker_cpu_ms_per_digest",
    "messages_expected",
    "messages_received",
    "baseline_digests_per_second",
    "baseline_ratio",
    "ndcg_at_10",
    "cores",
}


def test_bench_digests_sends_every_digest_and_reports_its_figures_as_json(
    postgres, redis_url
) -> None:  # type: ignore[no-untyped-def]
    if not settings.CELERY_BROKER_URL.startswith("redis://"):
        pytest.fail(f"needs a Redis broker: CELERY_BROKER_URL is {settings.CELERY_BROKER_URL}")
    done = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "bench_digests",
            "--subscribers=30",
            "--papers=60",
            "--chunk=8",
            "--workers=2",
            "--baseline-sample=10",
            "--json",
        ],
        cwd=ROOT,
        env=worker_environment(settings.CELERY_BROKER_URL),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures.keys() >= KEYS
    assert figures["messages_expected"] == 30
    assert figures["messages_received"] == figures["messages_expected"]
    assert figures["duplicate_recipients"] == 0
    assert figures["digest_statuses"] == {"sent": 30}
    assert figures["baseline_subscribers"] == 10
    assert figures["digests_per_second"] > 0 and figures["baseline_digests_per_second"] > 0
    assert 0 < figures["ndcg_at_10"] <= 1
    assert figures["worker_peak_rss_mb"] > 0
    assert figures["worker_cpu_ms_per_digest"] > 0
    assert figures["goals"].keys() == bench.GOALS.keys()  # a verdict for each goal
    assert figures["embedding_model"] is None  # none set here: the RSS goal's condition
