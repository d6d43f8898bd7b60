"""Read paper sources (files or URLs) and upsert what they describe into the catalogue."""

from __future__ import annotations

import email.utils
import io
import itertools
import logging
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from papers.models import ImportRun, Paper
from papers.sources import (
    InvalidItem,
    PaperRecord,
    Parsed,
    SourceError,
    arxiv,
    arxiv_rss,
    canonical_arxiv_id,
    hf,
    hf_html,
    text,
)

log = logging.getLogger(__name__)

PARSERS: dict[str, Callable[..., Parsed]] = {
    "hf-json": hf.parse,
    "hf-html": hf_html.parse,
    "arxiv": arxiv.parse,
    "arxiv-rss": arxiv_rss.parse,
    "text": text.parse,
}
# Formats read item by item from a stream rather than parsed whole.
STREAMED: dict[str, Callable[[TextIO, date | None], Iterator[object]]] = {
    "arxiv-rss": arxiv_rss.iter_parse,
}
FORMATS = ("auto", *PARSERS)
MAX_BYTES = 20 * 1024 * 1024
BATCH = 500  # papers per upsert transaction


@dataclass
class ImportSummary:
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0  # new versions of papers the catalogue does not hold
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


@dataclass
class Fetched:
    text: str
    content_type: str
    validators: dict[str, str] = field(default_factory=dict)  # for the next conditional GET
    not_modified: bool = False  # 304: nothing new since ``validators`` were given


