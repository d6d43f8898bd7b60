"""Scores for papers. Pure: numbers and text in, scores and reasons out; no models, no database.

Two scores live here:

- ``trending_score``: how much a paper is trending now, from its votes and age.
- relevance: how close a paper is to a subscriber's interests, in a TF-IDF vector space fitted
  on the whole catalogue (``fit_model``). A subscriber's interests (keywords, topics, liked and
  disliked papers) make one profile vector (``profile_matrix``); ``rank_chunk`` scores a whole
  chunk of subscribers against the candidates with sparse matrix products, never a loop over
  papers per subscriber, and picks each digest; ``rank_catalogue`` ranks everything for one.

The vector space: words are lower-cased and a plural "s" is folded ("models" = "model"); stop
words are dropped; the features are single words and pairs of adjacent words within a clause,
so a two-word keyword such as "diffusion models" is matched as a phrase. Titles count twice.
Reasons and excluded keywords use literal phrase search: whole words, any case, plural folded.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import chain, islice
from operator import attrgetter
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer

GRAVITY = 1.5
GROWTH_WEIGHT = 1.0
COMMENT_WEIGHT = 0.5


def trending_score(
    upvotes: int | None, comments: int | None, day_gain: int | None, age_hours: float
) -> float:
    """How much a paper is trending now, in the spirit of Hacker News' ranking.

        score = (1 + upvotes + COMMENT_WEIGHT * comments + GROWTH_WEIGHT * day_gain)
                / (age_hours + 2) ** GRAVITY

    ``day_gain`` is the upvotes gained over the last 24 hours (from snapshots), so a paper that
    is climbing beats one with an old, larger total. Unknown counts count as zero; with no
    votes at all the numerator is 1 and the order falls back to listing recency. ``age_hours``
    is measured from the listing day (or arXiv publication when there is no listing).
    """
    votes = (upvotes or 0) + COMMENT_WEIGHT * (comments or 0) + GROWTH_WEIGHT * (day_gain or 0)
    return (1.0 + votes) / (max(age_hours, 0.0) + 2.0) ** GRAVITY


# --- Relevance -----------------------------------------------------------------------------------

FLOOR = 0.05  # cosine below which a paper is unrelated, however empty the digest
DIVERSITY = 0.4  # 0 ranks by score alone; higher trades score for papers unlike those picked
POOL = 3  # maximal marginal relevance chooses among the best POOL * size papers

KEYWORD_WEIGHT = 1.0
PHRASE_WORD_WEIGHT = 0.35  # a phrase's single words, relative to its word pairs
TOPIC_WEIGHT = 0.6
TOPIC_NAME_SHARE = 0.5  # of a topic's vector; the description gives the rest
LIKED_WEIGHT = 0.8
DISLIKED_WEIGHT = 0.6
# A topic's or a liked paper's vector keeps its strongest terms only (Rocchio's term
# selection): its distinctive words, not every word its description happens to use.
COMPONENT_TERMS = 40
TITLE_REPEATS = 2
LARGE_CATALOGUE = 500  # from this size on, word pairs seen in a single paper are dropped
# Terms in more than this share of the papers say little about a paper and are the longest
# posting lists of the products; dropped once the catalogue has COMMON_FROM papers.
COMMON_SHARE = 0.5
COMMON_FROM = 20
SIMILARITY_CACHE_BYTES = 32 << 20  # components' similarities kept per set of candidates
LOOKUP_LIMIT = 1 << 24  # paper keys below this are found through a table, others by search

WORD = re.compile(r"\w+")
# Phrases do not run across clause punctuation: "images, videos" is not "images videos".
CLAUSE = re.compile(r"[,;:!?()\[\]{}&|\"]|\.(?:\s|$)|\n")
# sklearn's list is for general English; these words carry meaning in machine learning
# ("few-shot", "next-token", "one-step", "out-of-distribution", "bottom-up", "system").
# fmt: off
KEPT_WORDS = frozenset({
    "back", "bottom", "call", "detail", "down", "empty", "few", "fill", "fire", "first", "five",
    "four", "front", "full", "interest", "last", "many", "move", "name", "next", "off", "one",
    "out", "over", "part", "side", "six", "system", "ten", "three", "top", "two", "under", "up",
})
# fmt: on
STOP_WORDS = ENGLISH_STOP_WORDS - KEPT_WORDS


def fold(word: str) -> str:
    """A crude plural folding, applied the same way to papers and interests."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def words(text: str) -> list[str]:
    return [fold(w) for w in WORD.findall(text.lower())]


def features(text: str) -> list[str]:
    """The terms of a text: words that are not stop words, and pairs of adjacent ones.

    A pair never bridges a stop word or clause punctuation, so "diffusion and models" is not
    the phrase "diffusion models".
    """
    terms: list[str] = []
    for clause in CLAUSE.split(text):
        previous = ""
        for word in words(clause):
            if len(word) < 2 or word in STOP_WORDS:
                previous = ""
                continue
            terms.append(word)
            if previous:
                terms.append(f"{previous} {word}")
            previous = word
    return terms


