"""arXiv's daily announcement feeds, read with feedparser: the current RSS 2.0 feed
(rss.arxiv.org/rss/<cats>, also its /atom/ twin) and the older RSS 1.0 / RDF one.

Current items carry ``arxiv:announce_type``: ``new`` and ``cross`` are listed on the
announcement day; ``replace`` and ``replace-cross`` only update a paper the catalogue already
holds (``PaperRecord.update_only``). The old format says the same in its titles: ``Title.
(arXiv:2107.03419v1 [hep-ex] UPDATED)``.

A feed is read in chunks of items, each parsed by feedparser under the feed's own head, so a
20,000-item feed never sits in memory as parsed objects at once (``iter_parse``).
"""

import html
import io
import re
from collections.abc import Iterator
from datetime import date, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TextIO

import feedparser
from bs4 import BeautifulSoup

from papers.sources import (
    InvalidItem,
    PaperRecord,
    Parsed,
    SourceError,
    canonical_arxiv_id,
    clean_text,
)
from papers.sources.hf import timestamp

CHUNK_ITEMS = 500
READ_BYTES = 1 << 20
ITEM_START = re.compile(r"<(item|entry)[\s>]")
ITEM_END = {"item": "</item>", "entry": "</entry>"}
OLD_TITLE = re.compile(
    r"\s*\(arXiv:(?P<id>[^\s)]+?)(?:v\d+)?\s+\[(?P<cat>[^\]]+)\](?P<kind>[^)]*)\)\s*$"
)
ANNOUNCEMENT = re.compile(r"^\s*arXiv:\S+\s+Announce Type:\s*(?P<kind>[\w-]+)\s*", re.I)
ABSTRACT = re.compile(r"^\s*Abstract:\s*", re.I)
KINDS = {"new", "cross", "replace", "replace-cross"}
Event = PaperRecord | InvalidItem | str  # a record, an unusable item, or a warning


def parse(data: str, listing_date: date | None = None) -> Parsed:
    parsed = Parsed()
    for event in iter_parse(io.StringIO(data), listing_date):
        if isinstance(event, PaperRecord):
            parsed.records.append(event)
        elif isinstance(event, InvalidItem):
            parsed.invalid.append(event)
        else:
            parsed.warnings.append(event)
    return parsed


def iter_parse(stream: TextIO, listing_date: date | None = None) -> Iterator[Event]:
    """Records, invalid items and warnings of the feed in ``stream``, chunk by chunk."""
    head, buffer = read_head(stream)
    closing = closing_tags(head)
    channel = read_xml(head + closing)
    day = announcement_day(channel.feed) or listing_date
    position, seen = 0, set[str]()
    chunk: list[str] = []
    for item in split_items(buffer, stream):
        if item is None:  # the feed stops inside an item
            yield from parse_chunk(head, closing, chunk, position, day, seen)
            position += len(chunk) + 1
            yield InvalidItem(position, "cut off where the feed ends")
            yield "the feed is truncated: read the items before the cut"
            return
        chunk.append(item)
        if len(chunk) == CHUNK_ITEMS:
            yield from parse_chunk(head, closing, chunk, position, day, seen)
            position += len(chunk)
            chunk = []
    yield from parse_chunk(head, closing, chunk, position, day, seen)


def feed_day(text: str) -> date | None:
    """The announcement day of the feed in ``text``, from its channel alone."""
    found = ITEM_START.search(text)
    head = text[: found.start()] if found else text
    return announcement_day(read_xml(head + closing_tags(head)).feed)


def closing_tags(head: str) -> str:
    """What closes a feed that opened with ``head``, to parse part of it as a whole."""
    return (
        "</rdf:RDF>" if "<rdf:RDF" in head else "</feed>" if "<feed" in head else "</channel></rss>"
    )


def read_head(stream: TextIO) -> tuple[str, str]:
    """Everything before the first item (the channel), and what was read past it."""
    text = ""
    while True:
        block = stream.read(READ_BYTES)
        text += block
        found = ITEM_START.search(text)
        if found or not block:
            break
    head = text[: found.start()] if found else text
    lowered = head.lstrip()[:2000].lower()
    if "<rss" not in lowered and "<rdf:rdf" not in lowered and "<feed" not in lowered:
        raise SourceError(not_a_feed(head))
    if not found and not re.search(r"</(rss|rdf:RDF|feed)>", head):
        if not head.strip():
            raise SourceError("empty answer, not a feed")
        raise SourceError("the feed is truncated before its first item")
    return head, text[len(head) :]


def not_a_feed(text: str) -> str:
    if re.search(r"<html|<!doctype html", text[:2000], re.I):
        title = BeautifulSoup(text[:20000], "html.parser").title
        named = f": {clean_text(title.get_text())[:80]!r}" if title else ""
        return f"an HTML page where a feed was expected{named}"
    return f"not an RSS or RDF feed (starts {clean_text(text[:60])!r})"


