"""Ranking quality on the bundled catalogue: nDCG@10 against papers judged relevant by hand.

Run with ``-s`` to see the figures per profile.
"""

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from papers.evaluation import (
    KINDS,
    SPLITS,
    Profile,
    bundled_catalogue,
    evaluate,
    load_profiles,
    ndcg_at_k,
)
from papers.models import Paper, Topic
from papers.ranking import Interests, Model, PaperText, Signal, fit_model, rank_catalogue
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


def test_the_evaluation_set_has_each_kind_of_profile_in_both_splits() -> None:
    profiles = load_profiles()

    for kind in KINDS:
        for split in SPLITS:
            assert sum(p.kind == kind and p.split == split for p in profiles) >= 4, (kind, split)
    assert all(p.keywords or p.topics for p in profiles if p.kind == "keywords")
    assert all(p.about and not p.keywords for p in profiles if p.kind == "sentence")
    assert all(p.liked and not (p.keywords or p.about) for p in profiles if p.kind == "liked")
    assert all(3 <= len(p.relevant) <= 20 for p in profiles)


@pytest.mark.django_db
def test_our_ranking_beats_plain_bm25_and_tfidf_on_each_kind_of_profile() -> None:
    call_command("import_papers", *SEEDS, stdout=StringIO(), stderr=StringIO())
    now = timezone.now()
    papers = [paper_text(p, now) for p in Paper.objects.all()]
    topics = {t.slug: (t.name, t.description) for t in Topic.objects.all()}

    result = evaluate(papers, load_profiles(), topics)

    print(f"\nnDCG@{result.k} on {len(papers)} papers        ours   bm25  tfidf")
    for score in result.profiles:
        figures = "  ".join(f"{score.ndcg[m]:.3f}" for m in ("ours", "bm25", "tfidf"))
        print(f"  {score.name[:38]:<38} {figures}")
    for kind in KINDS:
        ours, bm25, tfidf = (result.mean(m, kind=kind) for m in ("ours", "bm25", "tfidf"))
        print(f"  mean {kind:<33} {ours:.3f}  {bm25:.3f}  {tfidf:.3f}")
        assert ours > max(bm25, tfidf), kind


@pytest.fixture(scope="module")
def catalogue() -> tuple[list[PaperText], Model]:
    papers = bundled_catalogue()
    return papers, fit_model(papers)


@pytest.mark.parametrize(
    "interests",
    [
        Interests(keywords=["lattice quantum chromodynamics", "hadron spectroscopy"]),
        Interests(about="Lattice quantum chromodynamics and hadron spectroscopy."),
        Interests(about="I study the early universe: cosmic inflation and dark matter."),
        Interests(keywords=["medieval falconry"]),
    ],
    ids=["qcd-keywords", "qcd-sentence", "cosmology-sentence", "falconry"],
)
def test_a_reader_whose_field_the_catalogue_lacks_gets_no_match(catalogue, interests) -> None:  # type: ignore[no-untyped-def]
    papers, model = catalogue

    assert rank_catalogue(model, papers, interests) == []


def test_a_sentence_finds_the_papers_it_describes(catalogue) -> None:  # type: ignore[no-untyped-def]
    papers, model = catalogue
    about = "networks on microcontrollers with a few hundred kilobytes"  # the reader

    top = rank_catalogue(model, papers, Interests(about=about), limit=3)

    titles = [model.texts([p.key])[0].title for p in top]
    assert all("microcontroller" in t.lower() or "Tiny Deep Learning" in t for t in titles), titles
    assert any("On-Device Learning" in t for t in titles), titles  # the on-device training
    assert top[0].reason.signal == Signal.DESCRIPTION
    assert "microcontrollers" in top[0].reason.matched
    # "a few hundred" says nothing of few-shot learning.
    assert not any("Few-Shot" in t for t in titles)


def test_latent_semantics_find_a_paper_about_the_keyword_in_other_words(catalogue) -> None:  # type: ignore[no-untyped-def]
    papers, model = catalogue
    compression = next(p for p in load_profiles() if p.name == "Model compression").relevant

    picks = rank_catalogue(model, papers, Interests(keywords=["microcontroller"]))

    by_meaning = [p for p in picks if p.reason.text.startswith("close in meaning")]
    assert by_meaning, [p.reason.text for p in picks]
    for pick in by_meaning:
        paper = model.texts([pick.key])[0]
        assert "microcontroller" not in f"{paper.title} {paper.abstract}".lower()
        assert paper.title in compression  # judged about efficient inference all the same
