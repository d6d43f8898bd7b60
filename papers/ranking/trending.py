"""How much a paper is trending now, from its votes and age."""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from papers.ranking.text import PaperText

GRAVITY = 1.5
GROWTH_WEIGHT = 1.0
COMMENT_WEIGHT = 0.5
STAR_WEIGHT = 0.1  # a paper not on Daily Papers: ten stars of its code weigh one upvote

TRENDING = attrgetter("trending")


def trending_score(
    upvotes: int | None,
    comments: int | None,
    day_gain: int | None,
    age_hours: float,
    github_stars: int | None = None,
) -> float:
    """How much a paper is trending now, in the spirit of Hacker News' ranking.

        score = (1 + upvotes + COMMENT_WEIGHT * comments + GROWTH_WEIGHT * day_gain)
                / (age_hours + 2) ** GRAVITY

    ``day_gain`` is the upvotes gained over the last 24 hours (from snapshots), so a paper that
    is climbing beats one with an old, larger total. Unknown counts count as zero; with no
    votes at all the numerator is 1 and the order falls back to listing recency. ``age_hours``
    is measured from the listing day (or arXiv publication when there is no listing).

    A paper that is not on Daily Papers (no upvotes or comments known: arXiv's announcements)
    has no votes to count; its linked code's stars stand in, STAR_WEIGHT each (ten stars count
    as one upvote), and without stars recency alone orders it:

        score = (1 + STAR_WEIGHT * github_stars) / (age_hours + 2) ** GRAVITY
    """
    if upvotes is None and comments is None:
        votes = STAR_WEIGHT * (github_stars or 0)
    else:
        votes = (upvotes or 0) + COMMENT_WEIGHT * (comments or 0) + GROWTH_WEIGHT * (day_gain or 0)
    return (1.0 + votes) / (max(age_hours, 0.0) + 2.0) ** GRAVITY


def normalised_trend(papers: Sequence[PaperText]) -> np.ndarray:
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