def phrase_text(text: str) -> str:
    """Text prepared for whole-word phrase search: ``" word word | word "``."""
    clauses = (" ".join(words(c)) for c in CLAUSE.split(text))
    return " " + " | ".join(c for c in clauses if c) + " "


def needle(phrase: str) -> str:
    """What ``phrase_text`` must contain for a paper to contain ``phrase``; "" when nothing."""
    found = words(phrase)
    return f" {' '.join(found)} " if found else ""


@dataclass
class PaperText:
    """What the ranking knows of a paper. ``trending`` is ``trending_score`` of the paper now."""

    key: int
    title: str
    abstract: str = ""
    ai_summary: str = ""
    ai_keywords: list[str] = field(default_factory=list)
    upvotes: int | None = None
    day_gain: int | None = None
    trending: float = 0.0

    def segments(self) -> list[str]:
        return [self.title, self.abstract, self.ai_summary, *self.ai_keywords]

    def document(self) -> str:
        return "\n".join([self.title] * TITLE_REPEATS + self.segments()[1:])

    @property
    def fingerprint(self) -> tuple[int, int, int]:
        # Cheap enough for every candidate of every chunk; catches a paper whose text changed.
        return (len(self.title), len(self.abstract), len(self.ai_summary))


@dataclass
class Interests:
    """One subscriber's interests, as the ranking needs them."""

    topics: list[tuple[str, str]] = field(default_factory=list)  # (name, description)
    keywords: list[str] = field(default_factory=list)  # words or phrases
    liked: list[PaperText] = field(default_factory=list)
    disliked: list[PaperText] = field(default_factory=list)
    excluded_keywords: list[str] = field(default_factory=list)
    trending_weight: float = 0.2  # 0 = pure relevance, 1 = pure trending
    size: int = 10
    seen: frozenset[int] = frozenset()  # paper keys never to pick again


class Pick(NamedTuple):
    key: int
    score: float  # what the paper was ranked by
    relevance: float  # cosine similarity between the paper and the subscriber's profile
    reason: str


# A pick from a (key, score, relevance, reason) tuple without running Python code: a chunk
# makes thousands of them.
_new_pick = partial(tuple.__new__, Pick)


Vector = tuple[np.ndarray, np.ndarray]  # (feature indices, weights)


def _given(terms: list[str]) -> list[str]:
    # The vectorizer receives terms already analysed by ``features``; a module-level function
    # (not a lambda) keeps the model picklable.
    return terms


def _unit(cols: np.ndarray, vals: np.ndarray, keep: int | None = None) -> Vector:
    """The vector scaled to length 1, first cut to its ``keep`` strongest terms."""
    if keep is not None and len(vals) > keep:
        strongest = np.argpartition(-np.abs(vals), keep - 1)[:keep]
        cols, vals = cols[strongest], vals[strongest]
    norm = float(np.linalg.norm(vals))
    return cols.astype(np.int32), (vals / norm if norm else vals).astype(np.float32)


TRENDING = attrgetter("trending")
CANDIDATE_TOKEN = attrgetter("key", "title", "abstract", "ai_summary", "upvotes", "day_gain")


