"""Selection: each subscriber's digest from the scored candidates (score, floor, diversity)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from enum import StrEnum
from functools import partial
from itertools import compress, repeat
from operator import is_not
from typing import NamedTuple

import numpy as np

from papers.ranking.profiles import Interests
from papers.ranking.reasons import Reason, author_reason, explain
from papers.ranking.relevance import FLOOR, Scored, score_chunk
from papers.ranking.text import PaperText
from papers.ranking.trending import normalised_trend
from papers.ranking.vectors import Model

DIVERSITY = 0.4  # 0 ranks by score alone; higher trades score for papers unlike those picked
POOL = 3  # maximal marginal relevance chooses among the best POOL * size papers


class Section(StrEnum):
    """The part of a digest a pick belongs to."""

    AUTHORS = "authors"  # new papers by authors the reader follows, whatever their relevance
    MATCH = "match"  # papers about the reader's interests
    TRENDING = "trending"  # the most trending papers, when nothing matched


class Pick(NamedTuple):
    key: int
    score: float  # what the paper was ranked by
    relevance: float  # cosine similarity between the paper and the subscriber's profile
    reason: Reason
    section: str = Section.MATCH


# A pick from a (key, score, relevance, reason, section) tuple without running Python code: a
# chunk makes thousands of them.
_new_pick = partial(tuple.__new__, Pick)
NOTHING = np.zeros(0, dtype=np.int64)


class Picks(list[Pick]):
    """One subscriber's picks, best first, and ``matched``: the keys of every candidate that
    matched their interests (above the floor, not seen, liked, disliked or excluded, or by a
    followed author), picked or not: what "7 of 143 new papers matched" counts."""

    def __init__(self, picks: Iterable[Pick] = (), matched: np.ndarray = NOTHING) -> None:
        super().__init__(picks)
        self.matched = matched


def rank_chunk(
    model: Model,
    candidates: Sequence[PaperText],
    interests_list: Sequence[Interests],
    floor: float = FLOOR,
    diversity: float = DIVERSITY,
) -> list[Picks]:
    """Pick each subscriber's next digest among ``candidates``: one list of picks each.

    A paper is never picked when its key is in ``seen``, it was liked or disliked, it contains
    an excluded keyword, or its relevance is below ``floor`` (a digest may come out short or
    empty rather than carry unrelated papers). The others are scored

        score = (1 - trending_weight) * relevance / best relevance + trending_weight * trend

    (``trend``: trending min-max normalised over the candidates) and picked by maximal
    marginal relevance among the best ``POOL * size``: each next pick maximises
    ``(1 - diversity) * score - diversity * (cosine to the closest paper already picked)``.

    Papers by a followed author come first, in a section of their own (at most ``size``),
    whatever their relevance: only ``seen``, liked, disliked and excluded papers are left out.
    """
    if not interests_list:
        return []
    if not candidates:
        return [Picks() for _ in interests_list]
    # The trending of every candidate, read just before score_chunk's check of the
    # candidates reads the same papers again and finds them in the cache.
    trend = normalised_trend(candidates)
    scored = score_chunk(model, candidates, interests_list, floor)
    by_authors = _by_followed_authors(scored, interests_list)
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
    score = relevance / best[owner]
    score *= 1 - share
    score += share * trend[index]
    similarity = scored.candidates.similarity if diversity > 0 else None
    chosen = _select(score, index, counts, starts, sizes, similarity, diversity)
    picked = chosen[chosen >= 0]  # entries of the flat arrays, subscriber by subscriber
    trend_led = share[picked] * trend[index[picked]] > (1 - share[picked]) * (
        relevance[picked] / best[owner[picked]]
    )
    matches = _picks(
        scored,
        owner[picked],
        index[picked],
        score[picked],
        relevance[picked],
        trend_led,
        interests_list,
    )
    # Every subscriber's matched keys at once, each given their slice.
    matched_keys = scored.candidates.keys[index]
    result = []
    bounds = zip(starts.tolist(), (starts + counts).tolist(), strict=True)
    for row, (picks, (start, end)) in enumerate(zip(matches, bounds, strict=True)):
        matched = matched_keys[start:end]
        authors = by_authors.get(row)
        if authors:
            matched = np.concatenate([matched, [p.key for p in authors]])
            picks = [*authors, *picks]
        result.append(Picks(picks, matched))
    return result


def _by_followed_authors(
    scored: Scored, interests_list: Sequence[Interests]
) -> dict[int, list[Pick]]:
    """Each subscriber's picks by followed authors (most relevant first), taken out of what
    the rest of the digest may pick. A loop over the subscribers who follow someone only."""
    candidates = scored.candidates
    found: dict[int, list[Pick]] = {}
    for row, interests in enumerate(interests_list):
        if not interests.authors:
            continue
        hits = candidates.authors.papers_by(interests.authors)
        never = interests.seen | {p.key for p in (*interests.liked, *interests.disliked)}
        keys = candidates.keys
        kept = [
            at
            for at in hits
            if int(keys[at]) not in never
            and not any(candidates.containing(x)[at] for x in interests.excluded_keywords)
        ]
        kept.sort(key=lambda at: -scored.relevance[row, at])
        kept = kept[: max(interests.size, 0)]
        if kept:
            scored.allowed[row, kept] = False
            found[row] = [
                Pick(
                    int(keys[at]),
                    float(scored.relevance[row, at]),
                    float(scored.relevance[row, at]),
                    author_reason(hits[at]),
                    Section.AUTHORS,
                )
                for at in kept
            ]
    return found


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
    # Each subscriber's scores in a row of their own, negated (the best first in ascending
    # order, so the padded matrix is not negated again whole), padded with +inf.
    lowest = np.full((n_subs, most), np.inf, dtype=np.float32)
    shift = np.repeat(np.arange(n_subs) * most - starts, counts)
    lowest.ravel()[np.arange(len(score)) + shift] = -score
    pool = min(most, POOL * width) if similarity is not None else width
    if pool < most:
        top = np.argpartition(lowest, pool - 1, axis=1)[:, :pool]
    else:
        top = np.broadcast_to(np.arange(most), (n_subs, most))
    negated = np.take_along_axis(lowest, top, axis=1)
    order = np.argsort(negated, axis=1, kind="stable")
    top = np.take_along_axis(top, order, axis=1)
    top_scores = -np.take_along_axis(negated, order, axis=1)
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


def _picks(
    scored: Scored,
    owner: np.ndarray,
    index: np.ndarray,
    scores: np.ndarray,
    relevances: np.ndarray,
    trend_led: np.ndarray,
    interests_list: Sequence[Interests],
) -> list[list[Pick]]:
    """The picks with their scores and reasons, from flat arrays: pick i gave subscriber
    ``owner[i]`` (ascending, best pick first) candidate ``index[i]``."""
    reasons = explain(scored, owner, index, trend_led, interests_list)
    keys = scored.candidates.keys[index].tolist()
    sections = [Section.MATCH] * len(keys)
    fields = zip(keys, scores.tolist(), relevances.tolist(), reasons, sections, strict=True)
    picks = list(map(_new_pick, fields))
    # A pick nothing in the profile explains is no match: never sent as one.
    explained = np.fromiter(map(is_not, reasons, repeat(None)), bool, len(reasons))
    if not explained.all():
        picks = list(compress(picks, explained))
        owner = owner[explained]
    ends = np.cumsum(np.bincount(owner, minlength=len(interests_list))).tolist()
    return [picks[start:end] for start, end in zip([0, *ends[:-1]], ends, strict=True)]


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
    plain = replace(interests, authors=[], trending_weight=0.0, seen=frozenset())
    if not papers:
        return []
    scored = score_chunk(model, papers, [plain], floor)
    relevance = np.where(scored.allowed, scored.relevance, -np.inf)
    ranked = np.argsort(-relevance[0], kind="stable")[: int(scored.allowed.sum())][:limit]
    ranked_relevance = scored.relevance[0, ranked]
    owner = np.zeros(len(ranked), dtype=np.int64)
    no_trend = np.zeros(len(ranked), dtype=bool)
    return _picks(scored, owner, ranked, ranked_relevance, ranked_relevance, no_trend, [plain])[0]
