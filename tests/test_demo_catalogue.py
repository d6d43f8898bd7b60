"""The demo's papers: the bundled captures, exactly as given, and beside them a catalogue of
real Daily Papers metadata (ids, authors, votes, links), listed relative to the day it runs."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from django.core.management import call_command

from papers.models import Paper
from papers.sources import title_key
from tests.test_import_papers import SEEDS, papers_in_capture

CATALOGUE = Path(__file__).resolve().parent.parent / "papers" / "seeds" / "daily-papers.json"
pytestmark = pytest.mark.django_db

TODAY = datetime(2026, 12, 5, 9, tzinfo=UTC)


def test_every_catalogue_item_is_a_real_paper_with_its_sources_named() -> None:
    items = json.loads(CATALOGUE.read_text())["dailyPapers"]
    for item in items:
        assert item["_source"], item["title"]
        assert item["paper"]["id"] and (item["paper"]["authors"] or item["paper"]["summary"])
    listed = [i for i in items if i["paper"].get("submittedOnDailyAt")]
    assert all(isinstance(i["paper"]["upvotes"], int) for i in listed)


@time_machine.travel(TODAY, tick=False)
def test_the_demo_lists_the_catalogue_up_to_today_and_keeps_the_captures_text() -> None:
    call_command("load_demo_papers", verbosity=0)

    quiet_star = Paper.objects.get(arxiv_id="2403.09629")
    assert quiet_star.listed_on == TODAY.date() and quiet_star.upvotes == 17
    assert quiet_star.authors[0] == "Eric Zelikman"
    continual = Paper.objects.get(arxiv_id="2403.08763")
    assert continual.listed_on == TODAY.date() - timedelta(days=1)
    assert Paper.objects.get(arxiv_id="2403.09055").github_repo.startswith("https://github.com/")
    # A capture's paper gains its id and authors; its title and abstract stay as captured.
    captured = dict(papers_in_capture(SEEDS[0]))
    forward = Paper.objects.get(title_key=title_key("Forward Learning of Graph Neural Networks"))
    assert forward.arxiv_id == "2403.11004" and forward.authors[0] == "Namyong Park"
    assert forward.abstract == captured[forward.title]
    # Listed on the earliest of the days whose captures hold it (capture n is n days ago).
    days_ago = max(n for n, c in enumerate(SEEDS) if forward.title in dict(papers_in_capture(c)))
    assert forward.listed_on == TODAY.date() - timedelta(days=days_ago)


def test_a_demo_run_on_a_later_day_lists_the_papers_relative_to_that_day() -> None:
    with time_machine.travel(TODAY, tick=False):
        call_command("load_demo_papers", verbosity=0)
    later = TODAY + timedelta(days=3)
    with time_machine.travel(later, tick=False):
        call_command("load_demo_papers", verbosity=0)

    assert Paper.objects.get(arxiv_id="2403.09629").listed_on == later.date()
    captured_today = Paper.objects.get(title_key=title_key(papers_in_capture(SEEDS[0])[-1][0]))
    assert captured_today.listed_on
    assert captured_today.listed_on >= later.date() - timedelta(days=len(SEEDS))
