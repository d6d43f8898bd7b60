"""Read paper sources (files or URLs) and upsert what they describe into the catalogue."""

from __future__ import annotations

import logging
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from papers.models import ImportRun, Paper
from papers.sources import PaperRecord, Parsed, SourceError, arxiv, hf, hf_html, text

log = logging.getLogger(__name__)

PARSERS: dict[str, Callable[..., Parsed]] = {
    "hf-json": hf.parse,
    "hf-html": hf_html.parse,
    "arxiv": arxiv.parse,
    "text": text.parse,
}
FORMATS = ("auto", *PARSERS)
MAX_BYTES = 20 * 1024 * 1024


@dataclass
class ImportSummary:
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    invalid: list[str] = field(default_factory=list)  # "<source> item 3: missing title"
    failed: list[str] = field(default_factory=list)  # "<source>: HTTP 503 after 3 tries"
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.invalid and not self.failed

    def totals(self) -> dict[str, int]:
        """What a task returns: counts only, JSON-ready."""
        return {"new": self.new, "updated": self.updated, "failed": len(self.failed)}

    def count(self, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def fetch(url: str) -> tuple[str, str]:
    """GET ``url`` with a timeout and retries with exponential backoff; return (text, type).

    4xx answers other than 429 are final; 429, 5xx and network errors are retried.
    """
    request = urllib.request.Request(
        url,
        headers={
            "User-Agent": f"Paperboy/0.1 (+{settings.SITE_URL})",
            "Accept": "application/json, application/atom+xml, text/html;q=0.9, */*;q=0.5",
        },
    )
    attempts = settings.PAPERS_FETCH_RETRIES + 1
    for attempt in range(1, attempts + 1):
        try:
            with urllib.request.urlopen(request, timeout=settings.PAPERS_FETCH_TIMEOUT) as resp:
                body = resp.read(MAX_BYTES + 1)
                if len(body) > MAX_BYTES:
                    raise SourceError(f"larger than {MAX_BYTES // 2**20} MB")
                charset = resp.headers.get_content_charset() or "utf-8"
                return body.decode(charset, errors="replace"), resp.headers.get_content_type()
        except urllib.error.HTTPError as exc:
            reason = f"HTTP {exc.code}"
            if exc.code < 500 and exc.code != 429:
                raise SourceError(reason) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = str(getattr(exc, "reason", exc))
        if attempt < attempts:
            delay = settings.PAPERS_FETCH_BACKOFF * 2 ** (attempt - 1)
            time.sleep(delay + random.uniform(0, delay / 2))
    raise SourceError(f"{reason} after {attempts} tries")


def read_source(source: str) -> tuple[str, str]:
    if is_url(source):
        return fetch(source)
    path = Path(source)
    try:
        return path.read_text(encoding="utf-8"), ""
    except FileNotFoundError:
        raise SourceError("no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"cannot read it ({exc})") from None


def detect_format(data: str, content_type: str = "") -> str:
    head = data.lstrip()[:500].lower()
    if "json" in content_type or head.startswith(("[", "{")):
        return "hf-json"
    if "atom" in content_type or head.startswith("<?xml") or "<feed" in head:
        return "arxiv"
    if "html" in content_type or head.startswith("<"):
        return "hf-html"
    return "text"


def parse_source(
    source: str, fmt: str = "auto", listing_date: date | None = None
) -> tuple[str, Parsed]:
    data, content_type = read_source(source)
    if fmt == "auto":
        fmt = detect_format(data, content_type)
    return fmt, PARSERS[fmt](data, listing_date=listing_date)


def import_sources(
    sources: Iterable[str],
    fmt: str = "auto",
    listing_date: date | None = None,
    progress: Callable[[list[PaperRecord], str], Iterable[PaperRecord]] = lambda items, _: items,
) -> ImportSummary:
    """Import every source; a failed source or item is reported and the rest still import.

    Each paper is upserted in its own transaction, so nothing is ever half-written.
    """
    summary = ImportSummary()
    sources = list(sources)
    run = ImportRun.objects.create(sources=sources)
    for source in sources:
        try:
            fmt_used, parsed = parse_source(source, fmt, listing_date)
        except SourceError as exc:
            summary.failed.append(f"{source}: {exc}")
            continue
        summary.warnings += [f"{source}: {w}" for w in parsed.warnings]
        summary.invalid += [f"{source} {item}" for item in parsed.invalid]
        for record in progress(parsed.records, Path(source).name or source):
            summary.count(Paper.upsert(record, source=fmt_used))
    ImportRun.objects.filter(pk=run.pk).update(
        finished=timezone.now(),
        new=summary.new,
        updated=summary.updated,
        unchanged=summary.unchanged,
        invalid=len(summary.invalid),
        errors=summary.failed + summary.invalid[:100],
    )
    for problem in summary.failed:
        log.warning("import failed: %s", problem)
    return summary
