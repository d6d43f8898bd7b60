"""Why each paper was picked, as data: which signal, what matched, and the sentence that says it.

A reason is only ever what is true of the paper: a keyword it contains whole, the words of the
reader's description it contains, the topic or liked paper it is closest to.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from enum import StrEnum
from functools import lru_cache, partial
from itertools import chain
from typing import Any, NamedTuple

import numpy as np

from papers.ranking.profiles import Interests, Profiles
from papers.ranking.relevance import Scored
from papers.ranking.text import fold, text_terms
from papers.ranking.vectors import Candidates


class Signal(StrEnum):
    KEYWORD = "keyword"  # a keyword or phrase the paper contains whole
    DESCRIPTION = "description"  # words of the reader's description of their work
    TOPIC = "topic"
    LIKED = "liked"  # close to a paper the reader liked
    AUTHOR = "author"  # by an author the reader follows
    FEEDBACK = "feedback"  # the reader's own model, learnt from their feedback
    TRENDING = "trending"


class Reason(NamedTuple):
    """Why a paper was picked. ``matched`` is what matched (keywords, the description's words,
    a topic's name, a liked paper's title, authors); ``text`` says it to the reader;
    ``trending`` is true when the paper's votes led to the pick as much as its relevance."""

    signal: str
    matched: tuple[str, ...]
    text: str
    trending: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "signal": str(self.signal),
            "matched": list(self.matched),
            "text": self.text,
            "trending": self.trending,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Reason:
        return cls(
            str(data.get("signal", "")),
            tuple(map(str, data.get("matched", ()))),
            str(data.get("text", "")),
            bool(data.get("trending", False)),
        )


TRENDING_REASON = Reason(Signal.TRENDING, (), "trending", trending=True)
# A reason from a tuple without running Python code: a chunk makes thousands of them.
_new_reason = partial(tuple.__new__, Reason)


def keyword_reason(first: str, second: str = "") -> Reason:
    if second:
        text = f"matches your keywords '{first}' and '{second}'"
        return Reason(Signal.KEYWORD, (first, second), text)
    return Reason(Signal.KEYWORD, (first,), f"matches your keyword '{first}'")


def author_reason(names: Sequence[str]) -> Reason:
    said = " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
    whom = "whom you follow"
    return Reason(Signal.AUTHOR, tuple(names), f"by {said}, {whom}")


@lru_cache(maxsize=4096)
def _keyword_reason(first: str, second: str, trending: bool) -> Reason:
    """``keyword_reason``, made once per process: the same pairs of keywords explain picks
    in chunk after chunk."""
    reason = keyword_reason(first, second)
    return reason._replace(trending=True) if trending else reason


