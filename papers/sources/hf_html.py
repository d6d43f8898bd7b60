"""The Daily Papers HTML page. Its data is HTML-escaped JSON in one element's ``data-props``;
the visible cards are read only when that is missing, and the result says so."""

import json
import re
from datetime import date

from bs4 import BeautifulSoup

from papers.sources import (
    PaperRecord,
    Parsed,
    SourceError,
    canonical_arxiv_id,
    clean_text,
    hf,
    storable,
)

PAPER_LINK = re.compile(r"^/papers/(\d{4}\.\d{4,5})(?:v\d+)?/?$")


def parse(data: str, listing_date: date | None = None) -> Parsed:
    soup = BeautifulSoup(storable(data), "html.parser")  # a lone surrogate breaks bs4
    element = soup.find(None, {"data-target": "DailyPapers"})
    problem = "no data-props element"
    if element is not None:
        try:
            props = json.loads(str(element.get("data-props") or ""))
            items = props["dailyPapers"]
            if not isinstance(items, list):
                raise TypeError("dailyPapers is not a list")
            return hf.records_from_items(items, listing_date)
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            problem = f"unreadable data-props ({exc})"
    parsed = cards(soup, listing_date)
    if not parsed.records:
        raise SourceError(f"no Daily Papers data found in the HTML page ({problem})")
    parsed.warnings.append(f"{problem}: read only titles and ids from the visible cards")
    return parsed


def cards(soup: BeautifulSoup, listing_date: date | None) -> Parsed:
    parsed = Parsed()
    seen: set[str] = set()
    for link in soup.find_all("a", href=PAPER_LINK):
        arxiv_id = canonical_arxiv_id(str(link.get("href")))
        heading = link.find_parent(["h3", "h2"]) or link.find(["h3", "h2"]) or link
        title = clean_text(heading.get_text(" "))
        if not arxiv_id or not title or arxiv_id in seen:
            continue
        seen.add(arxiv_id)
        parsed.records.append(
            PaperRecord(
                title=title,
                arxiv_id=arxiv_id,
                listed_on=listing_date,
                listing_position=len(parsed.records) + 1,
            )
        )
    return parsed