class Model:
    """A TF-IDF vector space fitted on the catalogue, with every paper's vector.

    Picklable (its caches are dropped); fit it when the catalogue changes and reuse it for
    every chunk. Papers are recognised by key: a paper whose key and text lengths match a
    fitted paper reuses its vector, any other is vectorised on the fly.
    """

    def __init__(self, vectorizer: TfidfVectorizer, papers: Sequence[PaperText], matrix: Any):
        self.vectorizer = vectorizer
        self.matrix: sp.csr_matrix = matrix
        self.papers = list(papers)
        self.rows = {p.key: row for row, p in enumerate(papers)}
        self._reset_caches()

    def _reset_caches(self) -> None:
        self.vocabulary: dict[str, int] = self.vectorizer.vocabulary_
        self.idf: np.ndarray = self.vectorizer.idf_.astype(np.float32)
        self._phrases: dict[str, Vector] = {}
        self._topics: dict[tuple[str, str], Vector] = {}
        self._papers: dict[tuple[int, tuple[int, int, int]], Vector] = {}
        self._candidates: tuple[tuple[Any, ...], Candidates] | None = None

    def __getstate__(self) -> dict[str, object]:
        kept = ("vectorizer", "matrix", "papers", "rows")
        return {k: self.__dict__[k] for k in kept}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset_caches()

    def texts(self, keys: Sequence[int]) -> list[PaperText]:
        """The fitted papers with these keys (keys the model does not know are left out)."""
        return [self.papers[self.rows[key]] for key in keys if key in self.rows]

    @property
    def n_features(self) -> int:
        return len(self.vocabulary)

    def vectors(self, papers: Sequence[PaperText]) -> sp.csr_matrix:
        """One L2-normalised row per paper."""
        rows = [self.rows.get(p.key, -1) for p in papers]
        fresh = [
            i
            for i, (p, row) in enumerate(zip(papers, rows, strict=True))
            if row < 0 or self.papers[row].fingerprint != p.fingerprint
        ]
        if not fresh:
            return self.matrix[rows]
        stale = set(fresh)
        known = [i for i in range(len(papers)) if i not in stale]
        computed = self.vectorizer.transform([features(papers[i].document()) for i in fresh])
        stacked = sp.vstack([self.matrix[[rows[i] for i in known]], computed], format="csr")
        return sp.csr_matrix(stacked[np.argsort(known + fresh)], dtype=np.float32)

    def phrase_vector(self, phrase: str) -> Vector:
        """A keyword's unit vector: its word pairs weigh most, its single words less."""
        if phrase not in self._phrases:
            weights: dict[int, float] = {}
            for clause in CLAUSE.split(phrase):
                terms = features(clause)
                single = len(terms) == 1
                for term in terms:
                    col = self.vocabulary.get(term)
                    if col is not None:
                        share = 1.0 if single or " " in term else PHRASE_WORD_WEIGHT
                        weights[col] = max(weights.get(col, 0.0), share * float(self.idf[col]))
            self._phrases[phrase] = _unit(
                np.fromiter(weights.keys(), dtype=np.int32, count=len(weights)),
                np.fromiter(weights.values(), dtype=np.float32, count=len(weights)),
            )
        return self._phrases[phrase]

    def topic_vector(self, topic: tuple[str, str]) -> Vector:
        """A topic's unit vector: its name read as a keyword, plus its description's terms."""
        if topic not in self._topics:
            name, description = topic
            described = self.vectorizer.transform([features(description)])
            named = self.phrase_vector(name)
            cols = np.concatenate([named[0], described.indices])
            vals = np.concatenate(
                [named[1] * TOPIC_NAME_SHARE, described.data * (1 - TOPIC_NAME_SHARE)]
            )
            merged = sp.csr_matrix((vals, cols, [0, len(cols)]), shape=(1, self.n_features))
            merged.sum_duplicates()
            self._topics[topic] = _unit(merged.indices, merged.data, COMPONENT_TERMS)
        return self._topics[topic]

    def paper_vector(self, paper: PaperText) -> Vector:
        """A paper's unit vector cut to its strongest terms, as a liked paper in a profile."""
        key = (paper.key, paper.fingerprint)
        if key not in self._papers:
            row = self.rows.get(paper.key, -1)
            if row >= 0 and self.papers[row].fingerprint == paper.fingerprint:
                # The fitted row, sliced out of the matrix (scipy's row indexing costs 250 µs).
                start, end = self.matrix.indptr[row : row + 2]
                cols, vals = self.matrix.indices[start:end], self.matrix.data[start:end]
            else:
                fresh = self.vectors([paper])
                cols, vals = fresh.indices, fresh.data
            self._papers[key] = _unit(cols, vals, COMPONENT_TERMS)
        return self._papers[key]

    def candidates(self, papers: Sequence[PaperText]) -> Candidates:
        """The candidates prepared for ranking, kept while the same papers come again.

        A round of digests ranks every chunk against the same candidates: their vectors,
        similarities and phrase index are built once, not once per chunk.
        """
        # Everything the prepared candidates keep (texts, vote signals), read in C: this runs
        # for every chunk, and a Python loop over the papers cost 18 µs per subscriber.
        token = tuple(map(CANDIDATE_TOKEN, papers))
        cached = self._candidates
        if cached is not None and cached[0] == token:
            return cached[1]
        prepared = Candidates(papers, self.vectors(papers))
        self._candidates = (token, prepared)
        return prepared


def fit_model(papers: Sequence[PaperText]) -> Model:
    """Fit the vector space on the whole catalogue (works from a single paper up)."""
    analysed = [features(p.document()) for p in papers]
    df: dict[str, int] = {}
    for terms in analysed:
        for term in set(terms):
            df[term] = df.get(term, 0) + 1
    pair_min_df = 2 if len(papers) >= LARGE_CATALOGUE else 1
    max_df = COMMON_SHARE * len(papers) if len(papers) >= COMMON_FROM else len(papers)
    vocabulary = sorted(
        t for t, n in df.items() if n <= max_df and (n >= pair_min_df or " " not in t)
    )
    vectorizer = TfidfVectorizer(
        analyzer=_given,
        vocabulary=vocabulary or ["paper"],  # an empty catalogue still makes a (blind) model
        sublinear_tf=True,
        dtype=np.float32,
    )
    matrix = vectorizer.fit_transform(analysed or [[]])[: len(analysed)]
    return Model(vectorizer, papers, sp.csr_matrix(matrix, dtype=np.float32))


