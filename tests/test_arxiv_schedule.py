"""The scheduled arXiv import: once per announcement (Sunday to Thursday, 20:00 US Eastern),
politely, idempotently; arXiv is a local HTTP server serving a published capture."""

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from papers.importing import import_arxiv_announcements, last_announcement
from papers.models import ImportRun, Paper
from tests.factories import Answer, Request, http_server

FIXTURES = Path(__file__).resolve().parent / "fixtures"
FEED = (FIXTURES / "arxiv_rss_cs.LG_2026-05-22.xml").read_text()  # Friday 22 May's feed
# Thursday 21 May 2026, 22:00 US Eastern: two hours after the announcement in that feed.
AFTER = datetime(2026, 5, 22, 2, 0, tzinfo=UTC)
pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("now", "announced"),
    [
        (datetime(2026, 5, 22, 2, 0, tzinfo=UTC), datetime(2026, 5, 22, 0, 0, tzinfo=UTC)),
        # Thursday 19:59 Eastern: still Wednesday's.
        (datetime(2026, 5, 21, 23, 59, tzinfo=UTC), datetime(2026, 5, 21, 0, 0, tzinfo=UTC)),
        # Saturday and Sunday afternoon: Thursday's.
        (datetime(2026, 5, 23, 18, 0, tzinfo=UTC), datetime(2026, 5, 22, 0, 0, tzinfo=UTC)),
        (datetime(2026, 5, 24, 18, 0, tzinfo=UTC), datetime(2026, 5, 22, 0, 0, tzinfo=UTC)),
        # Sunday 20:00 Eastern in winter is 01:00 UTC.
        (datetime(2026, 1, 12, 1, 30, tzinfo=UTC), datetime(2026, 1, 12, 1, 0, tzinfo=UTC)),
    ],
)
def test_the_latest_announcement_is_sunday_to_thursday_at_eight_eastern(
    now: datetime, announced: datetime
) -> None:
    assert last_announcement(now) == announced


@pytest.fixture
def arxiv(settings):  # type: ignore[no-untyped-def]
    """rss.arxiv.org on loopback: ``answers`` may replace the feed for a test."""
    seen: list[Request] = []
    answers: list[Answer] = []

    def respond(path: str, nth: int) -> Answer:
        if answers:
            return answers[min(nth, len(answers)) - 1]
        return (200, "application/rss+xml", FEED, {"ETag": '"feed-22-may"'})

    with http_server(respond, seen) as base:
        settings.PAPERS_ARXIV_RSS_URL = f"{base}/rss"
        settings.PAPERS_ARXIV_CATEGORIES = ["cs.LG", "stat.ML"]
        yield seen, answers


def test_an_announcement_is_imported_once(arxiv) -> None:  # type: ignore[no-untyped-def]
    seen, _ = arxiv
    first = import_arxiv_announcements(AFTER)
    again = import_arxiv_announcements(AFTER.replace(hour=5))

    assert first is not None and first.new == 3 and first.skipped == 2 and first.ok
    assert again is None and [r.path for r in seen] == ["/rss/cs.LG+stat.ML"]
    run = ImportRun.objects.get()
    assert (run.source, run.announced_on, run.failure) == ("arxiv", date(2026, 5, 22), "")
    assert Paper.objects.filter(listed_on=date(2026, 5, 22)).count() == 3


def test_a_feed_not_yet_updated_is_asked_again_conditionally(arxiv) -> None:  # type: ignore[no-untyped-def]
    seen, answers = arxiv
    friday_evening = datetime(2026, 5, 23, 1, 0, tzinfo=UTC)  # Friday 21:00: nothing new due
    assert import_arxiv_announcements(friday_evening) is not None  # catches up Thursday's
    sunday_night = datetime(2026, 5, 25, 1, 0, tzinfo=UTC)  # Sunday's is due, not out yet
    answers.append((304, "application/rss+xml", ""))

    summary = import_arxiv_announcements(sunday_night)

    assert summary is not None and "announcement of 2026-05-25 not out yet" in summary.warnings[0]
    assert seen[-1].headers["If-None-Match"] == '"feed-22-may"'
    assert import_arxiv_announcements(sunday_night) is not None  # it keeps asking


def test_a_long_retry_after_is_honoured_across_checks(arxiv, settings) -> None:  # type: ignore[no-untyped-def]
    seen, answers = arxiv
    settings.PAPERS_FETCH_MAX_WAIT = 10
    answers.append((503, "text/plain", "busy", {"Retry-After": "1800"}))

    failed = import_arxiv_announcements(AFTER)

    assert failed is not None and "HTTP 503, asked to retry after 1800 s" in failed.failed[0]
    assert ImportRun.objects.get().failure.endswith("HTTP 503, asked to retry after 1800 s")
    assert import_arxiv_announcements(AFTER.replace(minute=15)) is None  # not before 02:30
    assert len(seen) == 1


def test_an_unreachable_arxiv_is_a_recorded_failure_not_an_exception(settings) -> None:  # type: ignore[no-untyped-def]
    settings.PAPERS_ARXIV_RSS_URL = "http://127.0.0.1:9/rss"  # discard port: refused
    settings.PAPERS_FETCH_RETRIES = 1

    summary = import_arxiv_announcements(AFTER)

    assert summary is not None and not summary.ok
    assert "Connection refused after 2 tries" in ImportRun.objects.get().failure
