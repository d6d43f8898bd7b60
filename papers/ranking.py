"""Scores for papers. Pure functions: numbers and text in, scores out; no models, no database."""

from __future__ import annotations

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