class Candidates:
    """Candidate papers prepared once for many chunks of subscribers."""

    def __init__(self, papers: Sequence[PaperText], vectors: sp.csr_matrix) -> None:
        self.papers = list(papers)
        self.vectors = vectors
        self.vectors_t = vectors.T.tocsr()
        keys = np.fromiter((p.key for p in papers), dtype=np.int64, count=len(papers))
        # Keys are database ids: a table indexed by key finds a chunk's seen papers fastest.
        small = not len(keys) or (keys.min() >= 0 and keys.max() < LOOKUP_LIMIT)
        self.lookup = np.full(int(keys.max()) + 1 if len(keys) and small else 0, -1, np.int32)
        if small:
            self.lookup[keys] = np.arange(len(keys))
        self.order = np.argsort(keys, kind="stable")
        self.sorted_keys = keys[self.order]
        self.texts = [phrase_text("\n".join(p.segments())) for p in papers]
        signals = [_signal(p) for p in papers]
        trending = [f"trending, {s}" if s else "trending" for s in signals]
        # A pick's signal: signal_table[index] or, when trending led to it, [index + len].
        self.signal_table = np.array(signals + trending, dtype=object)
        self.keys = keys
        self._with_word: dict[str, list[int]] | None = None  # word -> candidates having it
        self._containing: dict[str, np.ndarray] = {}
        self._similarity: np.ndarray | None = None
        self._table = np.zeros((0, len(papers)), dtype=np.float32)
        self._rows: dict[Hashable, int] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.papers)

    def positions(self, keys: np.ndarray) -> np.ndarray:
        """The candidate index of each key, -1 for keys that are not candidates."""
        if len(self.lookup):
            inside = (keys >= 0) & (keys < len(self.lookup))
            found = np.full(len(keys), -1, dtype=np.int64)
            found[inside] = self.lookup[keys[inside]]
            return found
        if not len(self.sorted_keys):
            return np.full(len(keys), -1, dtype=np.int64)
        at = np.searchsorted(self.sorted_keys, keys).clip(0, len(self.sorted_keys) - 1)
        return np.where(self.sorted_keys[at] == keys, self.order[at], -1)

    def containing(self, phrase: str) -> np.ndarray:
        """Which candidates contain ``phrase`` (whole words, any case, plural folded)."""
        if phrase not in self._containing:
            found = np.zeros(len(self), dtype=bool)
            target = needle(phrase)
            if target:
                # Only the candidates with the phrase's rarest word can contain the phrase.
                if self._with_word is None:
                    index: dict[str, list[int]] = {}  # complete before another thread sees it
                    for at, text in enumerate(self.texts):
                        for word in set(text.split()):
                            index.setdefault(word, []).append(at)
                    self._with_word = index
                having = [self._with_word.get(word, []) for word in target.split()]
                found[[at for at in min(having, key=len) if target in self.texts[at]]] = True
            self._containing[phrase] = found
        return self._containing[phrase]

    def component_rows(self, parts: _Components) -> tuple[np.ndarray, np.ndarray]:
        """Cosine of each component (keyword, topic, liked paper) with every candidate: a
        table kept across chunks, and the row of each of ``parts``' components in it.

        A topic or a popular keyword comes back in chunk after chunk: its row is computed
        once and kept (up to ``SIMILARITY_CACHE_BYTES``), and only new components meet the
        candidates in a sparse product. Rows are never copied out per chunk; a full table is
        replaced by a new one, never overwritten under a chunk still reading it.
        """
        idents = parts.idents
        with self._lock:
            table, rows = self._table, self._rows
            missing = [i for i, ident in enumerate(idents) if ident not in rows]
            capacity = SIMILARITY_CACHE_BYTES // (4 * len(self) + 4)
            if len(rows) + len(missing) > min(capacity, len(table)):  # full, or first use
                rows, missing = {}, list(range(len(idents)))
                size = max(capacity, len(idents))
                table = self._table = np.empty((size, len(self)), dtype=np.float32)
                self._rows = rows
            if missing:
                start = len(rows)
                table[start : start + len(missing)] = (
                    parts.matrix(missing) @ self.vectors_t
                ).toarray()
                rows.update((idents[at], start + n) for n, at in enumerate(missing))
            return table, np.array(list(map(rows.__getitem__, idents)), dtype=np.int64)

    @property
    def similarity(self) -> np.ndarray:
        """Cosine similarity between every two candidates (dense: candidates are a window)."""
        if self._similarity is None:
            self._similarity = (self.vectors @ self.vectors_t).toarray().astype(np.float32)
        return self._similarity


