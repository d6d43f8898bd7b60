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
from papers.ranking.semantic import (
    LATENT_FROM,
    Embeddings,
    Encoder,
    LatentSemantics,
    NoSemantics,
    Semantics,
)
from papers.ranking.text import (
    PaperText,
    features,
    needle,
    phrase_terms,
    phrase_text,
    text_terms,
)

if TYPE_CHECKING:
    from papers.ranking.profiles import Components

TOPIC_NAME_SHARE = 0.5  # of a topic's vector; the description gives the rest
# A topic's or a liked paper's vector keeps its strongest terms only (Rocchio's term
# selection): its distinctive words, not every word its description happens to use.
COMPONENT_TERMS = 40
# Pseudo-relevance feedback: how far a component moves towards its EXPANSION_PAPERS closest
# papers, by kind, and how many terms it keeps then.
EXPANSION = {"keyword": 0.0, "description": 0.3, "topic": 0.3, "paper": 0.4}
EXPANSION_PAPERS = 8
EXPANSION_TERMS = 80
EXPANSION_FROM = 20  # papers in the catalogue, below which there is no neighbourhood to use
# BM25's term saturation and length normalisation. K1 is higher than the textbook 1.2: a
# paper's subject, said in its title (counted twice) and again and again in its abstract,
# should stay above a word it mentions once or twice.
BM25_K1 = 4.0
BM25_B = 0.75
LARGE_CATALOGUE = 500  # from this size on, word pairs seen in a single paper are dropped
# Terms in more than this share of the papers say little about a paper and are the longest
# posting lists of the products; dropped once the catalogue has COMMON_FROM papers.
COMMON_SHARE = 0.5
COMMON_FROM = 20
SIMILARITY_CACHE_BYTES = 32 << 20  # components' similarities kept per set of candidates
LOOKUP_LIMIT = 1 << 24  # paper keys below this are found through a table, others by search

# Semantic cosines below this say nothing: unrelated papers are that close by chance.
MEANING_FROM = 0.1

Vector = tuple[np.ndarray, np.ndarray]  # (feature indices, weights)


def blend(
    lexical: np.ndarray,
    covered: np.ndarray,
    semantic: np.ndarray | None,
    shares: np.ndarray,
    enough: np.ndarray,
) -> np.ndarray:
    """A component's similarity to papers: its lexical cosine where the paper has ``enough``
    of the component's terms (``covered``: the share of its weight the paper has; one word of
    "lattice quantum chromodynamics" is not enough), and its semantic cosine above chance
    (``MEANING_FROM``, rescaled to [0, 1]), mixed by the component's semantic share."""
    lexical = np.where(covered >= enough[:, None], lexical, 0.0)
    if semantic is None:
        return lexical
    meaning = np.clip((semantic - MEANING_FROM) / (1 - MEANING_FROM), 0.0, 1.0)
    share = shares[:, None]
    return (1 - share) * lexical + share * meaning


def row_lengths(matrix: sp.csr_matrix) -> np.ndarray:
    lengths = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    lengths[lengths == 0] = 1.0
    return lengths


def add_rows(out: np.ndarray, matrix: sp.csr_matrix, rows: np.ndarray, weights: np.ndarray) -> None:
    """``out += weights @ matrix[rows]``, without slicing the matrix (scipy's row indexing
    costs more than the product). Each column adds its terms row after row in the order of
    ``rows``, in float32, as scipy's products do: the same sums to the last bit."""
    starts = matrix.indptr[rows]
    lengths = matrix.indptr[rows + 1] - starts
    at = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
    np.add.at(out, matrix.indices[at], matrix.data[at] * np.repeat(weights, lengths))


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


