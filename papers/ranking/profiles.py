"""Profiles: a subscriber's interests as a weighted sum of keyword, topic and paper vectors."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from itertools import chain

import numpy as np
import scipy.sparse as sp

from papers.ranking.text import PaperText
from papers.ranking.vectors import Model, Vector

KEYWORD_WEIGHT = 1.0
DESCRIPTION_WEIGHT = 1.0
TOPIC_WEIGHT = 0.6
LIKED_WEIGHT = 0.8  # of one liked paper; more weigh more (``liked_weight``)
DISLIKED_WEIGHT = 0.6
# From this many rated papers (liked, clicked, "more" or "less like this"), at least one
# liked, a reader's rated papers are weighed by a model of their own (``feedback_model``).
FEEDBACK_FROM = 4
FEEDBACK_RIDGE = 0.5
# How much of a component's similarity to a paper is semantic (the rest is lexical), by kind:
# a keyword is mostly its words; a description, a topic or a liked paper mostly its meaning.
SEMANTIC_SHARE = {"keyword": 0.2, "description": 0.5, "topic": 0.3, "paper": 0.5}
# The share of a component's terms' weight a paper must have to match it at all: most of a
# keyword (its phrase), a fair part of a description; a topic or a liked paper is long.
LEXICAL_EVIDENCE = {"keyword": 0.5, "description": 0.15, "topic": 0.05, "paper": 0.05}


@dataclass
class Interests:
    """One subscriber's interests, as the ranking needs them."""

    about: str = ""  # what they work on, in their own words
    topics: list[tuple[str, str]] = field(default_factory=list)  # (name, description)
    keywords: list[str] = field(default_factory=list)  # words or phrases
    liked: list[PaperText] = field(default_factory=list)
    disliked: list[PaperText] = field(default_factory=list)
    excluded_keywords: list[str] = field(default_factory=list)
    authors: list[str] = field(default_factory=list)  # followed: their papers always come
    trending_weight: float = 0.2  # 0 = pure relevance, 1 = pure trending
    size: int = 10
    seen: frozenset[int] = frozenset()  # paper keys never to pick again


class Components:
    """The distinct keyword, topic and paper vectors of a chunk, to stack as one matrix."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.keywords: dict[str, int] = {}
        self.descriptions: dict[str, int] = {}
        self.topics: dict[tuple[str, str], int] = {}
        self.papers: dict[int, int] = {}
        self.vectors: list[Vector] = []
        self.idents: list[Hashable] = []  # what each vector is, the same from chunk to chunk
        self.sources: list[str | PaperText] = []  # the text (or paper) each one comes from

    def _add(self, ident: Hashable, vector: Vector, source: str | PaperText) -> int:
        self.idents.append(ident)
        self.vectors.append(vector)
        self.sources.append(source)
        return len(self.vectors) - 1

    def dense(self, which: Sequence[int]) -> np.ndarray:
        """The semantic vectors of the components at ``which``, as rows."""
        model = self.model
        rows = []
        for at in which:
            ident, source = self.idents[at], self.sources[at]
            if isinstance(source, PaperText):
                rows.append(model.paper_meaning(ident, source))
            else:
                rows.append(model.meaning(ident, source, self.vectors[at]))
        return np.array(rows, dtype=np.float32).reshape(len(rows), model.semantics.dimensions)

    def blends(self, which: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """By each component's kind: how much of its similarity is semantic, and the share
        of its terms' weight a paper must have for a lexical match."""
        kinds = [str(self.idents[at][0]) for at in which]  # type: ignore[index]
        return (
            np.array([SEMANTIC_SHARE[k] for k in kinds], dtype=np.float32),
            np.array([LEXICAL_EVIDENCE[k] for k in kinds], dtype=np.float32),
        )

    def keyword(self, phrase: str) -> int:
        at = self.keywords.get(phrase)
        if at is None:
            vector = self.model.phrase_vector(phrase)
            at = self.keywords[phrase] = self._add(("keyword", phrase), vector, phrase)
        return at

    def description(self, text: str) -> int:
        at = self.descriptions.get(text)
        if at is None:
            vector = self.model.description_vector(text)
            at = self.descriptions[text] = self._add(("description", text), vector, text)
        return at

    def topic(self, topic: tuple[str, str]) -> int:
        topic = (topic[0], topic[1])  # a list from JSON would not be hashable
        at = self.topics.get(topic)
        if at is None:
            vector = self.model.topic_vector(topic)
            text = f"{topic[0]}: {topic[1]}"
            at = self.topics[topic] = self._add(("topic", topic), vector, text)
        return at

    def paper(self, paper: PaperText) -> int:
        at = self.papers.get(paper.key)
        if at is None:
            vector = self.model.paper_vector(paper)
            ident = ("paper", paper.key, paper.fingerprint)
            at = self.papers[paper.key] = self._add(ident, vector, paper)
        return at

    def matrix(self, which: Sequence[int] | None = None) -> sp.csr_matrix:
        """The vectors as rows (only those at ``which``, when given)."""
        vectors = self.vectors if which is None else [self.vectors[i] for i in which]
        lengths = [len(cols) for cols, _ in vectors]
        indptr = np.concatenate([[0], np.cumsum(lengths)]) if lengths else np.zeros(1, np.int64)
        return sp.csr_matrix(
            (
                np.concatenate([v for _, v in vectors] or [np.zeros(0, np.float32)]),
                np.concatenate([c for c, _ in vectors] or [np.zeros(0, np.int32)]),
                indptr,
            ),
            shape=(len(vectors), self.model.n_features),
        )


