"""How good the ranking is: nDCG@k and P@k on judged interest profiles, ours beside plain BM25
and plain TF-IDF.

Pure, like ``papers.ranking``: the catalogue comes in as ``PaperText``s and topics as
``{slug: (name, description)}``; the command and the tests load them from the database.
The judgments live in ``evaluation_set.json``: profiles as a researcher would give them
(keywords and topics, a sentence, or papers they liked) and, for each, the papers of the bundled
catalogue judged relevant by reading them. Each profile is in the ``tuning`` split (the
ranking's weights were chosen looking at these) or the ``validation`` split (never tuned on).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer, TfidfVectorizer

from papers import ranking
from papers.ranking import Interests, PaperText
from papers.ranking.semantic import Encoder
from papers.sources import PaperRecord, text, title_key

EVALUATION_SET = Path(__file__).with_name("evaluation_set.json")
CAPTURES = sorted((Path(__file__).with_name("seeds")).glob("*.txt"))  # the judged catalogue
METHODS = ("ours", "bm25", "tfidf")
KINDS = ("keywords", "sentence", "liked")
SPLITS = ("tuning", "validation")


@dataclass
class Profile:
    name: str
    keywords: list[str]
    topics: list[str]  # slugs
    relevant: list[str]  # titles of the papers judged relevant
    about: str = ""  # the profile as a sentence
    liked: list[str] = field(default_factory=list)  # titles of papers the reader liked
    kind: str = "keywords"  # keywords, sentence or liked
    split: str = "tuning"
    start_topic: str = ""  # the one topic a simulated reader of this interest starts from


@dataclass
class ProfileScore:
    name: str
    kind: str
    split: str
    relevant: int
    ndcg: dict[str, float]  # per method
    precision: dict[str, float]  # P@k per method

    @property
    def ours(self) -> float:
        return self.ndcg["ours"]

    @property
    def baseline(self) -> float:
        return self.ndcg["tfidf"]


@dataclass
class Evaluation:
    k: int
    profiles: list[ProfileScore] = field(default_factory=list)

    def mean(
        self,
        method: str = "ours",
        metric: str = "ndcg",
        kind: str | None = None,
        split: str | None = None,
    ) -> float:
        """The mean of ``metric`` (ndcg or precision) over the profiles of ``kind`` and
        ``split`` (all when None); 0 when there are none."""
        values = [
            getattr(s, metric)[method]
            for s in self.profiles
            if (kind is None or s.kind == kind) and (split is None or s.split == split)
        ]
        return fmean(values) if values else 0.0

    @property
    def ours(self) -> float:
        return self.mean("ours")

    @property
    def baseline(self) -> float:
        return self.mean("tfidf")

    def summary(self) -> dict[str, dict[str, dict[str, float]]]:
        """{split: {kind or "all": {"<method> ndcg" / "<method> p": mean}}}, for reports."""
        table: dict[str, dict[str, dict[str, float]]] = {}
        for split in (*SPLITS, None):
            rows: dict[str, dict[str, float]] = {}
            for kind in (*KINDS, None):
                if not any(
                    (kind is None or s.kind == kind) and (split is None or s.split == split)
                    for s in self.profiles
                ):
                    continue
                rows[kind or "all"] = {
                    f"{method} {short}": round(self.mean(method, metric, kind, split), 4)
                    for method in METHODS
                    for metric, short in (("ndcg", "ndcg"), ("precision", "p"))
                }
            table[split or "both"] = rows
        return table


def bundled_records() -> list[PaperRecord]:
    """The papers of the bundled captures the profiles were judged on, each once."""
    records: dict[str, PaperRecord] = {}
    for path in CAPTURES:
        for record in text.parse(path.read_text(encoding="utf-8")).records:
            records.setdefault(title_key(record.title), record)
    return list(records.values())


def bundled_catalogue() -> list[PaperText]:
    """The bundled captures as the ranking sees them (keys 1, 2, ...), without a database."""
    return [
        PaperText(n, record.title, record.abstract) for n, record in enumerate(bundled_records(), 1)
    ]


def load_profiles(path: Path = EVALUATION_SET) -> list[Profile]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return [
        Profile(
            name=p["name"],
            keywords=p.get("keywords", []),
            topics=p.get("topics", []),
            relevant=p["relevant"],
            about=p.get("about", ""),
            liked=p.get("liked", []),
            kind=p.get("kind", "keywords"),
            split=p.get("split", "tuning"),
            start_topic=p.get("start_topic", ""),
        )
        for p in data["profiles"]
    ]


def ndcg_at_k(ranked: Sequence[bool], n_relevant: int, k: int = 10) -> float:
    """Binary-relevance nDCG@k of a ranking given as relevant/not flags, best first."""
    dcg = sum(1 / math.log2(i + 2) for i, hit in enumerate(ranked[:k]) if hit)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(k, n_relevant)))
    return dcg / ideal if ideal else 0.0


def precision_at_k(ranked: Sequence[bool], k: int = 10) -> float:
    return sum(ranked[:k]) / k


# --- The baselines: the textbook methods on the same text a person would type -----------------

TOKEN = re.compile(r"(?u)\b\w\w+\b")


def _tokens(text: str) -> list[str]:
    return [t for t in TOKEN.findall(text.lower()) if t not in ENGLISH_STOP_WORDS]


def bm25_ranking(
    papers: Sequence[PaperText], query: str, k1: float = 1.2, b: float = 0.75
) -> list[int]:
    """Keys best first by plain Okapi BM25 on title and abstract (words, English stop words
    dropped, Lucene's idf)."""
    counts = CountVectorizer(analyzer=_tokens)
    tf = sp.csr_matrix(
        counts.fit_transform([f"{p.title} {p.abstract}" for p in papers]), dtype=np.float64
    )
    n = tf.shape[0]
    df = np.bincount(tf.indices, minlength=tf.shape[1])
    idf = np.log(1 + (n - df + 0.5) / (df + 0.5))
    lengths = np.asarray(tf.sum(axis=1)).ravel()
    norm = k1 * (1 - b + b * lengths / max(lengths.mean(), 1e-9))
    rows = np.repeat(np.arange(n), np.diff(tf.indptr))
    weights = tf.copy()
    weights.data = idf[tf.indices] * tf.data * (k1 + 1) / (tf.data + norm[rows])
    query_terms = sp.csr_matrix(counts.transform([query]), dtype=np.float64)
    scores = np.asarray((weights @ query_terms.T).todense()).ravel()
    return [papers[i].key for i in np.argsort(-scores, kind="stable")]


def tfidf_ranking(papers: Sequence[PaperText], query: str) -> list[int]:
    """Keys best first by default TF-IDF on title and abstract, cosine."""
    vectorizer = TfidfVectorizer()
    documents = vectorizer.fit_transform([f"{p.title} {p.abstract}" for p in papers])
    scores = (documents @ vectorizer.transform([query]).T).toarray().ravel()
    return [papers[i].key for i in np.argsort(-scores, kind="stable")]


# Kept under its old name: the textbook baseline the benchmark reports.
baseline_ranking = tfidf_ranking


def our_ranking(
    model: ranking.Model, papers: Sequence[PaperText], interests: Interests, k: int
) -> list[int]:
    return [pick.key for pick in ranking.rank_catalogue(model, papers, interests, limit=k)]


def interests_of(
    profile: Profile, topics: Mapping[str, tuple[str, str]], by_title: Mapping[str, PaperText]
) -> Interests:
    return Interests(
        about=profile.about,
        keywords=list(profile.keywords),
        topics=[topics[slug] for slug in profile.topics],
        liked=[by_title[title_key(t)] for t in profile.liked],
    )


def query_of(interests: Interests) -> str:
    """What a person would type into a search box for these interests: their keywords, topic
    names and sentence, and the title and abstract of each paper they liked."""
    liked = [f"{p.title} {p.abstract}" for p in interests.liked]
    named = [name for name, _ in interests.topics]
    return " ".join([*interests.keywords, *named, interests.about, *liked]).strip()


def evaluate(
    papers: Sequence[PaperText],
    profiles: Sequence[Profile],
    topics: Mapping[str, tuple[str, str]],
    k: int = 10,
    ours: Callable[[Interests], list[int]] | None = None,
    encoder: Encoder | None = None,
) -> Evaluation:
    """nDCG@k and P@k of our ranking (or ``ours``; with ``encoder``'s semantics when given),
    plain BM25 and plain TF-IDF for every profile, over the whole catalogue. A liked paper is
    left out of every ranking (the reader has it). A judged or liked title missing from the
    catalogue or an unknown topic slug is an error in the evaluation set, never skipped."""
    by_title = {title_key(p.title): p for p in papers}
    model = ranking.fit_model(papers, encoder)
    rank_ours = ours or (lambda interests: our_ranking(model, papers, interests, k))
    result = Evaluation(k=k)
    for profile in profiles:
        missing = [t for t in [*profile.relevant, *profile.liked] if title_key(t) not in by_title]
        unknown = [s for s in [*profile.topics, profile.start_topic] if s and s not in topics]
        if missing or unknown:
            raise ValueError(
                f"{profile.name}: not in the catalogue: {missing}; unknown topics: {unknown}"
            )
        relevant = {by_title[title_key(t)].key for t in profile.relevant}
        interests = interests_of(profile, topics, by_title)
        known = {p.key for p in interests.liked}
        query = query_of(interests)
        rankings = {
            "ours": rank_ours(interests),
            "bm25": bm25_ranking(papers, query),
            "tfidf": tfidf_ranking(papers, query),
        }
        flags = {
            method: [key in relevant for key in keys if key not in known][:k]
            for method, keys in rankings.items()
        }
        result.profiles.append(
            ProfileScore(
                name=profile.name,
                kind=profile.kind,
                split=profile.split,
                relevant=len(relevant),
                ndcg={m: ndcg_at_k(f, len(relevant), k) for m, f in flags.items()},
                precision={m: precision_at_k(f, k) for m, f in flags.items()},
            )
        )
    return result