class _Components:
    """The distinct keyword, topic and paper vectors of a chunk, to stack as one matrix."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.keywords: dict[str, int] = {}
        self.topics: dict[tuple[str, str], int] = {}
        self.papers: dict[int, int] = {}
        self.vectors: list[Vector] = []
        self.idents: list[Hashable] = []  # what each vector is, the same from chunk to chunk

    def _add(self, ident: Hashable, vector: Vector) -> int:
        self.idents.append(ident)
        self.vectors.append(vector)
        return len(self.vectors) - 1

    def keyword(self, phrase: str) -> int:
        at = self.keywords.get(phrase)
        if at is None:
            vector = self.model.phrase_vector(phrase)
            at = self.keywords[phrase] = self._add(("keyword", phrase), vector)
        return at

    def topic(self, topic: tuple[str, str]) -> int:
        topic = (topic[0], topic[1])  # a list from JSON would not be hashable
        at = self.topics.get(topic)
        if at is None:
            vector = self.model.topic_vector(topic)
            at = self.topics[topic] = self._add(("topic", topic), vector)
        return at

    def paper(self, paper: PaperText) -> int:
        at = self.papers.get(paper.key)
        if at is None:
            vector = self.model.paper_vector(paper)
            ident = ("paper", paper.key, paper.fingerprint)
            at = self.papers[paper.key] = self._add(ident, vector)
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
class _Profiles:
    """A chunk's profiles, factored: profile i = sum over c of weights[i, c] * components[c]."""

    weights: sp.csr_matrix  # (subscribers, components)
    components: sp.csr_matrix  # (components, features): distinct keyword, topic, paper vectors
    parts: _Components  # what each component is
    keyword_rows: list[list[int]]  # per subscriber: the component of each keyword, in order
    topic_rows: Labelled
    liked_rows: Labelled


def _profiles(model: Model, interests_list: Sequence[Interests]) -> _Profiles:
    parts = _Components(model)
    keyword, topic, paper = parts.keyword, parts.topic, parts.paper
    known = parts.keywords  # most keywords were met earlier in the chunk: no call for them
    keyword_rows = [
        [known[k] if k in known else keyword(k) for k in i.keywords] for i in interests_list
    ]
    topic_rows: Labelled = [[(t[0], topic(t)) for t in i.topics] for i in interests_list]
    liked_rows: Labelled = [[(p.title, paper(p)) for p in i.liked] for i in interests_list]
    disliked_rows = [[paper(p) for p in i.disliked] for i in interests_list]
    # The weights, one kind of component at a time, then put in subscriber order.
    kinds = (
        ([c for row in keyword_rows for c in row], keyword_rows),
        ([c for row in topic_rows for _, c in row], topic_rows),
        ([c for row in liked_rows for _, c in row], liked_rows),
        ([c for row in disliked_rows for c in row], disliked_rows),
    )
    n_subs = len(interests_list)
    counts = np.array([np.fromiter(map(len, rows), np.int64, n_subs) for _, rows in kinds])
    shares = np.empty(counts.shape, dtype=np.float32)
    shares[0] = KEYWORD_WEIGHT
    shares[1] = TOPIC_WEIGHT
    shares[2] = LIKED_WEIGHT / np.maximum(counts[2], 1)
    shares[3] = -DISLIKED_WEIGHT / np.maximum(counts[3], 1)
    owner = np.repeat(np.tile(np.arange(n_subs), len(kinds)), counts.ravel())
    order = np.argsort(owner, kind="stable")
    indices = np.fromiter(chain.from_iterable(flat for flat, _ in kinds), np.int32, len(owner))
    indptr = np.zeros(n_subs + 1, dtype=np.int64)
    np.cumsum(counts.sum(axis=0), out=indptr[1:])
    combination = sp.csr_matrix(
        (np.repeat(shares.ravel(), counts.ravel())[order], indices[order], indptr),
        shape=(n_subs, len(parts.vectors)),
    )
    return _Profiles(combination, parts.matrix(), parts, keyword_rows, topic_rows, liked_rows)


def profile_matrix(model: Model, interests_list: Sequence[Interests]) -> sp.csr_matrix:
    """One L2-normalised profile row per subscriber (Rocchio style).

    Keywords weigh most (a phrase through its word pairs), then topics (name and
    description); liked papers' vectors are added, disliked papers' subtracted. Topic and
    paper vectors keep their ``COMPONENT_TERMS`` strongest terms.
    """
    profiles = _profiles(model, interests_list)
    matrix = sp.csr_matrix(profiles.weights @ profiles.components, dtype=np.float32)
    matrix.data /= np.repeat(_row_norms(matrix), np.diff(matrix.indptr))
    return matrix


def _row_norms(matrix: sp.csr_matrix) -> np.ndarray:
    """The length of each row (1 for an empty row, so that dividing by it is harmless)."""
    squares = np.zeros(len(matrix.data) + 1)
    np.cumsum(np.square(matrix.data, dtype=np.float64), out=squares[1:])
    norms = np.sqrt(squares[matrix.indptr[1:]] - squares[matrix.indptr[:-1]])
    norms[norms == 0] = 1.0
    return norms.astype(np.float32)


@dataclass
class _Scored:
    """Relevance of a chunk of subscribers to the candidates, and what explains it."""

    candidates: Candidates
    relevance: np.ndarray  # (subscribers, candidates): cosine to the profile
    allowed: np.ndarray  # (subscribers, candidates): not seen, not excluded, above the floor
    similarities: np.ndarray  # (rows, candidates): cosine to each keyword, topic, liked paper
    rows: np.ndarray  # which row of ``similarities`` is each of the profiles' components
    profiles: _Profiles


