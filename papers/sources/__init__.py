"""Paper sources: one module per format, each exposing ``parse(data, ...) -> Parsed``.

A parser never touches the database. It turns one payload into ``PaperRecord``s and reports
the items it could not use, so the importer can save the good ones and explain the rest.
A payload that is unusable as a whole (garbled JSON, not XML at all) raises ``SourceError``.
"""

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime

# Old-style ids start with an archive ("hep-th/9901001", "cond-mat.mes-hall/0101001"), 18
# characters at most: the bound keeps an id within its 32-character column, and the tail of a
# longer hyphenated word is not taken for an archive.
ARXIV_ID = re.compile(
    r"(?<![\w.])(?P<id>\d{4}\.\d{4,5}|(?<!-)[a-z][a-z.-]{0,23}/\d{7})(?:v\d+)?(?![\d])", re.I
)
# Characters no database column holds: PostgreSQL refuses NUL in text and jsonb, and a lone
# surrogate (JSON can spell one, "\ud800") has no UTF-8 encoding.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class SourceError(Exception):
    """The payload (or the URL) cannot be used at all."""


@dataclass
class PaperRecord:
    """One paper as a source describes it. ``None`` means the source does not say."""

    title: str
    abstract: str = ""
    arxiv_id: str | None = None
    authors: list[str] = field(default_factory=list)
    published_at: datetime | None = None
    listed_on: date | None = None
    listing_position: int | None = None
    upvotes: int | None = None
    comments: int | None = None
    github_repo: str = ""
    github_stars: int | None = None
    project_page: str = ""
    thumbnail: str = ""
    ai_summary: str = ""
    ai_keywords: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    # An announced new version (arXiv "replace"): it updates a paper the catalogue holds and
    # never adds one, nor lists it again.
    update_only: bool = False


@dataclass
class InvalidItem:
    position: int  # 1-based position of the item in its payload
    reason: str
    label: str = ""  # a title or id when there is one, to find the item again

    def __str__(self) -> str:
        where = f"item {self.position}" + (f" ({self.label[:60]})" if self.label else "")
        return f"{where}: {self.reason}"


@dataclass
class Parsed:
    records: list[PaperRecord] = field(default_factory=list)
    invalid: list[InvalidItem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def canonical_arxiv_id(value: str | None) -> str | None:
    """``2503.12345v2``, ``arXiv:2503.12345`` or an abs/pdf URL -> ``2503.12345``."""
    if not value:
        return None
    match = ARXIV_ID.search(value.strip())
    return match.group("id").lower() if match else None


def title_key(title: str) -> str:
    """The identity of a paper without an arXiv id: case, accents and punctuation folded."""
    folded = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode().lower()
    return " ".join(re.findall(r"[a-z0-9]+", folded))[:500]


def storable(text: str) -> str:
    """``text`` without the characters no database column can hold."""
    return UNSTORABLE.sub("", text)


def clean_text(value: object) -> str:
    """Collapse whitespace (sources wrap titles and abstracts across lines); storable."""
    return " ".join(storable(str(value)).split()) if value else ""