class Lexicon:
    """Terms to weights, BM25's way: a term's weight in a text is its idf times its count
    saturated by the text's length (``BM25_K1``, ``BM25_B``); rows are then scaled to length 1,
    so that relevance is a cosine whatever the length of the interest it is compared with."""

    def __init__(
        self, vocabulary: list[str], analysed: Sequence[list[str]], common: set[str]
    ) -> None:
        self.common = common  # terms in too many papers to be kept
        self.counter = TfidfVectorizer(
            analyzer=_given,
            vocabulary=vocabulary or ["paper"],  # an empty catalogue still makes a (blind) model
            use_idf=False,
            norm=None,
            dtype=np.float32,
        )
        counts = self.counter.fit_transform(analysed or [[]])[: len(analysed)]
        n = max(len(analysed), 1)
        df = np.bincount(sp.csr_matrix(counts).indices, minlength=len(self.counter.vocabulary_))
        self.df = df.astype(np.int32)
        # Smoothed as scikit-learn's TF-IDF: a term in half the papers still says something.
        self.idf = (np.log((1 + n) / (1 + df)) + 1).astype(np.float32)
        lengths = np.asarray(counts.sum(axis=1)).ravel()
        self.average_length = float(lengths.mean()) if len(lengths) else 1.0
        self.vocabulary: dict[str, int] = self.counter.vocabulary_
        self.unseen_idf = float(np.log(1 + n) + 1)  # a term no paper has
        self.common_idf = float(np.log((1 + n) / (1 + n * COMMON_SHARE)) + 1)

    def weight(self, term: str) -> tuple[int, float]:
        """A term's column (-1 when it is not one) and idf; a term the catalogue does not have
        weighs as the rarest (it is what the reader asks for, and no paper has it), a term
        dropped as too common as the commonest kept."""
        col = self.vocabulary.get(term, -1)
        if col >= 0:
            return col, float(self.idf[col])
        return -1, self.common_idf if term in self.common else self.unseen_idf

    def transform(self, analysed: Sequence[list[str]]) -> sp.csr_matrix:
        counts = sp.csr_matrix(self.counter.transform(analysed), dtype=np.float32)
        lengths = np.asarray(counts.sum(axis=1)).ravel()
        norm = BM25_K1 * (1 - BM25_B + BM25_B * lengths / max(self.average_length, 1e-9))
        rows = np.repeat(np.arange(counts.shape[0]), np.diff(counts.indptr))
        counts.data = counts.data * (BM25_K1 + 1) / (counts.data + norm[rows])
        counts.data *= self.idf[counts.indices]
        squares = np.asarray(counts.multiply(counts).sum(axis=1)).ravel()
        scale = 1 / np.sqrt(np.where(squares > 0, squares, 1.0))
        counts.data *= np.repeat(scale, np.diff(counts.indptr)).astype(np.float32)
        return counts


CANDIDATE_TOKEN = attrgetter("key", "title", "abstract", "ai_summary", "authors")