Labelled = list[list[tuple[str, int]]]  # per subscriber: (topic name or title, component)


@dataclass
class Profiles:
    """A chunk's profiles, factored: profile i = sum over c of weights[i, c] * components[c]."""

    weights: sp.csr_matrix  # (subscribers, components)
    components: sp.csr_matrix  # (components, features): distinct keyword, topic, paper vectors
    parts: Components  # what each component is
    keyword_rows: list[list[int]]  # per subscriber: the component of each keyword, in order
    description_rows: list[int]  # per subscriber: the component of their description, or -1
    topic_rows: Labelled
    liked_rows: Labelled
    learners: set[int] = field(default_factory=set)  # rows with a model of their own


def build_profiles(model: Model, interests_list: Sequence[Interests]) -> Profiles:
    parts = Components(model)
    keyword, topic, paper = parts.keyword, parts.topic, parts.paper
    known = parts.keywords  # most keywords were met earlier in the chunk: no call for them
    keyword_rows = [
        [known[k] if k in known else keyword(k) for k in i.keywords] for i in interests_list
    ]
    described = [[parts.description(i.about)] if i.about.strip() else [] for i in interests_list]
    topic_rows: Labelled = [[(t[0], topic(t)) for t in i.topics] for i in interests_list]
    liked_rows: Labelled = [[(p.title, paper(p)) for p in i.liked] for i in interests_list]
    disliked_rows = [[paper(p) for p in i.disliked] for i in interests_list]
    # The weights, one kind of component at a time, then put in subscriber order.
    kinds = (
        ([c for row in keyword_rows for c in row], keyword_rows),
        ([c for row in described for c in row], described),
        ([c for row in topic_rows for _, c in row], topic_rows),
        ([c for row in liked_rows for _, c in row], liked_rows),
        ([c for row in disliked_rows for c in row], disliked_rows),
    )
    n_subs = len(interests_list)
    counts = np.array([np.fromiter(map(len, rows), np.int64, n_subs) for _, rows in kinds])
    shares = np.empty(counts.shape, dtype=np.float32)
    shares[0] = KEYWORD_WEIGHT
    shares[1] = DESCRIPTION_WEIGHT
    shares[2] = TOPIC_WEIGHT
    liked_total = liked_weight(counts[3])
    shares[3] = liked_total / np.maximum(counts[3], 1)
    shares[4] = -DISLIKED_WEIGHT / np.maximum(counts[4], 1)
    owner = np.repeat(np.tile(np.arange(n_subs), len(kinds)), counts.ravel())
    order = np.argsort(owner, kind="stable")
    flat = np.fromiter(chain.from_iterable(flat for flat, _ in kinds), np.int32, len(owner))
    indices = flat[order]  # in subscriber order
    indptr = np.zeros(n_subs + 1, dtype=np.int64)
    np.cumsum(counts.sum(axis=0), out=indptr[1:])
    values = np.repeat(shares.ravel(), counts.ravel())[order]
    # Readers who rated enough papers get their own linear model on those papers instead of
    # the fixed weights: a loop over those readers only.
    rated = counts[3] + counts[4]
    learners = np.flatnonzero((rated >= FEEDBACK_FROM) & (counts[3] > 0))
    stated = counts[:3].sum(axis=0)
    for row in learners.tolist():
        start = int(indptr[row] + stated[row])
        papers = indices[start : start + int(rated[row])]
        labels = np.repeat([1.0, -1.0], [counts[3, row], counts[4, row]])
        own = feedback_model(parts, papers, labels)
        own[labels > 0] *= liked_total[row] / LIKED_WEIGHT
        values[start : start + len(papers)] = own
    combination = sp.csr_matrix((values, indices, indptr), shape=(n_subs, len(parts.vectors)))
    return Profiles(
        combination,
        parts.matrix(),
        parts,
        keyword_rows,
        [row[0] if row else -1 for row in described],
        topic_rows,
        liked_rows,
        set(learners.tolist()),
    )


