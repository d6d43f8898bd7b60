"""Followed authors: whether a paper's author is someone a reader follows, whatever the spelling.

A name is compared as a surname and the first given name, without case or accents, so
"Song Han" follows "song han", "S. Han" and "Sóng Hán", and "LeCun, Yann" is "Yann LeCun". An
initial stands for any given name with that letter; two full given names must be equal
("Song Han" is not "Sheng Han"). A followed name without a given name matches the surname.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import NamedTuple

LETTERS = re.compile(r"[^\W\d_]+")


class Name(NamedTuple):
    surname: str
    given: str  # the first given name, or its initial; "" when none is known


def name_of(text: str) -> Name:
    """The comparable form of a person's name: "Yann A. LeCun" -> ("lecun", "yann")."""
    bare = "".join(
        c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)
    ).casefold()
    if "," in bare:
        surname, _, given = bare.partition(",")
        last, first = LETTERS.findall(surname), LETTERS.findall(given)
    else:
        parts = LETTERS.findall(bare)
        last, first = parts[-1:], parts[:-1]
    return Name(last[-1] if last else "", first[0] if first else "")


def same_person(followed: Name, author: Name) -> bool:
    if not followed.surname or followed.surname != author.surname:
        return False
    a, b = followed.given, author.given
    if not a or not b:
        return True
    if len(a) == 1 or len(b) == 1:
        return a[0] == b[0]
    return a == b


class AuthorIndex:
    """The candidates' authors by surname, to find a followed author's papers at once."""

    def __init__(self, authors: Sequence[Iterable[str]]) -> None:
        self.by_surname: dict[str, list[tuple[int, Name, str]]] = {}
        for at, names in enumerate(authors):
            for written in names:
                name = name_of(written)
                if name.surname:
                    self.by_surname.setdefault(name.surname, []).append((at, name, written))

    def papers_by(self, followed: Iterable[str]) -> dict[int, list[str]]:
        """Candidate index -> the authors (as the paper writes them) among ``followed``."""
        found: dict[int, list[str]] = {}
        for wanted in map(name_of, followed):
            for at, name, written in self.by_surname.get(wanted.surname, ()):
                if same_person(wanted, name) and written not in found.get(at, ()):
                    found.setdefault(at, []).append(written)
        return found
