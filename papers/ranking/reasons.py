"""Why each paper was picked, in words the reader can check against the paper."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from papers.ranking.profiles import Interests, Profiles
from papers.ranking.relevance import Scored
from papers.ranking.text import words
from papers.ranking.vectors import Candidates


def matched_keywords(
    candidates: Candidates, profiles: Profiles, owner: np.ndarray, index: np.ndarray
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


def explain(
    scored: Scored,
    owner: np.ndarray,
    index: np.ndarray,
    trend_led: np.ndarray,
    interests_list: Sequence[Interests],
) -> list[str]:
    """Why each pick was picked: pick i gave subscriber ``owner[i]`` candidate ``index[i]``.
    Why is one comprehension and a loop over the few picks no keyword explains; a second
    comprehension joins the signal on. This Python is ranking's only per-pick work, so it is
    kept to what cannot be arrays."""
    candidates, profiles = scored.candidates, scored.profiles
    first, second = matched_keywords(candidates, profiles, owner, index)
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
    return [f"{w} · {s}" if w and s else w or s for w, s in zip(whys, signals, strict=True)]


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


def _shorten(title: str, width: int = 60) -> str:
    return title if len(title) <= width else title[: width - 1].rstrip() + "…"
