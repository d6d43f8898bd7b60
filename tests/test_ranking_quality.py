"""Ranking quality on the bundled catalogue: nDCG@10 against papers judged relevant by hand.

Run with ``-s`` to see the figures per profile.
"""

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from papers.evaluation import Profile, evaluate, load_profiles, ndcg_at_k
from papers.models import Paper, Topic
from papers.ranking import PaperText
from papers.ranking_data import paper_text

ROOT = Path(__file__).resolve().parent.parent
SEEDS = sorted(str(p) for p in (ROOT / "papers" / "seeds").glob("*.txt"))


def test_ndcg_rewards_relevant_papers_near_the_top() -> None:
    assert ndcg_at_k([True, True, False], n_relevant=2) == pytest.approx(1.0)
    assert ndcg_at_k([False, True, True], n_relevant=2) < ndcg_at_k([True, False, True], 2)
    assert ndcg_at_k([False] * 10, n_relevant=3) == 0.0
    # Relevant papers the ranking never reached count against it.
    assert ndcg_at_k([True], n_relevant=3) == pytest.approx(1 / (1 + 1 / 1.585 + 1 / 2), 1e-3)


def test_evaluate_refuses_a_judged_title_missing_from_the_catalogue() -> None:
    papers = [PaperText(1, "A paper", "About graphs.")]
    typo = Profile("typo", ["graphs"], [], ["A papr"])

    with pytest.raises(ValueError, match="A papr"):
        evaluate(papers, [typo], topics={})


def test_the_evaluation_set_has_realistic_profiles() -> None:
    profiles = load_profiles()

    assert 6 <= len(profiles) <= 8
    assert all(p.keywords or p.topics for p in profiles)
    assert all(5 <= len(p.relevant) <= 20 for p in profiles)


@pytest.mark.django_db
def test_our_ranking_beats_a_plain_tfidf_baseline_on_the_judged_profiles() -> None:
    call_command("import_papers", *SEEDS, stdout=StringIO(), stderr=StringIO())
    now = timezone.now()
    papers = [paper_text(p, now) for p in Paper.objects.all()]
    topics = {t.slug: (t.name, t.description) for t in Topic.objects.all()}

    result = evaluate(papers, load_profiles(), topics)

    print(f"\nnDCG@{result.k} on {len(papers)} papers      ours  baseline")
    for score in result.profiles:
        print(f"  {score.name:<38} {score.ours:.3f}  {score.baseline:.3f}")
    print(f"  {'mean':<38} {result.ours:.3f}  {result.baseline:.3f}")
    assert result.ours > result.baseline
