"""Semantic vectors: what a text is about, beyond the words it shares with a paper.

Two sources, one interface (unit rows of a dense matrix, compared by cosine):

- ``LatentSemantics``, learnt from the catalogue itself with no download: latent semantic
  analysis (a truncated SVD of the papers' TF-IDF vectors). Words that occur in the same
  papers share directions, so "microcontrollers" and "8-bit inference" come close although
  neither text says the other's words. A text is folded into the space through its terms.
- ``Embeddings``, a pretrained static embedding model the operator names in
  ``PAPERS_EMBEDDING_MODEL`` (``papers.ranking.embedding``): a text's vector is the model's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD

LATENT_DIMENSIONS = 48  # at most; a small catalogue gets fewer
LATENT_FROM = 20  # papers below which there is too little to learn from: no semantic vectors


class Encoder(Protocol):
    """What a pretrained text embedding model offers (model2vec's ``StaticModel`` does)."""

    def encode(self, sentences: list[str]) -> np.ndarray: ...


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.asarray(matrix / norms, dtype=np.float32)


class Semantics:
    """Unit semantic vectors for the catalogue's papers and for any text or term vector."""

    dimensions: int = 0
    papers: np.ndarray  # (catalogue papers, dimensions)

    def of_texts(self, texts: Sequence[str], terms: sp.csr_matrix) -> np.ndarray:
        """Unit vectors for ``texts`` (their lexical vectors are ``terms``, row by row)."""
        raise NotImplementedError


class NoSemantics(Semantics):
    """A catalogue too small to learn from, and no pretrained model: lexical relevance only."""

    def __init__(self, n_papers: int) -> None:
        self.papers = np.zeros((n_papers, 0), dtype=np.float32)

    def of_texts(self, texts: Sequence[str], terms: sp.csr_matrix) -> np.ndarray:
        return np.zeros((len(texts), 0), dtype=np.float32)


class LatentSemantics(Semantics):
    def __init__(self, matrix: sp.csr_matrix, df: np.ndarray) -> None:
        n, n_features = matrix.shape
        self.dimensions = max(1, min(LATENT_DIMENSIONS, n // 2, n_features - 1))
        svd = TruncatedSVD(self.dimensions, algorithm="randomized", n_iter=7, random_state=0)
        svd.fit(matrix)
        self.basis = np.ascontiguousarray(svd.components_.T, dtype=np.float32)  # (features, k)
        self.papers = unit_rows(matrix @ self.basis)
        # A term of a single paper has no meaning to learn (it shares no paper with another
        # term): folded in, its direction would be that one paper's.
        self.learnt = sp.diags((df >= 2).astype(np.float32))

    def of_texts(self, texts: Sequence[str], terms: sp.csr_matrix) -> np.ndarray:
        """Folded in through the terms whose meaning was learnt, and as long as they are: an
        interest the catalogue only partly knows is only partly placed."""
        known = sp.csr_matrix(terms @ self.learnt)
        lengths = np.sqrt(np.asarray(known.multiply(known).sum(axis=1))).reshape(-1, 1)
        return unit_rows(known @ self.basis) * np.minimum(lengths, 1.0).astype(np.float32)


class Embeddings(Semantics):
    def __init__(self, encoder: Encoder, documents: Sequence[str]) -> None:
        self.encoder = encoder
        self.papers = self._encode(documents)
        self.dimensions = self.papers.shape[1]

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            probe = np.asarray(self.encoder.encode(["paper"]))
            return np.zeros((0, probe.shape[1]), dtype=np.float32)
        return unit_rows(np.asarray(self.encoder.encode(list(texts)), dtype=np.float32))

    def of_texts(self, texts: Sequence[str], terms: sp.csr_matrix) -> np.ndarray:
        return self._encode(texts)