def matched_keywords(
    candidates: Candidates, profiles: Profiles, owner: np.ndarray, index: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each pick (subscriber ``owner`` got candidate ``index``), the first and the second
    of the subscriber's keywords (in their order) that the paper contains whole, as their
    entries in the phrases returned third, -1 for none (the last phrase, ""): one lookup for
    the chunk."""
    rows = profiles.keyword_rows
    lengths = np.fromiter(map(len, rows), np.int64, len(rows))
    most = int(lengths.max()) if len(rows) else 0
    if most == 0 or not len(index):
        none = np.full(len(index), -1, dtype=np.int64)
        return none, none, np.full(1, "", dtype=object)
    # One row per component; the last one, for padding, contains nothing and is named "".
    contains = np.zeros((profiles.weights.shape[1] + 1, len(candidates)), dtype=bool)
    phrases = np.full(len(contains), "", dtype=object)
    for phrase, component in profiles.parts.keywords.items():
        contains[component] = candidates.containing(phrase)
        phrases[component] = phrase
    # Each subscriber's keywords in a row, padded with -1.
    table = np.full((len(rows), most), -1, dtype=np.int64)
    table[np.arange(most) < lengths[:, None]] = np.fromiter(
        chain.from_iterable(rows), np.int64, int(lengths.sum())
    )
    keywords = table[owner]  # (picks, keywords)
    hits = contains[keywords, index[:, None]]
    counts = np.cumsum(hits, axis=1, dtype=np.int8)
    picks = np.arange(len(index))
    first = np.where(counts[:, -1] >= 1, keywords[picks, (counts >= 1).argmax(axis=1)], -1)
    second = np.where(counts[:, -1] >= 2, keywords[picks, (counts >= 2).argmax(axis=1)], -1)
    return first, second, phrases


def explain(
    scored: Scored,
    owner: np.ndarray,
    index: np.ndarray,
    trend_led: np.ndarray,
    interests_list: Sequence[Interests],
) -> list[Reason | None]:
    """Why each pick was picked: pick i gave subscriber ``owner[i]`` candidate ``index[i]``;
    None for a pick nothing in the profile explains (it is no match).

    The keywords the paper contains come from one lookup for the chunk; the picks share a
    few hundred (first keyword, second keyword, trending) triples, each made into a reason
    once (and most found made by an earlier chunk). The loop runs over those triples and over
    the few picks no keyword explains. This Python is ranking's only per-pick work, so it is
    kept to what cannot be arrays."""
    candidates, profiles = scored.candidates, scored.profiles
    first, second, phrases = matched_keywords(candidates, profiles, owner, index)
    width = len(phrases) + 1
    code = ((first + 1) * width + second + 1) * 2 + trend_led
    distinct, inverse = np.unique(code, return_inverse=True)
    made = np.empty(len(distinct), dtype=object)  # None where no keyword matched
    pair, trending = np.divmod(distinct, 2)
    for at, one, two, trend in zip(
        range(len(distinct)),
        (pair // width - 1).tolist(),
        (pair % width - 1).tolist(),
        trending.tolist(),
        strict=True,
    ):
        if one >= 0:
            made[at] = _keyword_reason(phrases[one], phrases[two], bool(trend))
    reasons: list[Reason | None] = made[inverse].tolist()
    for at in np.flatnonzero(first < 0).tolist():
        row = int(owner[at])
        reason = _why_else(scored, int(index[at]), row, interests_list[row])
        if reason is not None and trend_led[at]:
            reason = reason._replace(trending=True)
        reasons[at] = reason
    return reasons


def _why_else(scored: Scored, index: int, row: int, interests: Interests) -> Reason | None:
    """Why a paper that contains none of the keywords whole was picked: the part of the
    profile (description, topic, liked paper, a keyword's meaning) closest to it; None when
    no part of the profile is close to it at all (it is then no match)."""
    profiles, sims, rows = scored.profiles, scored.similarities, scored.rows
    best: Reason | None = None
    top = 0.0
    described = profiles.description_rows[row]
    if described >= 0:
        top = float(sims[rows[described], index])
        if top > 0:
            weight = profiles.parts.model.vectorizer.weight  # (column, idf)
            terms = description_terms(
                interests.about, scored.candidates.texts[index], rarity=lambda term: weight(term)[1]
            )
            text = (
                f"matches your description: {', '.join(terms)}"
                if terms
                else "close in meaning to your description"
            )
            best = Reason(Signal.DESCRIPTION, terms, text)
    for name, component in profiles.topic_rows[row]:
        sim = float(sims[rows[component], index])
        if sim > top:
            best, top = Reason(Signal.TOPIC, (name,), f"in your topic '{name}'"), sim
    learnt = row in profiles.learners
    for title, component in profiles.liked_rows[row]:
        sim = float(sims[rows[component], index])
        if sim > top:
            text = f"close to '{_shorten(title)}', a paper you liked"
            if learnt:
                best = Reason(Signal.FEEDBACK, (title,), f"{text} (learnt from your feedback)")
            else:
                best = Reason(Signal.LIKED, (title,), text)
            top = sim
    for phrase, component in zip(interests.keywords, profiles.keyword_rows[row], strict=False):
        sim = float(sims[rows[component], index])
        if sim > top:
            text = f"close in meaning to your keyword '{phrase}'"
            best, top = Reason(Signal.KEYWORD, (phrase,), text), sim
    return best


WORD_AT = re.compile(r"\w+")
COMPOUND = re.compile(r"\w+(?:-\w+)*")


def description_terms(
    about: str, text: str, most: int = 3, rarity: Callable[[str], float] | None = None
) -> tuple[str, ...]:
    """The reader's own phrases from ``about`` that the paper (``phrase_text``) contains:
    word pairs before single words, each as the reader wrote it, at most ``most``. Pairs come
    in the reader's order; single words, given their ``rarity`` in the catalogue (idf), the
    rarest first: "manipulation" says more of a paper than "learning" does."""
    pairs: list[str] = []
    words: list[tuple[str, str]] = []
    covered: set[str] = set()
    for term, written in _phrases_of(about):
        if term in covered or f" {term} " not in text:
            continue
        covered.update(term.split())
        if " " in term:
            if written not in pairs:
                pairs.append(written)
        elif written not in (w for _, w in words):
            words.append((term, written))
    if rarity is not None:
        words.sort(key=lambda found: -rarity(found[0]))
    return tuple([*pairs, *(written for _, written in words)][:most])


@lru_cache(maxsize=4096)
def _phrases_of(about: str) -> tuple[tuple[str, str], ...]:
    """A description's terms, pairs first in the reader's order, each with the words as the
    reader wrote them (once per description: many picks are explained by the same one)."""
    terms = sorted(text_terms(about), key=lambda term: " " not in term)  # stable
    written = ((term, _as_written(about, term.split())) for term in terms)
    return tuple((term, words) for term, words in written if words)


def _as_written(about: str, wanted: list[str]) -> str:
    """The words ``wanted`` (folded) as the reader wrote them, hyphenated words kept whole:
    "on-device training" for ["device", "training"]."""
    # Each word with the bounds of the hyphenated compound it is part of.
    spans = [
        (fold(word.group().lower()), compound.start(), compound.end())
        for compound in COMPOUND.finditer(about)
        for word in WORD_AT.finditer(about, compound.start(), compound.end())
    ]
    n = len(wanted)
    for at in range(len(spans) - n + 1):
        if [word for word, _, _ in spans[at : at + n]] == wanted:
            return about[spans[at][1] : spans[at + n - 1][2]]
    return ""


def _shorten(title: str, width: int = 60) -> str:
    return title if len(title) <= width else title[: width - 1].rstrip() + "…"
