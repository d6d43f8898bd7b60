"""REFs: the ways a reader names a paper they like (or dislike), parsed. Pure: no database.

A REF is an arXiv id (new style ``2401.12345``, old style ``hep-th/9901001``, with or without
a version, optionally ``arXiv:``-prefixed), an arXiv, Hugging Face or alphaXiv link to a paper,
an arXiv DOI (``10.48550/arXiv.2401.12345``, bare or as a doi.org link), or else the exact title
of a paper in the catalogue. The forms, the manage page and ``rank_papers`` all parse with
``parse_ref``; finding the papers is ``Paper.objects.for_refs``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

MAX_TITLE_LENGTH = 500

# New style (April 2007 on): YYMM.NNNN until the end of 2014, YYMM.NNNNN since.
NEW_ID = re.compile(r"(?P<yymm>\d{4})\.(?P<number>\d{4,5})(?:v\d+)?", re.I)
# Old style: an archive, optionally with its subject class, then YYMMNNN.
OLD_ID = re.compile(
    r"(?P<archive>[a-z]+(?:-[a-z]+)*(?:\.[a-z]{2})?)/(?P<number>\d{7})(?:v\d+)?", re.I
)
DOI = re.compile(r"(?:doi:\s*)?10\.48550/arxiv\.(?P<id>.+)", re.I)
OTHER_DOI = re.compile(r"(?:doi:\s*)?10\.\d{4,9}/\S+", re.I)
# Shapes a reader means as an id, so that a mistyped one gets "not a valid arXiv id" rather than
# "no paper with that title".
ID_LIKE = re.compile(r"(?:arxiv:\s*)?(?:[\d.]+(?:v\d*)?|[a-z-]+(?:\.[a-z]{2})?/\d+(?:v\d*)?)", re.I)
# Paper pages by host (``www.`` dropped): the path prefixes that are followed by an id.
PAPER_PATHS = {
    "arxiv.org": ("abs", "pdf", "html", "format"),
    "export.arxiv.org": ("abs", "pdf"),
    "huggingface.co": ("papers",),
    "alphaxiv.org": ("abs", "overview", "pdf"),
}
DOI_HOSTS = ("doi.org", "dx.doi.org")
WHAT_WE_TAKE = "an arXiv id, an arXiv, Hugging Face or alphaXiv link, an arXiv DOI, or a title"


class RefError(ValueError):
    """A REF that names no paper; the message says which and why, for the reader."""


@dataclass(frozen=True)
class Ref:
    """A parsed REF: ``arxiv_id`` (canonical: lower case, no version) or else ``title``."""

    given: str
    arxiv_id: str = ""
    title: str = ""

    def __str__(self) -> str:
        return self.given


def arxiv_id(text: str) -> str | None:
    """The canonical id when ``text`` is exactly a valid arXiv id (version and ``arXiv:`` prefix
    allowed), else None."""
    text = re.sub(r"^arxiv:\s*", "", text.strip(), flags=re.I)
    new = NEW_ID.fullmatch(text)
    if new:
        year, month = int(new["yymm"][:2]), int(new["yymm"][2:])
        five_digits = year >= 15
        if (
            1 <= month <= 12
            and (year, month) >= (7, 4)
            and (len(new["number"]) == 5) == five_digits
        ):
            return f"{new['yymm']}.{new['number']}"
        return None
    old = OLD_ID.fullmatch(text)
    if old and 1 <= int(old["number"][2:4]) <= 12:
        return f"{old['archive']}/{old['number']}".lower()
    return None


def parse_ref(text: str) -> Ref:
    """One REF as typed. Raises ``RefError`` for a malformed id or DOI, or a link that is not
    to a paper on arXiv, Hugging Face or alphaXiv."""
    given = " ".join(text.split())
    if not given:
        raise RefError("An empty reference names no paper.")
    if any(ord(c) < 32 or ord(c) == 127 for c in text if c not in "\t\n\r"):
        raise RefError(f"“{shorten(given)}” contains control characters; use plain text.")
    if re.match(r"(?:https?://|www\.)", given, re.I) or re.match(
        r"[a-z0-9.-]+\.(?:org|co|com|net|io)/", given, re.I
    ):
        return Ref(given, arxiv_id=_from_url(given))
    doi = DOI.fullmatch(given)
    if doi:
        found = arxiv_id(doi["id"])
        if not found:
            raise RefError(
                f"“{shorten(given)}” is not a valid arXiv DOI (10.48550/arXiv.NNNN.NNNNN)."
            )
        return Ref(given, arxiv_id=found)
    if OTHER_DOI.fullmatch(given):
        raise RefError(
            f"“{shorten(given)}” is not an arXiv DOI; give the paper's arXiv id or link instead."
        )
    if ID_LIKE.fullmatch(given):
        found = arxiv_id(given)
        if not found:
            raise RefError(
                f"“{shorten(given)}” is not a valid arXiv id (like 2401.12345 or hep-th/9901001)."
            )
        return Ref(given, arxiv_id=found)
    if len(given) > MAX_TITLE_LENGTH:
        raise RefError(f"“{shorten(given)}” is too long for a title ({len(given)} characters).")
    return Ref(given, title=given)


def _from_url(url: str) -> str:
    parts = urlsplit(url if "://" in url else f"https://{url}")
    host = (parts.hostname or "").lower().removeprefix("www.")
    path = unquote(parts.path).strip("/")
    if host in DOI_HOSTS:
        doi = DOI.fullmatch(path)
        found = arxiv_id(doi["id"]) if doi else None
        if not found:
            raise RefError(f"“{shorten(url)}” is not an arXiv DOI link.")
        return found
    prefixes = PAPER_PATHS.get(host)
    if prefixes is None:
        raise RefError(
            f"“{shorten(url)}” links to {host or 'nowhere we know'}; give {WHAT_WE_TAKE}."
        )
    head, _, rest = path.partition("/")
    found = arxiv_id(re.sub(r"\.pdf$", "", rest, flags=re.I)) if head in prefixes else None
    if not found:
        raise RefError(f"“{shorten(url)}” is not a link to a paper on {host}.")
    return found


def split_refs(text: str) -> list[str]:
    """REFs as typed in a text box: one per line, or several ids and links on a line separated
    by commas or spaces (a title keeps its line whole, commas and all)."""
    found: list[str] = []
    for line in text.splitlines():
        tokens = [t for t in re.split(r"[\s,;]+", line) if t]
        if tokens and all(_id_or_link(t) for t in tokens):
            found += tokens
        elif line.strip():
            found.append(line.strip())
    return list(dict.fromkeys(found))


def _id_or_link(token: str) -> bool:
    return bool(
        re.match(r"(?:https?://|www\.)", token, re.I)
        or DOI.fullmatch(token)
        or OTHER_DOI.fullmatch(token)
        or ID_LIKE.fullmatch(token)
    )


def shorten(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