class Model:
    """A TF-IDF vector space fitted on the catalogue, with every paper's vector.

    Picklable (its caches are dropped); fit it when the catalogue changes and reuse it for
    every chunk. Papers are recognised by key: a paper whose key and text lengths match a
    fitted paper reuses its vector, any other is vectorised on the fly.
    """

    def __init__(
        self,
        vectorizer: Lexicon,
        papers: Sequence[PaperText],
        matrix: Any,
        semantics: Semantics,
    ):
        self.vectorizer = vectorizer
        self.matrix: sp.csr_matrix = matrix
        self.papers = list(papers)
        self.rows = {p.key: row for row, p in enumerate(papers)}
        self.semantics = semantics
        self._reset_caches()

    def _reset_caches(self) -> None:
        self.vocabulary: dict[str, int] = self.vectorizer.vocabulary
        self.idf: np.ndarray = self.vectorizer.idf
        self._phrases: dict[str, Vector] = {}
        self._topics: dict[tuple[str, str], Vector] = {}
        self._descriptions: dict[str, Vector] = {}
        self._papers: dict[tuple[int, tuple[int, int, int]], Vector] = {}
        self._meanings: dict[Hashable, np.ndarray] = {}
        self._candidates: tuple[tuple[Any, ...], Candidates] | None = None
        self._postings: sp.csr_matrix | None = None

    def __getstate__(self) -> dict[str, object]:
        kept = ("vectorizer", "matrix", "papers", "rows", "semantics")
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

    def dense(self, papers: Sequence[PaperText]) -> np.ndarray:
        """One unit semantic row per paper (no columns when there are no semantics)."""
        rows = [self.rows.get(p.key, -1) for p in papers]
        fresh = [
            i
            for i, (p, row) in enumerate(zip(papers, rows, strict=True))
            if row < 0 or self.papers[row].fingerprint != p.fingerprint
        ]
        found = self.semantics.papers[np.array(rows, dtype=np.int64)]
        if fresh:
            texts = [papers[i].document() for i in fresh]
            terms = self.vectorizer.transform([features(text) for text in texts])
            found[fresh] = self.semantics.of_texts(texts, terms)
        return np.asarray(found, dtype=np.float32)

    def meaning(self, ident: Hashable, text: str, vector: Vector) -> np.ndarray:
        """The unit semantic vector of a component: its text (a keyword, a description, a
        topic) or, folded in, its lexical ``vector``."""
        if ident not in self._meanings:
            cols, vals = vector
            terms = sp.csr_matrix((vals, cols, [0, len(cols)]), shape=(1, self.n_features))
            self._meanings[ident] = self.semantics.of_texts([text], terms)[0]
        return self._meanings[ident]

    def paper_meaning(self, ident: Hashable, paper: PaperText) -> np.ndarray:
        if ident not in self._meanings:
            self._meanings[ident] = self.dense([paper])[0]
        return self._meanings[ident]

    def query_vector(self, weighted: dict[str, float], keep: int | None = None) -> Vector:
        """The vector of an interest given as terms and their weights (before idf).

        Its length is the share of the interest the catalogue knows: the terms no paper has
        count in its length, so a paper that has the one known word of "lattice quantum
        chromodynamics" is not taken for a paper about it."""
        cols: list[int] = []
        vals: list[float] = []
        total = 0.0
        for term, share in weighted.items():
            col, idf = self.vectorizer.weight(term)
            total += (share * idf) ** 2
            if col >= 0:
                cols.append(col)
                vals.append(share * idf)
        cut, kept = unit(np.array(cols, dtype=np.int32), np.array(vals, dtype=np.float32), keep)
        known = float(np.linalg.norm(vals)) / np.sqrt(total) if total else 0.0
        return cut, kept * np.float32(known)

    def phrase_vector(self, phrase: str) -> Vector:
        """A keyword's vector: its word pairs weigh most, its single words less."""
        if phrase not in self._phrases:
            self._phrases[phrase] = self.query_vector(phrase_terms(phrase))
        return self._phrases[phrase]

    def topic_vector(self, topic: tuple[str, str]) -> Vector:
        """A topic's vector: its name read as a keyword, plus its description's terms."""
        if topic not in self._topics:
            name, description = topic
            weighted = {t: w * TOPIC_NAME_SHARE for t, w in phrase_terms(name).items()}
            for term, weight in text_terms(description).items():
                weighted[term] = weighted.get(term, 0.0) + weight * (1 - TOPIC_NAME_SHARE)
            cols, vals = self.query_vector(weighted, COMPONENT_TERMS)
            self._topics[topic] = self.expanded(cols, vals, EXPANSION["topic"])
        return self._topics[topic]

    def description_vector(self, text: str) -> Vector:
        """A reader's description of their work: its distinctive terms, as a topic's."""
        if text not in self._descriptions:
            cols, vals = self.query_vector(text_terms(text), COMPONENT_TERMS)
            self._descriptions[text] = self.expanded(cols, vals, EXPANSION["description"])
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
            # A term of this paper alone finds no other paper: the strongest terms kept are
            # those that other papers share.
            shared = self.vectorizer.df[cols] >= 2
            if shared.any():
                cols, vals = cols[shared], vals[shared]
            cols, vals = unit(cols, vals, COMPONENT_TERMS)
            self._papers[key] = self.expanded(cols, vals, EXPANSION["paper"], row)
        return self._papers[key]

    def expanded(self, cols: np.ndarray, vals: np.ndarray, share: float, own: int = -1) -> Vector:
        """The vector moved towards the catalogue papers closest to it (pseudo-relevance
        feedback, Rocchio's way): the words of its neighbourhood join its own, so it finds
        papers about the same thing in other words. ``own`` is a paper never its own
        neighbour. The vector keeps its length (the share of it the catalogue knows)."""
        length = float(np.linalg.norm(vals))
        if share <= 0 or not length or self.matrix.shape[0] < EXPANSION_FROM:
            return cols, vals
        query = np.zeros(self.n_features, dtype=np.float32)
        query[cols] = vals / length
        # The papers' closeness to the query from its terms' postings (a few dozen terms),
        # not a product over the whole catalogue: a liked paper of every reader comes here.
        closeness = np.zeros(self.matrix.shape[0], dtype=np.float32)
        terms = np.sort(cols)
        add_rows(closeness, self.postings, terms, query[terms])
        if 0 <= own < len(closeness):
            closeness[own] = 0.0
        top = np.argpartition(-closeness, EXPANSION_PAPERS - 1)[:EXPANSION_PAPERS]
        top = top[closeness[top] > 0]
        if not len(top):
            return cols, vals
        centroid = np.zeros(self.n_features, dtype=np.float32)
        add_rows(centroid, self.matrix, top, closeness[top])
        centroid /= max(float(np.linalg.norm(centroid)), 1e-9)
        # An interest the catalogue hardly knows has no neighbourhood of its own: the papers
        # closest to its one known word would only confirm themselves.
        share *= length * length
        mixed = (1 - share) * query + share * centroid
        keep = np.flatnonzero(mixed != 0)  # a boolean's nonzero is eight times a float's
        cut, kept = unit(keep.astype(np.int32), mixed[keep], EXPANSION_TERMS)
        return cut, kept * np.float32(length)

    @property
    def postings(self) -> sp.csr_matrix:
        """The catalogue's matrix transposed: each term's papers and weights."""
        if self._postings is None:
            self._postings = self.matrix.T.tocsr()
        return self._postings

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
        prepared = Candidates(papers, self.vectors(papers), self.dense(papers))
        self._candidates = (token, prepared)
        return prepared