def _score(
    model: Model, papers: Sequence[PaperText], interests_list: Sequence[Interests], floor: float
) -> _Scored:
    """Cosine of every profile with every candidate, for the whole chunk at once.

    A profile is a weighted sum of components, so its cosine with a paper is the same
    weighted sum of the components' cosines, over the profile's length:

        relevance = (weights / |weights @ components|) @ (components @ candidates.T)

    The distinct components of a chunk (a topic or a popular keyword is shared by many
    subscribers) meet the candidates in one sparse product, kept from chunk to chunk
    (``Candidates.component_rows``); the subscribers' weights then combine those rows in a
    second, small one. Neither loops over subscribers or papers.
    """
    candidates = model.candidates(papers)
    profiles = _profiles(model, interests_list)
    weights = profiles.weights
    lengths = _row_norms(weights @ profiles.components)
    similarities, rows = candidates.component_rows(profiles.parts)
    combination = sp.csr_matrix(
        (
            weights.data / np.repeat(lengths, np.diff(weights.indptr)),
            rows[weights.indices],
            weights.indptr,
        ),
        shape=(weights.shape[0], len(similarities)),
    )
    relevance = np.asarray(combination @ similarities)

    allowed = relevance >= floor
    counts = [len(i.seen) + len(i.liked) + len(i.disliked) for i in interests_list]
    never = chain.from_iterable(
        chain(i.seen, (p.key for p in chain(i.liked, i.disliked))) for i in interests_list
    )
    keys = np.fromiter(never, dtype=np.int64, count=sum(counts))
    owner = np.repeat(np.arange(len(interests_list)), counts)
    at = candidates.positions(keys)
    allowed[owner[at >= 0], at[at >= 0]] = False
    for row, interests in enumerate(interests_list):
        for phrase in interests.excluded_keywords:
            allowed[row] &= ~candidates.containing(phrase)
    return _Scored(candidates, relevance, allowed, similarities, rows, profiles)


def _trend(papers: Sequence[PaperText]) -> np.ndarray:
    """Trending min-max normalised to [0, 1] over the candidates.

    On a log scale: votes are heavy-tailed, and linearly one viral paper would flatten every
    other paper's trending to zero.
    """
    raw = np.fromiter(map(TRENDING, papers), dtype=np.float64, count=len(papers))
    logged = np.log(np.maximum(raw, 1e-9))
    low, high = (logged.min(), logged.max()) if len(logged) else (0.0, 0.0)
    if high - low < 1e-12:
        return np.zeros(len(papers), dtype=np.float32)
    return ((logged - low) / (high - low)).astype(np.float32)