def liked_weight(count: np.ndarray) -> np.ndarray:
    """The weight of a profile's liked papers together, by how many there are: LIKED_WEIGHT
    for one, growing as the square root of their number. Every "more like this" is evidence
    of what the reader wants, so the papers they keep liking come to outweigh the topic they
    first ticked, while no single liked paper ever weighs more than the first did."""
    return (LIKED_WEIGHT * np.sqrt(np.maximum(count, 1))).astype(np.float32)


def feedback_model(parts: Components, papers: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """A reader's own linear model over the papers they rated (liked +1, disliked -1), in the
    dual form of ridge regression: the profile gains sum_i alpha_i x_i, with

        alpha = (K + FEEDBACK_RIDGE * I)^-1 y,   K_ij = similarity of rated papers i and j

    so that the model scores each rated paper close to its label. Unlike fixed weights, a
    disliked paper close to a liked one is told apart, and ten liked papers on one subject
    do not drown the one liked paper on another."""
    lexical = parts.matrix(papers.tolist())
    kernel = (lexical @ lexical.T).toarray()
    meaning = parts.dense(papers.tolist())
    if meaning.shape[1]:
        kernel = 0.5 * kernel + 0.5 * (meaning @ meaning.T)
    alpha = np.linalg.solve(kernel + FEEDBACK_RIDGE * np.eye(len(papers)), labels)
    # The model weighs the papers within each side; the sides keep the profile's balance.
    positive, negative = np.clip(alpha, 0, None), np.clip(alpha, None, 0)
    weights = LIKED_WEIGHT * positive / max(float(positive.sum()), 1e-9)
    weights += DISLIKED_WEIGHT * negative / max(float(-negative.sum()), 1e-9)
    return weights.astype(np.float32)


def profile_matrix(model: Model, interests_list: Sequence[Interests]) -> sp.csr_matrix:
    """One L2-normalised profile row per subscriber (Rocchio style).

    Keywords and the description weigh most (a phrase through its word pairs), then topics (name and
    description); liked papers' vectors are added, disliked papers' subtracted. Topic and
    paper vectors keep their ``COMPONENT_TERMS`` strongest terms.
    """
    profiles = build_profiles(model, interests_list)
    matrix = sp.csr_matrix(profiles.weights @ unit_rows(profiles.components), dtype=np.float32)
    matrix.data /= np.repeat(row_norms(matrix), np.diff(matrix.indptr))
    return matrix


def unit_rows(matrix: sp.csr_matrix) -> sp.csr_matrix:
    scaled = matrix.copy()
    scaled.data /= np.repeat(row_norms(matrix), np.diff(matrix.indptr))
    return scaled


def row_norms(matrix: sp.csr_matrix) -> np.ndarray:
    """The length of each row (1 for an empty row, so that dividing by it is harmless)."""
    squares = np.zeros(len(matrix.data) + 1)
    np.cumsum(np.square(matrix.data, dtype=np.float64), out=squares[1:])
    norms = np.sqrt(squares[matrix.indptr[1:]] - squares[matrix.indptr[:-1]])
    norms[norms == 0] = 1.0
    return norms.astype(np.float32)