def fit_model(papers: Sequence[PaperText], encoder: Encoder | None = None) -> Model:
    """Fit the vector space on the whole catalogue (works from a single paper up), with
    semantic vectors from ``encoder`` (a pretrained model) or else learnt from the catalogue."""
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
    common = {t for t, n in df.items() if n > max_df}
    vectorizer = Lexicon(vocabulary, analysed, common)
    matrix = vectorizer.transform(analysed) if analysed else sp.csr_matrix((0, 1), dtype=np.float32)
    semantics: Semantics
    if encoder is not None:
        semantics = Embeddings(encoder, [p.document() for p in papers])
    elif len(papers) >= LATENT_FROM:
        semantics = LatentSemantics(matrix, vectorizer.df)
    else:
        semantics = NoSemantics(len(papers))
    return Model(vectorizer, papers, matrix, semantics)


class Candidates:
    """Candidate papers prepared once for many chunks of subscribers."""

    def __init__(
        self, papers: Sequence[PaperText], vectors: sp.csr_matrix, dense: np.ndarray
    ) -> None:
        self.papers = list(papers)
        self.vectors = vectors
        self.vectors_t = vectors.T.tocsr()
        self.dense_t = np.ascontiguousarray(dense.T)  # (semantic dimensions, candidates)
        self.present_t = self.vectors_t.copy()  # which terms each candidate has
        self.present_t.data[:] = 1.0
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
        """The similarity of each component (keyword, topic, liked paper) with every
        candidate (``blend``): a table kept across chunks, and the row of each of ``parts``'
        components in it.

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
                lexical = parts.matrix(missing)
                weights = lexical.multiply(lexical) / np.square(row_lengths(lexical))[:, None]
                shares, enough = parts.blends(missing)
                table[start : start + len(missing)] = blend(
                    (lexical @ self.vectors_t).toarray(),
                    (sp.csr_matrix(weights) @ self.present_t).toarray(),
                    parts.dense(missing) @ self.dense_t if len(self.dense_t) else None,
                    shares,
                    enough,
                )
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
