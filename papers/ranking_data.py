"""Papers as the ranking sees them. ``papers.ranking`` stays free of models; this bridges."""

from datetime import datetime

from django.conf import settings

from papers.models import Paper
from papers.ranking import PaperText, trending_score
from papers.ranking.embedding import load
from papers.ranking.semantic import Encoder


def embedding_model() -> Encoder | None:
    """The operator's pretrained embedding model (``PAPERS_EMBEDDING_MODEL``), loaded once per
    process; None when none is set (semantics are then learnt from the catalogue)."""
    name = settings.PAPERS_EMBEDDING_MODEL
    return load(name) if name else None


def paper_text(paper: Paper, now: datetime) -> PaperText:
    """A ``PaperText`` for ``paper``.

    A paper from ``Paper.objects.trending()`` brings its trending score and a day-old
    snapshot; any other gets its score computed here, without the day's gain.
    """
    day_gain = None
    if paper.upvotes is not None and hasattr(paper, "upvotes_day_ago"):
        day_gain = paper.upvotes - (paper.upvotes_day_ago or 0)
    trending = getattr(paper, "trending", None)
    if trending is None:
        trending = trending_score(
            paper.upvotes, paper.comments, day_gain, paper.age_hours(now), paper.github_stars
        )
    return PaperText(
        key=paper.id,
        title=paper.title,
        abstract=paper.abstract,
        ai_summary=paper.ai_summary,
        ai_keywords=[str(k) for k in paper.ai_keywords or []],
        upvotes=paper.upvotes,
        day_gain=day_gain,
        trending=float(trending),
        authors=[str(a) for a in paper.authors or []],
    )
