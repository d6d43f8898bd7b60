"""The vector space: a TF-IDF model fitted on the catalogue, and candidates prepared in it."""

from __future__ import annotations

import threading
from collections.abc import Hashable, Sequence
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from papers.ranking.authors import AuthorIndex
from papers.ranking.text import CLAUSE, PaperText, features, needle, phrase_text

if TYPE_CHECKING:
    from papers.ranking.profiles import Components

PHRASE_WORD_WEIGHT = 0.35  # a phrase's single words, relative to its word pairs
TOPIC_NAME_SHARE = 0.5  # of a topic's vector; the description gives the rest
# A topic's or a liked paper's vector keeps its strongest terms only (Rocchio's term
# selection): its distinctive words, not every word its description happens to use.
COMPONENT_TERMS = 40
LARGE_CATALOGUE = 500  # from this size on, word pairs seen in a single paper are dropped
# Terms in more than this share of the papers say little about a paper and are the longest
# posting lists of the products; dropped once the catalogue has COMMON_FROM papers.
COMMON_SHARE = 0.5
COMMON_FROM = 20
SIMILARITY_CACHE_BYTES = 32 << 20  # components' similarities kept per set of candidates
LOOKUP_LIMIT = 1 << 24  # paper keys below this are found through a table, others by search

Vector = tuple[np.ndarray, np.ndarray]  # (feature indices, weights)


def _given(terms: list[str]) -> list[str]:
    # The vectorizer receives terms already analysed by ``features``; a module-level function
    # (not a lambda) keeps the model picklable.
    return terms


def unit(cols: np.ndarray, vals: np.ndarray, keep: int | None = None) -> Vector:
    """The vector scaled to length 1, first cut to its ``keep`` strongest terms."""
    if keep is not None and len(vals) > keep:
        strongest = np.argpartition(-np.abs(vals), keep - 1)[:keep]
        cols, vals = cols[strongest], vals[strongest]
    norm = float(np.linalg.norm(vals))
    return cols.astype(np.int32), (vals / norm if norm else vals).astype(np.float32)


CANDIDATE_TOKEN = attrgetter("key", "title", "abstract", "ai_summary", "authors")


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
        self._descriptions: dict[str, Vector] = {}
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
            self._phrases[phrase] = unit(
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
            self._topics[topic] = unit(merged.indices, merged.data, COMPONENT_TERMS)
        return self._topics[topic]

    def description_vector(self, text: str) -> Vector:
        """A reader's description of their work: its distinctive terms, as a topic's."""
        if text not in self._descriptions:
            described = self.vectorizer.transform([features(text)])
            self._descriptions[text] = unit(described.indices, described.data, COMPONENT_TERMS)
        return self._descriptions[text]

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
            self._papers[key] = unit(cols, vals, COMPONENT_TERMS)
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
        self.keys = keys
        self._with_word: dict[str, list[int]] | None = None  # word -> candidates having it
        self._containing: dict[str, np.ndarray] = {}
        self._similarity: np.ndarray | None = None
        self._authors: AuthorIndex | None = None
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

    def component_rows(self, parts: Components) -> tuple[np.ndarray, np.ndarray]:
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
    def authors(self) -> AuthorIndex:
        """The candidates' authors, to find a followed author's papers."""
        if self._authors is None:
            self._authors = AuthorIndex([p.authors for p in self.papers])
        return self._authors

    @property
    def similarity(self) -> np.ndarray:
        """Cosine similarity between every two candidates (dense: candidates are a window)."""
        if self._similarity is None:
            self._similarity = (self.vectors @ self.vectors_t).toarray().astype(np.float32)
        return self._similarity
