from datetime import UTC, date, datetime, timedelta

import pytest

from papers.models import Paper, PaperSnapshot
from papers.ranking import trending_score

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def make_paper(title: str, listed_on: date, upvotes: int | None = None) -> Paper:
    return Paper.objects.create(
        title=title, title_key=title.lower(), listed_on=listed_on, upvotes=upvotes, source="text"
    )


def test_a_climbing_paper_beats_an_older_bigger_total() -> None:
    climbing = trending_score(upvotes=40, comments=0, day_gain=40, age_hours=12)
    settled = trending_score(upvotes=60, comments=0, day_gain=0, age_hours=12)
    assert climbing > settled


def test_age_pulls_a_paper_down() -> None:
    assert trending_score(50, 0, 0, age_hours=10) > trending_score(50, 0, 0, age_hours=60)


def test_without_any_votes_the_newest_listing_comes_first() -> None:
    assert trending_score(None, None, None, 5) > trending_score(None, None, None, 29)


@pytest.mark.django_db
def test_trending_order_uses_growth_from_snapshots() -> None:
    day = NOW.date()
    steady = make_paper("Steady", day, upvotes=100)
    rising = make_paper("Rising", day, upvotes=80)
    PaperSnapshot.objects.create(paper=steady, taken_at=NOW - timedelta(hours=30), upvotes=95)
    PaperSnapshot.objects.create(paper=rising, taken_at=NOW - timedelta(hours=30), upvotes=5)

    ordered = Paper.objects.all().trending(now=NOW)

    assert [p.title for p in ordered] == ["Rising", "Steady"]


@pytest.mark.django_db
def test_papers_without_votes_are_ordered_by_listing_day_then_position() -> None:
    make_paper("Old", NOW.date() - timedelta(days=2))
    second = make_paper("Second today", NOW.date())
    first = make_paper("First today", NOW.date())
    Paper.objects.filter(pk=second.pk).update(listing_position=2)
    Paper.objects.filter(pk=first.pk).update(listing_position=1)

    ordered = Paper.objects.all().trending(now=NOW)

    assert [p.title for p in ordered] == ["First today", "Second today", "Old"]


def test_a_paper_only_arxiv_announced_trends_by_its_codes_stars_else_by_recency() -> None:
    starred = trending_score(None, None, None, age_hours=10, github_stars=500)
    unstarred = trending_score(None, None, None, age_hours=10)
    assert starred == pytest.approx(51 * unstarred)  # 1 + 500/10
    assert unstarred > trending_score(None, None, None, age_hours=30)


def test_stars_do_not_add_to_a_daily_papers_papers_votes() -> None:
    on_daily_papers = trending_score(12, 1, 0, age_hours=10, github_stars=5000)
    assert on_daily_papers == trending_score(12, 1, 0, age_hours=10)
