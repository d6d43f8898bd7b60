"""``manage.py evaluate_ranking``: the judged profiles beside plain BM25 and TF-IDF on both
splits, and the simulated readers who learn the ranking through the feedback links."""

import json
from io import StringIO

import pytest
from django.core.management import call_command

from newsletter.models import Digest, Feedback, Subscriber
from papers.models import Paper

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("evaluate_ranking", *args, stdout=out)
    return out.getvalue()


def test_it_reports_ours_bm25_and_tfidf_per_profile_and_per_split() -> None:
    report = json.loads(run("--json"))

    assert report["k"] == 10
    assert {p["kind"] for p in report["profiles"]} == {"keywords", "sentence", "liked"}
    for profile in report["profiles"]:
        assert set(profile["ndcg"]) == set(profile["precision"]) == {"ours", "bm25", "tfidf"}
    assert set(report["summary"]) == {"tuning", "validation", "both"}
    assert "ours ndcg" in report["summary"]["validation"]["sentence"]


def test_the_table_states_the_goals_for_both_splits() -> None:
    table = run()

    assert "goals (tuning)" in table and "goals (validation)" in table


def test_simulated_readers_press_the_links_and_leave_nothing_behind() -> None:
    report = json.loads(run("--feedback", "--days", "2", "--seeds", "1", "--json"))

    assert len(report["precision"]) == len(report["silent"]) == 2
    assert report["readers"] == len(report["per_reader"]) >= 20
    assert all(
        0 <= p <= best + 1e-9
        for p, best in zip(report["precision"], report["best_possible"], strict=True)
    )
    # Rolled back: no paper, reader, digest or vote is left in the database.
    assert not Paper.objects.exists() and not Subscriber.objects.exists()
    assert not Digest.objects.exists() and not Feedback.objects.exists()


def test_the_simulation_records_votes_through_the_feedback_links(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from devtools import feedback as feedback_simulation

    votes: list[int] = []
    original = feedback_simulation._simulate

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        curve = original(*args, **kwargs)
        votes.append(Feedback.objects.count())
        return curve

    monkeypatch.setattr(feedback_simulation, "_simulate", counting)
    run("--feedback", "--days", "2", "--seeds", "1", "--json")

    pressing, silent = votes
    assert pressing >= 20 * 5 and silent == 0  # every pick of every digest, or nothing


def test_bad_options_get_a_clear_error() -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--days"):
        run("--feedback", "--days", "1")
