"""The arXiv API's Atom feed. arXiv has no daily listing, so ``listing_date`` (when given)
is the day the papers are listed under."""

import xml.etree.ElementTree as ET
from datetime import date

from papers.sources import (
    InvalidItem,
    PaperRecord,
    Parsed,
    SourceError,
    canonical_arxiv_id,
    clean_text,
)
from papers.sources.hf import timestamp

NS = {"atom": "http://www.w3.org/2005/Atom", "arxiv": "http://arxiv.org/schemas/atom"}


def parse(data: str, listing_date: date | None = None) -> Parsed:
    # No DTDs at all: entity expansion ("billion laughs") has no place in a feed.
    if "<!DOCTYPE" in data or "<!ENTITY" in data:
        raise SourceError("the feed declares a DTD or entities; refused")
    try:
        root = ET.fromstring(data)
    except (ET.ParseError, UnicodeEncodeError) as exc:  # a lone surrogate has no UTF-8
        raise SourceError(f"not valid XML ({exc})") from None
    if root.tag != f"{{{NS['atom']}}}feed":
        raise SourceError(f"not an Atom feed (root element {root.tag})")
    parsed = Parsed()
    for position, entry in enumerate(root.findall("atom:entry", NS), 1):
        raw_id = entry.findtext("atom:id", "", NS)
        title = clean_text(entry.findtext("atom:title", "", NS))
        if "api/errors" in raw_id:
            raise SourceError(
                f"arXiv answered an error: {clean_text(entry.findtext('atom:summary', '', NS))}"
            )
        arxiv_id = canonical_arxiv_id(raw_id)
        if not arxiv_id or not title:
            reason = "missing arXiv id" if not arxiv_id else "missing title"
            parsed.invalid.append(InvalidItem(position, reason, title or raw_id))
            continue
        primary = entry.find("arxiv:primary_category", NS)
        categories = [primary.get("term", "")] if primary is not None else []
        categories += [c.get("term", "") for c in entry.findall("atom:category", NS)]
        parsed.records.append(
            PaperRecord(
                title=title,
                abstract=clean_text(entry.findtext("atom:summary", "", NS)),
                arxiv_id=arxiv_id,
                authors=[
                    clean_text(a.findtext("atom:name", "", NS))
                    for a in entry.findall("atom:author", NS)
                    if clean_text(a.findtext("atom:name", "", NS))
                ],
                published_at=timestamp(entry.findtext("atom:published", "", NS)),
                listed_on=listing_date,
                categories=list(dict.fromkeys(c for c in categories if c)),
            )
        )
    return parsed