def rank_chunk(
    model: Model,
    candidates: Sequence[PaperText],
    interests_list: Sequence[Interests],
    floor: float = FLOOR,
    diversity: float = DIVERSITY,
) -> list[list[Pick]]:
    """Pick each subscriber's next digest among ``candidates``: one list of picks each.

    A paper is never picked when its key is in ``seen``, it was liked or disliked, it contains
    an excluded keyword, or its relevance is below ``floor`` (a digest may come out short or
    empty rather than carry unrelated papers). The others are scored

        score = (1 - trending_weight) * relevance / best relevance + trending_weight * trend

    (``trend``: trending min-max normalised over the candidates) and picked by maximal
    marginal relevance among the best ``POOL * size``: each next pick maximises
    ``(1 - diversity) * score - diversity * (cosine to the closest paper already picked)``.
    """
    if not interests_list:
        return []
    if not candidates:
        return [[] for _ in interests_list]
    scored = _score(model, candidates, interests_list, floor)
    n_subs = len(interests_list)
    weight = np.fromiter((i.trending_weight for i in interests_list), np.float32, n_subs)
    weight = weight.clip(0.0, 1.0)
    sizes = np.fromiter((max(i.size, 0) for i in interests_list), np.int64, n_subs)
    # The papers a subscriber may get are a tenth of the chunk-by-candidates matrix: they are
    # scored and selected as flat arrays (subscriber by subscriber), not cell by cell.
    # (Flat positions: a two-dimensional nonzero or mask costs four times as much.)
    available = np.flatnonzero(scored.allowed)
    counts = np.diff(np.searchsorted(available, np.arange(n_subs + 1) * len(candidates)))
    owner = np.repeat(np.arange(n_subs), counts)
    index = available - owner * len(candidates)
    relevance = scored.relevance.ravel().take(available)
    starts = np.zeros(n_subs, dtype=np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    best = np.ones(n_subs, dtype=np.float32)
    some = counts > 0
    best[some] = np.maximum.reduceat(relevance, starts[some]) if len(relevance) else 1.0
    best[best <= 0] = 1.0
    share = weight[owner]
    trend = _trend(candidates)
    score = relevance / best[owner]
    score *= 1 - share
    score += share * trend[index]
    similarity = scored.candidates.similarity if diversity > 0 else None
    chosen = _select(score, index, counts, starts, sizes, similarity, diversity)
    picked = chosen[chosen >= 0]  # entries of the flat arrays, subscriber by subscriber
    trend_led = share[picked] * trend[index[picked]] > (1 - share[picked]) * (
        relevance[picked] / best[owner[picked]]
    )
    return _picks(
        scored,
        owner[picked],
        index[picked],
        score[picked],
        relevance[picked],
        trend_led,
        interests_list,
    )


def _select(
    score: np.ndarray,
    index: np.ndarray,
    counts: np.ndarray,
    starts: np.ndarray,
    sizes: np.ndarray,
    similarity: np.ndarray | None,
    diversity: float,
) -> np.ndarray:
    """Each subscriber's picks, best first, as entries of the flat arrays of available papers
    (``score``, ``index``: a subscriber's ``counts`` entries from ``starts``), -1
    where nothing is left.

    Vectorised over the chunk: the greedy loop runs ``max(sizes)`` steps of array work,
    whatever the number of subscribers.
    """
    n_subs = len(counts)
    most = int(counts.max()) if n_subs else 0
    width = min(int(sizes.max()) if n_subs else 0, most)
    if width == 0:
        return np.full((n_subs, 0), -1, dtype=np.int64)
    # Each subscriber's scores in a row of their own, padded with -inf.
    padded = np.full((n_subs, most), -np.inf, dtype=np.float32)
    shift = np.repeat(np.arange(n_subs) * most - starts, counts)
    padded.ravel()[np.arange(len(score)) + shift] = score
    pool = min(most, POOL * width) if similarity is not None else width
    if pool < most:
        top = np.argpartition(-padded, pool - 1, axis=1)[:, :pool]
    else:
        top = np.broadcast_to(np.arange(most), (n_subs, most))
    top_scores = np.take_along_axis(padded, top, axis=1)
    order = np.argsort(-top_scores, axis=1, kind="stable")
    top = np.take_along_axis(top, order, axis=1)
    top_scores = np.take_along_axis(top_scores, order, axis=1)
    available = top_scores > -np.inf
    entry = np.where(available, starts[:, None] + top, -1)
    if similarity is None:
        picked = entry[:, :width]
        return np.where(np.arange(width) < sizes[:, None], picked, -1)

    candidate = index[entry]  # meaningless where not available, and never used there
    value = np.where(available, top_scores, 0.0) * (1 - diversity)
    redundancy = np.zeros_like(value)
    rows = np.arange(n_subs)
    chosen = np.full((n_subs, width), -1, dtype=np.int64)
    n = similarity.shape[0]
    flat = similarity.ravel()  # one flat gather per step is cheaper than a 2-D fancy index
    for step in range(width):
        marginal = np.where(available, value - diversity * redundancy, -np.inf)
        best = marginal.argmax(axis=1)
        ok = available[rows, best] & (step < sizes)
        chosen[ok, step] = entry[rows[ok], best[ok]]
        available[rows[ok], best[ok]] = False
        if step + 1 < width:  # the last pick leaves nothing to compare with it
            picked = candidate[rows, best]
            np.maximum(redundancy, flat.take(picked[:, None] * n + candidate), out=redundancy)
    return chosen


def _matched_keywords(
    candidates: Candidates, profiles: _Profiles, owner: np.ndarray, index: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each pick (subscriber ``owner`` got candidate ``index``), the first and the second
    of the subscriber's keywords (in their order) that the paper contains whole, "" for none:
    one lookup for the chunk."""
    most = max((len(row) for row in profiles.keyword_rows), default=0)
    if most == 0 or not len(index):
        none = np.full(len(index), "", dtype=object)
        return none, none
    # One row per component; the last one, for padding, contains nothing and is named "".
    contains = np.zeros((profiles.weights.shape[1] + 1, len(candidates)), dtype=bool)
    phrases = np.full(len(contains), "", dtype=object)
    for phrase, component in profiles.parts.keywords.items():
        contains[component] = candidates.containing(phrase)
        phrases[component] = phrase
    table = np.array([row + [-1] * (most - len(row)) for row in profiles.keyword_rows])
    keywords = table[owner]  # (picks, keywords)
    hits = contains[keywords, index[:, None]]
    counts = np.cumsum(hits, axis=1, dtype=np.int8)
    picks = np.arange(len(index))
    first = np.where(counts[:, -1] >= 1, keywords[picks, (counts >= 1).argmax(axis=1)], -1)
    second = np.where(counts[:, -1] >= 2, keywords[picks, (counts >= 2).argmax(axis=1)], -1)
    return phrases[first], phrases[second]


def _picks(
    scored: _Scored,
    owner: np.ndarray,
    index: np.ndarray,
    scores: np.ndarray,
    relevances: np.ndarray,
    trend_led: np.ndarray,
    interests_list: Sequence[Interests],
) -> list[list[Pick]]:
    """The picks with their scores and reasons, from flat arrays: pick i gave subscriber
    ``owner[i]`` (ascending, best pick first) candidate ``index[i]``. Why each was picked is one
    comprehension and a loop over the few picks no keyword explains; a second comprehension
    joins the signal on. This Python is ranking's only per-pick work, so it is kept to what
    cannot be arrays."""
    candidates, profiles = scored.candidates, scored.profiles
    first, second = _matched_keywords(candidates, profiles, owner, index)
    # Why: the keywords the paper contains, else the closest topic or liked paper.
    whys = [
        f"matches your keywords '{a}' and '{b}'"
        if b
        else f"matches your keyword '{a}'"
        if a
        else ""
        for a, b in zip(first.tolist(), second.tolist(), strict=True)
    ]
    for at in [at for at, why in enumerate(whys) if not why]:
        row = int(owner[at])
        whys[at] = _why_else(
            scored.similarities,
            scored.rows,
            int(index[at]),
            profiles.topic_rows[row],
            profiles.liked_rows[row],
            interests_list[row].keywords,
            candidates.texts,
        )
    signals = candidates.signal_table[index + len(candidates) * trend_led].tolist()
    reasons = [f"{w} · {s}" if w and s else w or s for w, s in zip(whys, signals, strict=True)]
    keys = candidates.keys[index].tolist()
    fields = zip(keys, scores.tolist(), relevances.tolist(), reasons, strict=True)
    picks = iter(map(_new_pick, fields))
    counts = np.bincount(owner, minlength=len(interests_list)).tolist()
    return [list(islice(picks, count)) for count in counts]


def _why_else(
    sims: np.ndarray,
    rows: np.ndarray,
    index: int,
    topics: list[tuple[str, int]],
    liked: list[tuple[str, int]],
    keywords: Sequence[str],
    texts: Sequence[str],
) -> str:
    """Why a paper that contains none of the keywords whole was picked: the liked paper or
    the topic most similar to it, else the keyword with most of its words in it. ``sims``
    holds the components' cosines with the candidates, component c in row ``rows[c]``."""
    topic, topic_sim = _closest(sims, rows, topics, index)
    title, liked_sim = _closest(sims, rows, liked, index)
    if liked_sim > topic_sim and liked_sim > 0:
        return f"like '{_shorten(title)}' you liked"
    if topic_sim > 0:
        return f"in your topic '{topic}'"
    if keywords:
        return f"close to your keyword '{_nearest_keyword(keywords, texts[index])}'"
    return ""


def _closest(
    sims: np.ndarray, rows: np.ndarray, labelled: list[tuple[str, int]], index: int
) -> tuple[str, float]:
    """The label (topic or liked paper) whose component is most similar to candidate ``index``,
    and that similarity; "" and 0 when none is similar at all."""
    best, top = "", 0.0
    for label, component in labelled:
        sim = float(sims[rows[component], index])
        if sim > top:
            best, top = label, sim
    return best, top


def _nearest_keyword(keywords: Sequence[str], text: str) -> str:
    """The keyword with most of its words in the paper, for a paper matching none whole."""
    return max(keywords, key=lambda k: sum(f" {w} " in text for w in words(k)))


def _signal(paper: PaperText) -> str:
    """The paper's votes in words: "212 upvotes, +40 today"."""
    parts = []
    if paper.upvotes:
        parts.append(f"{paper.upvotes} upvote" + ("s" if paper.upvotes != 1 else ""))
    if paper.day_gain and paper.day_gain != paper.upvotes:
        parts.append(f"+{paper.day_gain} today")
    return ", ".join(parts)


def _shorten(title: str, width: int = 60) -> str:
    return title if len(title) <= width else title[: width - 1].rstrip() + "…"


def rank_catalogue(
    model: Model,
    papers: Sequence[PaperText],
    interests: Interests,
    floor: float = FLOOR,
    limit: int | None = None,
) -> list[Pick]:
    """Every paper at or above ``floor`` (at most ``limit``), best first, by relevance alone.

    The relevance digests use, without trending, diversity, ``size`` or ``seen``; a pick's
    ``score`` is its relevance.
    """
    plain = Interests(
        topics=interests.topics,
        keywords=interests.keywords,
        liked=interests.liked,
        disliked=interests.disliked,
        excluded_keywords=interests.excluded_keywords,
    )
    if not papers:
        return []
    scored = _score(model, papers, [plain], floor)
    relevance = np.where(scored.allowed, scored.relevance, -np.inf)
    ranked = np.argsort(-relevance[0], kind="stable")[: int(scored.allowed.sum())][:limit]
    ranked_relevance = scored.relevance[0, ranked]
    owner = np.zeros(len(ranked), dtype=np.int64)
    no_trend = np.zeros(len(ranked), dtype=bool)
    return _picks(scored, owner, ranked, ranked_relevance, ranked_relevance, no_trend, [plain])[0]
