"""How good the ranking is: nDCG@k on judged interest profiles, ours against a plain baseline.

Pure, like ``papers.ranking``: the catalogue comes in as ``PaperText``s and topics as
``{slug: (name, description)}``; the tests and the benchmark load them from the database.
The judgments live in ``evaluation_set.json``: profiles as a researcher would type them, and
for each the papers of the bundled catalogue judged relevant by reading them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from papers import ranking
from papers.ranking import Interests, PaperText
from papers.sources import title_key

EVALUATION_SET = Path(__file__).with_name("evaluation_set.json")


@dataclass
class Profile:
    name: str
    keywords: list[str]
    topics: list[str]  # slugs
    relevant: list[str]  # titles of the papers judged relevant


@dataclass
class ProfileScore:
    name: str
    relevant: int
    ours: float
    baseline: float


@dataclass
class Evaluation:
    k: int
    ours: float  # mean nDCG@k over the profiles
    baseline: float
    profiles: list[ProfileScore] = field(default_factory=list)


def load_profiles(path: Path = EVALUATION_SET) -> list[Profile]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return [
        Profile(p["name"], p.get("keywords", []), p.get("topics", []), p["relevant"])
        for p in data["profiles"]
    ]


def ndcg_at_k(ranked: Sequence[bool], n_relevant: int, k: int = 10) -> float:
    """Binary-relevance nDCG@k of a ranking given as relevant/not flags, best first."""
    dcg = sum(1 / math.log2(i + 2) for i, hit in enumerate(ranked[:k]) if hit)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(k, n_relevant)))
    return dcg / ideal if ideal else 0.0


def baseline_ranking(papers: Sequence[PaperText], query: str) -> list[int]:
    """Keys best first by the textbook method: default TF-IDF on title and abstract, cosine."""
    vectorizer = TfidfVectorizer()
    documents = vectorizer.fit_transform([f"{p.title} {p.abstract}" for p in papers])
    scores = (documents @ vectorizer.transform([query]).T).toarray().ravel()
    return [papers[i].key for i in np.argsort(-scores, kind="stable")]


def our_ranking(
    model: ranking.Model, papers: Sequence[PaperText], interests: Interests, k: int
) -> list[int]:
    return [pick.key for pick in ranking.rank_catalogue(model, papers, interests, limit=k)]


def evaluate(
    papers: Sequence[PaperText],
    profiles: Sequence[Profile],
    topics: Mapping[str, tuple[str, str]],
    k: int = 10,
) -> Evaluation:
    """nDCG@k of our ranking and of the baseline for every profile, over the whole catalogue.

    The baseline's query is the profile's keywords and topic names joined: what a person
    would type into a search box. A judged title missing from the catalogue or an unknown
    topic slug is an error in the evaluation set, never silently skipped.
    """
    by_title = {title_key(p.title): p.key for p in papers}
    model = ranking.fit_model(papers)
    scores = []
    for profile in profiles:
        missing = [t for t in profile.relevant if title_key(t) not in by_title]
        unknown = [s for s in profile.topics if s not in topics]
        if missing or unknown:
            raise ValueError(
                f"{profile.name}: not in the catalogue: {missing}; unknown topics: {unknown}"
            )
        relevant = {by_title[title_key(t)] for t in profile.relevant}
        chosen = [topics[slug] for slug in profile.topics]
        ours = our_ranking(model, papers, Interests(topics=chosen, keywords=profile.keywords), k)
        query = " ".join(profile.keywords + [name for name, _ in chosen])
        theirs = baseline_ranking(papers, query)
        scores.append(
            ProfileScore(
                name=profile.name,
                relevant=len(relevant),
                ours=ndcg_at_k([key in relevant for key in ours], len(relevant), k),
                baseline=ndcg_at_k([key in relevant for key in theirs], len(relevant), k),
            )
        )
    return Evaluation(
        k=k,
        ours=sum(s.ours for s in scores) / len(scores) if scores else 0.0,
        baseline=sum(s.baseline for s in scores) / len(scores) if scores else 0.0,
        profiles=scores,
    )
