"""Text analysis: how papers and interests are cut into words, terms and phrases.

Words are lower-cased and a plural "s" is folded ("models" = "model"); stop words are dropped;
the terms are single words and pairs of adjacent words within a clause, so a two-word keyword
such as "diffusion models" is matched as a phrase. Titles count twice. Reasons and excluded
keywords use literal phrase search: whole words, any case, plural folded.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

TITLE_REPEATS = 2
PHRASE_WORD_WEIGHT = 0.35  # a phrase's single words, relative to its word pairs

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
# How people introduce their work in a description of it: no paper is about these.
SELF_DESCRIPTION = re.compile(
    r"\b(?:i|we|my|our)\s+(?:(?:am|are|mostly|mainly|currently|also)\s+)*"
    r"(?:work(?:ing)?|research(?:ing)?|stud(?:y|ying)|focus(?:ing)?|interested|interests?|"
    r"lab|group|team|thesis|phd)(?:\s+(?:on|in|is|are|about|with))?\b",
    re.IGNORECASE,
)


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
    the phrase "diffusion models". A kept word ("few", "one", "next") is a term only in a
    pair: "few-shot" is, "a few hundred" says nothing of few-shot learning.
    """
    terms: list[str] = []
    for clause in CLAUSE.split(text):
        previous = ""
        for word in words(clause):
            if len(word) < 2 or word in STOP_WORDS:
                previous = ""
                continue
            if word not in KEPT_WORDS:
                terms.append(word)
            if previous:
                terms.append(f"{previous} {word}")
            previous = word
    return terms


def phrase_terms(phrase: str) -> dict[str, float]:
    """A keyword's terms and their weights: its word pairs weigh most, its single words
    ``PHRASE_WORD_WEIGHT`` (all of a one-word keyword, or of a clause of one word)."""
    weights: dict[str, float] = {}
    for clause in CLAUSE.split(phrase):
        terms = features(clause)
        single = len(terms) == 1
        for term in terms:
            share = 1.0 if single or " " in term else PHRASE_WORD_WEIGHT
            weights[term] = max(weights.get(term, 0.0), share)
    return weights


def text_terms(text: str) -> dict[str, float]:
    """A longer text's terms (words and pairs) and their weights: 1 + log of their count.
    The words people use to talk about their work ("I study", "my research") are left out."""
    counts: dict[str, int] = {}
    for term in features(SELF_DESCRIPTION.sub(" , ", text)):
        counts[term] = counts.get(term, 0) + 1
    return {term: 1.0 + math.log(n) for term, n in counts.items()}


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
    authors: list[str] = field(default_factory=list)

    def segments(self) -> list[str]:
        return [self.title, self.abstract, self.ai_summary, *self.ai_keywords]

    def document(self) -> str:
        return "\n".join([self.title] * TITLE_REPEATS + self.segments()[1:])

    @property
    def fingerprint(self) -> tuple[int, int, int]:
        # Cheap enough for every candidate of every chunk; catches a paper whose text changed.
        return (len(self.title), len(self.abstract), len(self.ai_summary))
