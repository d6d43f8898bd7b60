"""Scores for papers. Pure: numbers and text in, scores and reasons out; no models, no database.

Two scores live here:

- ``trending_score`` (``trending``): how much a paper is trending now, from its votes and age.
- relevance: how close a paper is to a subscriber's interests, in a TF-IDF vector space fitted
  on the whole catalogue (``vectors.fit_model``; words and phrases from ``text``). A
  subscriber's interests (keywords, topics, liked and disliked papers) make one profile vector
  (``profiles``); ``relevance`` scores a whole chunk of subscribers against the candidates with
  sparse matrix products, never a loop over papers per subscriber; ``selection.rank_chunk``
  picks each digest and ``selection.rank_catalogue`` ranks everything for one; ``reasons`` says
  why each paper was picked, as data; ``authors`` finds followed authors' papers.
"""

from papers.ranking.profiles import Interests, profile_matrix
from papers.ranking.reasons import Reason, Signal
from papers.ranking.relevance import FLOOR
from papers.ranking.selection import (
    DIVERSITY,
    Pick,
    Picks,
    Section,
    rank_catalogue,
    rank_chunk,
)
from papers.ranking.text import PaperText
from papers.ranking.trending import trending_score
from papers.ranking.vectors import Candidates, Model, fit_model

__all__ = [
    "DIVERSITY",
    "FLOOR",
    "Candidates",
    "Interests",
    "Model",
    "PaperText",
    "Pick",
    "Picks",
    "Reason",
    "Section",
    "Signal",
    "fit_model",
    "profile_matrix",
    "rank_catalogue",
    "rank_chunk",
    "trending_score",
]
