"""Relevance: the cosine of every profile of a chunk with every candidate, and what is allowed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np
import scipy.sparse as sp

from papers.ranking.profiles import Interests, Profiles, build_profiles, row_norms, unit_rows
from papers.ranking.text import PaperText
from papers.ranking.vectors import Candidates, Model

FLOOR = 0.08  # relevance below which a paper is unrelated, however empty the digest


@dataclass
class Scored:
    """Relevance of a chunk of subscribers to the candidates, and what explains it."""

    candidates: Candidates
    relevance: np.ndarray  # (subscribers, candidates): cosine to the profile
    allowed: np.ndarray  # (subscribers, candidates): not seen, not excluded, above the floor
    similarities: np.ndarray  # (rows, candidates): cosine to each keyword, topic, liked paper
    rows: np.ndarray  # which row of ``similarities`` is each of the profiles' components
    profiles: Profiles


def score_chunk(
    model: Model, papers: Sequence[PaperText], interests_list: Sequence[Interests], floor: float
) -> Scored:
    """Cosine of every profile with every candidate, for the whole chunk at once.

    A profile is a weighted sum of components, so its cosine with a paper is the same
    weighted sum of the components' similarities, over the profile's length:

        relevance = (weights / |weights @ unit(components)|) @ similarities

    (``similarities``: each component's blend of lexical and semantic cosine with each
    candidate, see ``vectors.blend``; a component the catalogue only partly knows is shorter
    than 1, and the profile's length counts it whole.)

    The distinct components of a chunk (a topic or a popular keyword is shared by many
    subscribers) meet the candidates in one sparse product, kept from chunk to chunk
    (``Candidates.component_rows``); the subscribers' weights then combine those rows in a
    second, small one. Neither loops over subscribers or papers.
    """
    candidates = model.candidates(papers)
    profiles = build_profiles(model, interests_list)
    weights = profiles.weights
    lengths = row_norms(weights @ unit_rows(profiles.components))
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

    # The floor asks whether a paper is about what the reader wants (their interests and the
    # papers they liked), not how far it is from what they disliked: "less like this" orders
    # the matches and never pushes a match under the floor, or a reader who pressed it on
    # every pick of a digest would find the papers they want cut from the next one.
    # (A chunk where no one said "less like this" needs no second product.)
    wanted = relevance
    if (combination.data < 0).any():
        against = combination.multiply(combination < 0).tocsr()
        wanted = relevance - np.asarray(against @ similarities)
    allowed = wanted >= floor
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
    return Scored(candidates, relevance, allowed, similarities, rows, profiles)
