"""A reader's reference library (a BibTeX or RIS export from Zotero, Mendeley or Google Scholar),
read into entries. Pure: bytes in, entries out, no database.

The parsing is bibtexparser's and rispy's; what is ours is finding the arXiv id an exporter hid
somewhere in an entry: Mendeley's ``arxivId`` / ``eprint``, Zotero's DOI 10.48550/arXiv.N, URL
and "arXiv:N [cs]" note, Google Scholar's ``journal = {arXiv preprint arXiv:N}``.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import bibtexparser
import rispy
from bibtexparser import middlewares
from bibtexparser.model import DuplicateBlockKeyBlock

from papers.refs import RefError, arxiv_id, parse_ref

MAX_BYTES = 2 * 1024 * 1024
MAX_ENTRIES = 2000
# "arXiv:2401.12345", "arXiv preprint arXiv:2401.12345v2", "arXiv:hep-th/9901001 [hep-th]"
ARXIV_MENTION = re.compile(
    r"arxiv[\s:.]*(?:preprint\s+arxiv[\s:]*)?"
    r"(\d{4}\.\d{4,5}(?:v\d+)?|[a-z]+(?:-[a-z]+)*(?:\.[a-z]{2})?/\d{7}(?:v\d+)?)",
    re.I,
)
RIS_START = re.compile(r"^\s*TY {1,2}- ", re.M)


class LibraryError(ValueError):
    """A file that is no library we can read; the message says why, for the reader."""


@dataclass(frozen=True)
class Entry:
    """One reference: its title, authors ("First Last"), year, and arXiv id when it names one."""

    title: str
    authors: tuple[str, ...] = ()
    year: str = ""
    arxiv_id: str = ""
    doi: str = ""

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "authors": list(self.authors)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Entry:
        return cls(**{**data, "authors": tuple(data.get("authors", ()))})


def read_library(data: bytes, name: str = "") -> list[Entry]:
    """The entries of a .bib or .ris file (told apart by its name, else by its content).
    Raises ``LibraryError`` for a file too large, unreadable, empty, or over ``MAX_ENTRIES``."""
    if len(data) > MAX_BYTES:
        raise LibraryError(
            f"That file is {len(data) / 1024 / 1024:.1f} MB; up to {MAX_BYTES // 1024 // 1024} MB, "
            "please (export one collection rather than the whole library)."
        )
    text = decode(data)
    lower = name.lower()
    is_ris = lower.endswith(".ris") or (
        not lower.endswith(".bib") and RIS_START.search(text) is not None
    )
    entries = read_ris(text) if is_ris else read_bibtex(text)
    if not entries:
        raise LibraryError(
            "We found no references in that file. Export your library as BibTeX (.bib) or RIS "
            "(.ris) and upload that file."
        )
    if len(entries) > MAX_ENTRIES:
        raise LibraryError(
            f"That file holds {len(entries):,} references; up to {MAX_ENTRIES:,}, please "
            "(export one collection rather than the whole library)."
        )
    return entries


def decode(data: bytes) -> str:
    if b"\x00" in data[:4096]:
        raise LibraryError("That is not a text file: export your library as BibTeX or RIS.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")  # older Windows exports


def read_bibtex(text: str) -> list[Entry]:
    if "@" not in text:
        return []
    # bibtexparser logs every block it cannot parse; the reader gets our message instead.
    logging.getLogger("bibtexparser").setLevel(logging.CRITICAL)
    library = bibtexparser.parse_string(
        text,
        append_middleware=[
            middlewares.LatexDecodingMiddleware(),
            middlewares.SeparateCoAuthors(),
            middlewares.SplitNameParts(),
        ],
    )
    # A key used twice (common in Google Scholar exports pasted together) is still an entry.
    broken = [b for b in library.failed_blocks if not isinstance(b, DuplicateBlockKeyBlock)]
    if broken:
        raise LibraryError(
            f"Line {(broken[0].start_line or 0) + 1} of that file is not BibTeX we can read"
            + (f" ({len(broken)} such places)" if len(broken) > 1 else "")
            + ". Export the library again, or fix the entry there."
        )
    entries: list[Any] = list(library.entries)
    entries += [
        b.ignore_error_block
        for b in library.failed_blocks
        if isinstance(b, DuplicateBlockKeyBlock) and b.ignore_error_block is not None
    ]
    found = []
    for entry in entries:
        fields = {key.lower(): field.value for key, field in entry.fields_dict.items()}
        title = clean(str(fields.get("title", "")))
        if not title:
            continue
        found.append(
            Entry(
                title=title,
                authors=tuple(bibtex_name(n) for n in as_list(fields.get("author"))),
                year=clean(str(fields.get("year", "")))[:4],
                arxiv_id=find_arxiv_id(
                    [fields.get(k) for k in ("arxivid", "eprint", "doi", "url", "journal")]
                    + [fields.get(k) for k in ("note", "howpublished", "volume", "archiveprefix")],
                    eprint_is_arxiv=str(
                        fields.get("archiveprefix") or fields.get("eprinttype") or ""
                    ).lower()
                    == "arxiv",
                    eprint=str(fields.get("eprint") or ""),
                ),
                doi=clean(str(fields.get("doi", ""))),
            )
        )
    return found


def bibtex_name(name: Any) -> str:
    if isinstance(name, middlewares.NameParts):
        return clean(" ".join([*name.first, *name.von, *name.last, *name.jr]))
    return clean(str(name))


def read_ris(text: str) -> list[Entry]:
    try:
        records = rispy.loads(text)
    except (OSError, ValueError, KeyError) as exc:
        raise LibraryError(f"That RIS file could not be read ({exc}). Export it again.") from None
    found = []
    for record in records:
        title = clean(str(record.get("title") or record.get("primary_title") or ""))
        if not title:
            continue
        authors = as_list(record.get("authors")) + as_list(record.get("first_authors"))
        found.append(
            Entry(
                title=title,
                authors=tuple(dict.fromkeys(ris_name(a) for a in authors if str(a).strip())),
                year=str(record.get("year") or record.get("publication_year") or "")[:4],
                arxiv_id=find_arxiv_id(
                    [record.get("doi")]
                    + as_list(record.get("urls"))
                    + as_list(record.get("file_attachments1"))
                    + as_list(record.get("notes"))
                    + [
                        record.get(k)
                        for k in ("journal_name", "secondary_title", "alternate_title1")
                    ]
                ),
                doi=clean(str(record.get("doi") or "")),
            )
        )
    return found


def ris_name(name: str) -> str:
    """RIS writes "Last, First": the reader follows "First Last"."""
    last, comma, first = str(name).partition(",")
    return clean(f"{first} {last}" if comma else last)


def find_arxiv_id(values: Iterable[Any], eprint_is_arxiv: bool = False, eprint: str = "") -> str:
    """The arXiv id an entry names in any of ``values`` (ids, DOIs, links, notes), else ""."""
    if eprint_is_arxiv and (found := arxiv_id(eprint)):
        return found
    for value in values:
        for text in as_list(value):
            text = str(text).strip()
            if not text:
                continue
            if found := arxiv_id(text):
                return found
            try:
                ref = parse_ref(text) if re.match(r"(https?://|10\.|doi:)", text, re.I) else None
            except RefError:
                ref = None
            if ref and ref.arxiv_id:
                return ref.arxiv_id
            for mention in ARXIV_MENTION.finditer(text):
                if found := arxiv_id(mention.group(1)):
                    return found
    return ""


def frequent_authors(entries: Iterable[Entry], limit: int = 10, at_least: int = 2) -> list[str]:
    """The authors who appear most often in the library (at least ``at_least`` times)."""
    counts: Counter[str] = Counter()
    spelling: dict[str, str] = {}
    for entry in entries:
        for name in dict.fromkeys(entry.authors):
            key = name.casefold()
            counts[key] += 1
            spelling.setdefault(key, name)
    return [spelling[k] for k, n in counts.most_common() if n >= at_least][:limit]


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def clean(text: str) -> str:
    """One line without the braces BibTeX uses to protect capitals."""
    return " ".join(text.replace("{", "").replace("}", "").split())
