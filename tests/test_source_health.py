"""Source health, read from the import runs: on the dashboard, in a command, and one email to
staff per silence of a scheduled source."""

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.test import Client

from papers.health import alert_silent_sources, source_health
from papers.models import ImportRun

NOW = datetime(2026, 5, 25, 12, 0, tzinfo=UTC)
pytestmark = pytest.mark.django_db


def run(source: str, hours_ago: float, new: int = 0, failure: str = "", **counts: int) -> None:
    started = NOW - timedelta(hours=hours_ago)
    ImportRun.objects.create(
        source=source,
        started=started,
        finished=started + timedelta(seconds=5),
        new=new,
        failure=failure,
        **counts,
    )


@pytest.fixture
def history() -> None:
    run("arxiv", 30, new=400)
    run("arxiv", 6, new=350, updated=20)
    run("arxiv", 1, failure="https://rss.arxiv.org/rss/cs.LG: HTTP 503 after 4 tries")
    run("daily-papers", 2, new=12)
    run("daily-papers", 1, unchanged=12)


def test_each_source_says_when_it_worked_when_it_failed_and_why(history) -> None:  # type: ignore[no-untyped-def]
    daily, arxiv = source_health(NOW)  # scheduled sources first, by name

    assert (arxiv.source, arxiv.status, arxiv.new_24h) == ("arxiv", "failing", 350)
    assert arxiv.last_success == NOW - timedelta(hours=6, seconds=-5)
    assert arxiv.last_failure == NOW - timedelta(hours=1, seconds=-5)
    assert arxiv.failure.endswith("HTTP 503 after 4 tries")
    assert (daily.source, daily.status, daily.new_24h, daily.last_failure) == (
        "daily-papers",
        "ok",
        12,
        None,
    )


@time_machine.travel(NOW)
def test_the_dashboard_shows_each_sources_health(client: Client, admin_user, history) -> None:  # type: ignore[no-untyped-def]
    client.force_login(admin_user)
    page = client.get("/admin/dashboard/").content.decode()

    assert 'data-source="arxiv"' in page and 'data-source="daily-papers"' in page
    assert "HTTP 503 after 4 tries" in page and ">failing<" in page


@time_machine.travel(NOW)
def test_the_command_prints_the_health_and_fails_while_a_scheduled_source_does(history) -> None:  # type: ignore[no-untyped-def]
    out = StringIO()
    with pytest.raises(SystemExit) as exit:
        call_command("source_health", stdout=out)

    assert exit.value.code == 1
    assert "arXiv announcements [arxiv]: failing" in out.getvalue()
    assert "(https://rss.arxiv.org/rss/cs.LG: HTTP 503 after 4 tries)" in out.getvalue()


def test_a_silent_source_is_told_to_staff_once_per_silence(settings, mailoutbox) -> None:  # type: ignore[no-untyped-def]
    settings.ADMINS = [("Ops", "ops@paperboy.example")]
    settings.PAPERS_SOURCE_SILENT_HOURS = 80
    run("arxiv", 100, new=300)
    for hours_ago in (90, 60, 30, 1):  # it keeps failing, hour after hour
        run("arxiv", hours_ago, failure="name or service not known")

    assert alert_silent_sources(NOW) == ["arxiv"]
    assert alert_silent_sources(NOW + timedelta(hours=1)) == []  # the same silence: no email
    assert len(mailoutbox) == 1 and mailoutbox[0].to == ["ops@paperboy.example"]
    assert "arXiv announcements has produced no papers since" in mailoutbox[0].subject
    assert "name or service not known" in mailoutbox[0].body

    run("arxiv", -1, new=10)  # it recovers, then falls silent again
    later = NOW + timedelta(hours=100)
    assert alert_silent_sources(later) == ["arxiv"] and len(mailoutbox) == 2


def test_a_quiet_weekend_of_arxiv_is_no_incident(settings, mailoutbox) -> None:  # type: ignore[no-untyped-def]
    settings.PAPERS_SOURCE_SILENT_HOURS = 80
    run("arxiv", 72, new=300)  # Thursday's announcement, on Sunday evening
    run("arxiv", 1, unchanged=0)

    assert alert_silent_sources(NOW) == [] and not mailoutbox