def split_items(buffer: str, stream: TextIO) -> Iterator[str | None]:
    """Each ``<item>...</item>`` (or ``<entry>``) of the feed as text; ``None`` when the feed
    ends inside one. arXiv escapes markup inside items, so a closing tag ends the item."""
    pos = 0
    while True:
        start = ITEM_START.search(buffer, pos)
        end = buffer.find(ITEM_END[start.group(1)], start.start()) if start else -1
        if end < 0:
            block = stream.read(READ_BYTES)
            if not block:
                if start is not None:
                    yield None
                return
            buffer = buffer[start.start() if start else max(pos, len(buffer) - 16) :] + block
            pos = 0
            continue
        end += len(start.group(1)) + 3  # type: ignore[union-attr]
        yield buffer[start.start() : end]  # type: ignore[union-attr]
        pos = end


def parse_chunk(
    head: str, closing: str, items: list[str], offset: int, day: date | None, seen: set[str]
) -> Iterator[Event]:
    if not items:
        return
    feed = read_xml(head + "".join(items) + closing)
    if len(feed.entries) != len(items):
        lost = len(items) - len(feed.entries)
        yield f"items {offset + 1} to {offset + len(items)}: {lost} unreadable"
    for position, entry in enumerate(feed.entries, offset + 1):
        try:
            record = record_from_entry(entry, day)
        except ValueError as exc:
            label = clean_text(entry.get("link") or entry.get("title"))
            yield InvalidItem(position, str(exc), label)
            continue
        assert record.arxiv_id  # record_from_entry refuses items without one
        if record.arxiv_id in seen:
            yield f"item {position}: {record.arxiv_id} is listed again; kept once"
            continue
        seen.add(record.arxiv_id)
        if not record.abstract:
            yield f"item {position} ({record.arxiv_id}): no abstract; imported without one"
        yield record


def read_xml(text: str) -> Any:
    """feedparser's reading of ``text``, handed as a stream: given a string, feedparser first
    tries it as an URL (whose parse the standard library caches: a megabyte chunk each) and as
    a file name."""
    return feedparser.parse(io.BytesIO(text.encode()), sanitize_html=False)


def record_from_entry(entry: Any, day: date | None) -> PaperRecord:
    title = clean_text(html.unescape(entry.get("title", "")))
    description = entry.get("summary", "")
    kind = clean_text(entry.get("arxiv_announce_type")).lower()
    old = OLD_TITLE.search(title)
    raw_id = entry.get("link") or entry.get("id") or ""
    if old:  # the RDF format: "Title. (arXiv:2107.03419v1 [hep-ex] UPDATED)"
        title, raw_id = title[: old.start()].rstrip().removesuffix("."), old.group("id")
        flags = old.group("kind").upper()
        kind = "replace" if "UPDATED" in flags else "cross" if "CROSS" in flags else "new"
    announced = ANNOUNCEMENT.match(description)
    if announced:
        kind = kind or announced.group("kind").lower()
        description = description[announced.end() :]
    arxiv_id = canonical_arxiv_id(raw_id) or canonical_arxiv_id(entry.get("id"))
    if not arxiv_id:
        raise ValueError("no arXiv id in its link or guid")
    title = clean_text(BeautifulSoup(title, "html.parser").get_text()) if "<" in title else title
    if not title:
        raise ValueError("missing title")
    if kind and kind not in KINDS:
        raise ValueError(f"unknown announce type {kind!r}")
    update_only = kind.startswith("replace")
    abstract = ABSTRACT.sub("", plain(description))
    return PaperRecord(
        title=title,
        abstract=abstract,
        arxiv_id=arxiv_id,
        authors=authors(entry),
        published_at=None if update_only else announced_at(entry),
        listed_on=None if update_only else day,
        categories=[clean_text(tag.get("term")) for tag in entry.get("tags", []) if tag.get("term")]
        or ([old.group("cat")] if old else []),
        update_only=update_only,
    )


def plain(text: str) -> str:
    """Text without markup: the RDF feed's abstracts are HTML paragraphs."""
    if "<" in text:
        text = BeautifulSoup(text, "html.parser").get_text(" ")
    return clean_text(html.unescape(text))


def authors(entry: Any) -> list[str]:
    """``dc:creator`` is one string: names joined by commas (and "and"), as HTML links to
    author searches in the old feed."""
    names = ", ".join(a.get("name", "") for a in entry.get("authors", []))
    names = plain(names)
    names = re.sub(r"\(.*?\)|et al\..*$", "", names)
    parts = re.split(r",|\band\b|:", names)
    return [clean_text(p) for p in parts if clean_text(p)]


def announced_at(entry: Any) -> datetime | None:
    value = entry.get("published") or entry.get("updated")
    if not value:
        return None
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return timestamp(value)


def announcement_day(channel: Any) -> date | None:
    """The day the channel announces, in arXiv's own time zone."""
    for key in ("published", "updated"):
        value = channel.get(key)
        if not value:
            continue
        try:
            return parsedate_to_datetime(value).date()
        except (TypeError, ValueError):
            moment = timestamp(value)
            if moment:
                return moment.date()
    return None
