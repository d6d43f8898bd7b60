"""The Hugging Face Daily Papers JSON API: a list of listings, each wrapping a ``paper``; or
the single-paper API (``/api/papers/<arxiv id>``): one object shaped like a listing's ``paper``.

Upvotes live in ``paper``, comments on the outer item. Missing or null fields are unknown,
never zero.
"""

import json
from datetime import UTC, date, datetime
from typing import Any

from papers.sources import (
    InvalidItem,
    PaperRecord,
    Parsed,
    SourceError,
    canonical_arxiv_id,
    clean_text,
)

MAX_COUNT = 2**31 - 1


def parse(data: str, listing_date: date | None = None) -> Parsed:
    try:
        items = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise SourceError(f"not valid JSON ({exc})") from None
    if isinstance(items, dict) and isinstance(items.get("dailyPapers"), list):
        items = items["dailyPapers"]
    elif isinstance(items, dict) and "id" in items and "title" in items:
        items = [{"paper": items}]  # the single-paper API: a ``paper`` without its listing
    if not isinstance(items, list):
        error = items.get("error") if isinstance(items, dict) else None
        raise SourceError(f"expected a list of papers, got {error or type(items).__name__}")
    return records_from_items(items, listing_date)


def records_from_items(items: list[Any], listing_date: date | None) -> Parsed:
    parsed = Parsed()
    for position, item in enumerate(items, 1):
        try:
            record = record_from_item(item, position, listing_date, parsed.warnings)
        except ValueError as exc:
            label = ""
            if isinstance(item, dict):
                paper = item["paper"] if isinstance(item.get("paper"), dict) else {}
                label = clean_text(paper.get("id") or paper.get("title") or item.get("title"))
            parsed.invalid.append(InvalidItem(position, str(exc), label))
        else:
            parsed.records.append(record)
    return parsed


def record_from_item(
    item: Any, position: int, listing_date: date | None, warnings: list[str]
) -> PaperRecord:
    if not isinstance(item, dict):
        raise ValueError(f"not an object but {type(item).__name__}")
    paper = item.get("paper")
    if paper is None:
        paper = {}
    if not isinstance(paper, dict):
        raise ValueError("'paper' is not an object")
    title = clean_text(paper.get("title") or item.get("title"))
    if not title:
        raise ValueError("missing title")
    if paper.get("withdrawnAt"):
        raise ValueError("withdrawn")
    raw_id = paper.get("id")
    arxiv_id = canonical_arxiv_id(str(raw_id)) if raw_id else None
    if raw_id and not arxiv_id:
        warnings.append(f"item {position}: id {str(raw_id)[:40]!r} is not an arXiv id")
    listed = timestamp(paper.get("submittedOnDailyAt")) or timestamp(item.get("publishedAt"))
    return PaperRecord(
        title=title,
        abstract=clean_text(paper.get("summary") or item.get("summary")),
        arxiv_id=arxiv_id,
        authors=[
            clean_text(a.get("name"))
            for a in as_list(paper.get("authors"))
            if isinstance(a, dict) and clean_text(a.get("name"))
        ],
        published_at=timestamp(paper.get("publishedAt")),
        listed_on=listed.date() if listed else listing_date,
        listing_position=position,
        upvotes=count(paper.get("upvotes")),
        comments=count(item.get("numComments")),
        github_repo=url(paper.get("githubRepo")),
        github_stars=count(paper.get("githubStars")),
        project_page=url(paper.get("projectPage")),
        thumbnail=url(item.get("thumbnail")),
        ai_summary=clean_text(paper.get("ai_summary")),
        ai_keywords=[
            clean_text(k)
            for k in as_list(paper.get("ai_keywords"))
            if isinstance(k, str) and clean_text(k)
        ],
    )


def timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        moment.astimezone(UTC)  # "0001-01-01T00:00+05:00" is before year 1 in UTC
    except (ValueError, OverflowError):
        return None
    return moment


def count(value: Any) -> int | None:
    """A vote or star count; anything that is not an integer a count column holds
    (0 to 2**31 - 1 on every database) is unknown."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        return None
    return value


def as_list(value: Any) -> list[Any]:
    """A list the source gives, or nothing: a string or a number is no list of authors."""
    return value if isinstance(value, list) else []


def url(value: Any) -> str:
    text = clean_text(value)
    return text if text.startswith(("https://", "http://")) and len(text) <= 500 else ""