class FetchError(SourceError):
    """The URL gave no usable answer. ``transient``: worth trying again later, after
    ``retry_after`` seconds when the server said so."""

    def __init__(
        self,
        reason: str,
        status: int | None = None,
        transient: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(reason)
        self.status, self.transient, self.retry_after = status, transient, retry_after


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header (seconds or an HTTP date) as seconds from now."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (moment - timezone.now()).total_seconds()) if moment.tzinfo else None


def wait_turn(host: str) -> None:
    """At most one request per PAPERS_POLITE_INTERVAL seconds to ``host``, across every worker
    that shares the cache (Redis in production): arXiv asks this of automated clients."""
    interval = settings.PAPERS_POLITE_INTERVAL
    while interval and not cache.add(f"papers:polite:{host}", 1, timeout=interval):
        time.sleep(0.1)


def fetch(url: str, *, polite: bool = False, validators: dict[str, str] | None = None) -> Fetched:
    """GET ``url`` with a timeout and retries with exponential backoff.

    4xx answers other than 429 are final; 429, 5xx and network errors are retried, after the
    server's Retry-After when it gives one (a longer wait than PAPERS_FETCH_MAX_WAIT is left to
    the caller, as ``FetchError.retry_after``). ``polite`` spaces requests to the host (arXiv);
    ``validators`` from an earlier answer make it a conditional GET.
    """
    headers = {
        "User-Agent": f"Paperboy/0.1 (+{settings.SITE_URL})",
        "Accept": "application/json, application/atom+xml, application/rss+xml, "
        "text/html;q=0.9, */*;q=0.5",
    }
    if validators and validators.get("etag"):
        headers["If-None-Match"] = validators["etag"]
    if validators and validators.get("last_modified"):
        headers["If-Modified-Since"] = validators["last_modified"]
    request = urllib.request.Request(url, headers=headers)
    attempts = settings.PAPERS_FETCH_RETRIES + 1
    for attempt in range(1, attempts + 1):
        if polite:
            wait_turn(urllib.parse.urlsplit(url).netloc)
        retry_after = None
        try:
            with urllib.request.urlopen(request, timeout=settings.PAPERS_FETCH_TIMEOUT) as resp:
                body = resp.read(MAX_BYTES + 1)
                if len(body) > MAX_BYTES:
                    raise FetchError(f"larger than {MAX_BYTES // 2**20} MB")
                charset = resp.headers.get_content_charset() or "utf-8"
                answered = {
                    "etag": resp.headers.get("ETag", ""),
                    "last_modified": resp.headers.get("Last-Modified", ""),
                }
                return Fetched(
                    body.decode(charset, errors="replace"),
                    resp.headers.get_content_type(),
                    {key: value for key, value in answered.items() if value},
                )
        except urllib.error.HTTPError as exc:
            if exc.code == 304:
                return Fetched("", "", dict(validators or {}), not_modified=True)
            reason = f"HTTP {exc.code}"
            if exc.code < 500 and exc.code != 429:
                raise FetchError(reason, exc.code) from None
            retry_after = retry_after_seconds(exc.headers.get("Retry-After"))
            if retry_after is not None and retry_after > settings.PAPERS_FETCH_MAX_WAIT:
                raise FetchError(
                    f"{reason}, asked to retry after {retry_after:.0f} s",
                    exc.code,
                    transient=True,
                    retry_after=retry_after,
                ) from None
            status: int | None = exc.code
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason, status = str(getattr(exc, "reason", exc)), None
        if attempt < attempts:
            delay = settings.PAPERS_FETCH_BACKOFF * 2 ** (attempt - 1)
            time.sleep(retry_after or delay + random.uniform(0, delay / 2))
    raise FetchError(f"{reason} after {attempts} tries", status, transient=True)


def open_source(source: str) -> tuple[TextIO, str]:
    """The source's text as a stream (a file is read as it is parsed), and its content type."""
    if is_url(source):
        fetched = fetch(source)
        return io.StringIO(fetched.text), fetched.content_type
    try:
        return open(source, encoding="utf-8"), ""  # closed by import_stream
    except FileNotFoundError:
        raise SourceError("no such file") from None
    except OSError as exc:
        raise SourceError(f"cannot read it ({exc})") from None


def read_source(source: str) -> tuple[str, str]:
    stream, content_type = open_source(source)
    with stream:
        try:
            return stream.read(), content_type
        except UnicodeDecodeError as exc:
            raise SourceError(f"cannot read it ({exc})") from None


def detect_format(data: str, content_type: str = "") -> str:
    head = data.lstrip()[:2000].lower()
    if "json" in content_type or head.startswith(("[", "{")):
        return "hf-json"
    if "<rss" in head or "<rdf:rdf" in head or "announce_type" in head or "rss.arxiv.org" in head:
        return "arxiv-rss"
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


Progress = Callable[[Iterable[PaperRecord], str], Iterable[PaperRecord]]


def import_sources(
    sources: Iterable[str],
    fmt: str = "auto",
    listing_date: date | None = None,
    progress: Progress = lambda records, _: records,
    name: str = "",
) -> ImportSummary:
    """Import every source; a failed source or item is reported and the rest still import.
    ``name``: the scheduled source this is, for source health.

    Papers are upserted in batches of BATCH, each in its own transaction, so nothing is ever
    half-written; feeds are read as a stream, so memory does not grow with their length.
    """
    summary = ImportSummary()
    sources = list(sources)
    run = ImportRun.objects.create(sources=sources, source=name)
    for source in sources:
        try:
            stream, content_type = open_source(source)
            import_stream(source, stream, content_type, fmt, listing_date, summary, progress)
        except SourceError as exc:
            summary.failed.append(f"{source}: {exc}")
    finish_run(run, summary)
    return summary


def import_stream(
    source: str,
    stream: TextIO,
    content_type: str,
    fmt: str,
    listing_date: date | None,
    summary: ImportSummary,
    progress: Progress = lambda records, _: records,
) -> None:
    """Parse ``stream`` in format ``fmt`` ("auto": guess from its start) and upsert it."""
    with stream:
        try:
            if fmt == "auto":
                fmt = detect_format(stream.read(2000), content_type)
                stream.seek(0)
            if fmt in STREAMED:
                events: Iterable[object] = STREAMED[fmt](stream, listing_date)
            else:
                parsed = PARSERS[fmt](stream.read(), listing_date=listing_date)
                events = [*parsed.warnings, *parsed.invalid, *parsed.records]

            def records() -> Iterator[PaperRecord]:
                for event in events:
                    if isinstance(event, PaperRecord):
                        yield event
                    elif isinstance(event, InvalidItem):
                        summary.invalid.append(f"{source} {event}")
                    else:
                        summary.warnings.append(f"{source}: {event}")

            papers = iter(progress(records(), Path(source).name or source))
            while batch := list(itertools.islice(papers, BATCH)):
                for outcome in Paper.upsert_many(batch, source=fmt):
                    summary.count(outcome)
        except UnicodeDecodeError as exc:
            raise SourceError(f"cannot read it ({exc})") from None


def finish_run(run: ImportRun, summary: ImportSummary, announced_on: date | None = None) -> None:
    ImportRun.objects.filter(pk=run.pk).update(
        announced_on=announced_on,
        finished=timezone.now(),
        new=summary.new,
        updated=summary.updated,
        unchanged=summary.unchanged,
        invalid=len(summary.invalid),
        errors=summary.failed + summary.invalid[:100],
        failure="; ".join(summary.failed)[:2000],
    )
    # A scheduled source's failure is shown in source health (and retried); only an import by
    # hand is worth a warning in the log.
    for problem in summary.failed:
        log.log(logging.INFO if run.source else logging.WARNING, "import failed: %s", problem)


@dataclass
class PapersById(ImportSummary):
    """What ``fetch_papers`` did. ``unknown``: ids no source knows (final, and among
    ``invalid`` with their reason); ``pending``: ids
    not fetched for a transient failure, worth asking again after ``retry_after`` seconds."""

    found: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    retry_after: float | None = None

    def totals(self) -> dict[str, int]:
        return super().totals() | {"unknown": len(self.unknown), "pending": len(self.pending)}


def fetch_papers(arxiv_ids: Iterable[str]) -> PapersById:
    """Store the papers with these arXiv ids (or arXiv/Daily Papers URLs) that the catalogue
    lacks: each from the Daily Papers single-paper API, and those it does not have (or cannot
    give now) from the arXiv API, in one polite request. An id already in the catalogue costs
    no request, so asking twice is harmless.
    """
    result = PapersById()
    wanted: dict[str, None] = {}
    for raw in arxiv_ids:
        arxiv_id = canonical_arxiv_id(raw)
        if arxiv_id:
            wanted[arxiv_id] = None
        else:
            result.invalid.append(f"{raw[:80]!r}: not an arXiv id")
    known = {
        str(arxiv_id)
        for arxiv_id in Paper.objects.filter(arxiv_id__in=wanted).values_list("arxiv_id", flat=True)
    }
    result.unchanged, result.found = len(known), sorted(known)
    missing = [arxiv_id for arxiv_id in wanted if arxiv_id not in known]
    if not missing:
        return result
    run = ImportRun.objects.create(
        sources=[f"arXiv:{arxiv_id}" for arxiv_id in missing], source="paper-by-id"
    )

    def store(records: list[PaperRecord], source: str) -> None:
        for record in records:
            if record.arxiv_id in missing and record.arxiv_id not in result.found:
                result.count(Paper.upsert(record, source=source))
                result.found.append(record.arxiv_id)

    for arxiv_id in missing:
        try:
            fetched = fetch(f"{settings.PAPERS_HF_PAPER_API_URL}/{arxiv_id}")
            store(hf.parse(fetched.text).records, "hf-json")
        except FetchError as exc:
            if exc.status == 404:  # not on Hugging Face: arXiv has it, or nobody does
                continue
            result.warnings.append(f"Daily Papers API: {exc}; asking arXiv instead")
            if exc.transient:
                break  # down for now: the rest go to arXiv without waiting on it again
        except SourceError as exc:
            result.warnings.append(f"arXiv:{arxiv_id}: Daily Papers API: {exc}")
    left = [arxiv_id for arxiv_id in missing if arxiv_id not in result.found]
    if left:
        query = urllib.parse.urlencode({"id_list": ",".join(left), "max_results": len(left)})
        try:
            fetched = fetch(f"{settings.PAPERS_ARXIV_API_URL}?{query}", polite=True)
            store(arxiv.parse(fetched.text).records, "arxiv")
        except SourceError as exc:
            if isinstance(exc, FetchError) and exc.transient:
                result.pending, result.retry_after = left, exc.retry_after
                result.failed.append(f"arXiv API: {exc}; {len(left)} ids left for later")
            else:
                result.failed.append(f"arXiv API: {exc}; asked for {', '.join(left)}")
        else:
            result.unknown = [i for i in left if i not in result.found]
            result.invalid += [
                f"arXiv:{i}: neither Daily Papers nor arXiv knows this id" for i in result.unknown
            ]
    finish_run(run, result)
    return result


ARXIV = "arxiv"  # the scheduled source of arXiv's announcements, in ImportRun.source
EASTERN = ZoneInfo("America/New_York")
ANNOUNCING = (6, 0, 1, 2, 3)  # Sunday to Thursday


def last_announcement(now: datetime) -> datetime:
    """arXiv's latest announcement at or before ``now``: 20:00 US Eastern, Sunday to Thursday."""
    local = now.astimezone(EASTERN)
    for back in range(8):
        day = local.date() - timedelta(days=back)
        moment = datetime(day.year, day.month, day.day, 20, tzinfo=EASTERN)
        if day.weekday() in ANNOUNCING and moment <= local:
            return moment
    raise AssertionError("arXiv announces every week")


def arxiv_feed_url() -> str:
    return f"{settings.PAPERS_ARXIV_RSS_URL}/{'+'.join(settings.PAPERS_ARXIV_CATEGORIES)}"


def import_arxiv_announcements(now: datetime | None = None) -> ImportSummary | None:
    """Import arXiv's latest announcement for PAPERS_ARXIV_CATEGORIES, once: None when it is
    imported already, or arXiv asked us to wait.

    The feed of an announcement is dated the next day; until it carries that date it is not
    out yet, and a later check asks again (conditionally: unchanged, arXiv answers 304).
    """
    now = now or timezone.now()
    due = (last_announcement(now) + timedelta(days=1)).date()
    if ImportRun.objects.filter(source=ARXIV, announced_on__gte=due).exists():
        return None
    if (cache.get(NOT_BEFORE) or now) > now:
        return None
    url, summary, day = arxiv_feed_url(), ImportSummary(), None
    run = ImportRun.objects.create(source=ARXIV, sources=[url])
    try:
        fetched = fetch(url, polite=True, validators=cache.get(VALIDATORS + url))
        if fetched.not_modified:
            summary.warnings.append(f"{url}: not modified; announcement of {due} not out yet")
        else:
            day = arxiv_rss.feed_day(fetched.text)
            stream = io.StringIO(fetched.text)
            import_stream(url, stream, fetched.content_type, "arxiv-rss", None, summary)
            cache.set(VALIDATORS + url, fetched.validators, timeout=30 * 86400)
            if day is None or day < due:
                summary.warnings.append(f"{url}: announcement of {due} not out yet ({day})")
    except SourceError as exc:
        summary.failed.append(f"{url}: {exc}")
        if isinstance(exc, FetchError) and exc.retry_after:
            cache.set(NOT_BEFORE, now + timedelta(seconds=exc.retry_after), exc.retry_after)
    finish_run(run, summary, announced_on=day)
    return summary


VALIDATORS = "papers:validators:"  # + URL: the ETag and Last-Modified of its last answer
NOT_BEFORE = "papers:arxiv-not-before"  # arXiv's Retry-After, across workers and beats
