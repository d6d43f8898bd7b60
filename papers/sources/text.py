"""The plain-text captures of the Daily Papers pages (see ../shared/seeds/).

Header lines, a date heading without a year (``Mar 14``), then blocks separated by blank
lines that alternate title and abstract. There are no ids, authors or votes: a paper's
identity is its normalised title.
"""

import re
from datetime import date, datetime

from papers.sources import InvalidItem, PaperRecord, Parsed, SourceError, storable, title_key

DATE_HEADING = re.compile(r"^(?P<month>[A-Z][a-z]{2}) (?P<day>\d{1,2})$")
LONGEST_TITLE = 400
BLANK_LINE = re.compile(r"\n[ \t]*\n")


def resolve_year(month_day: str, today: date) -> date:
    """``Mar 14`` -> the most recent 14 March that is not after ``today``."""
    for year in (today.year, today.year - 1, today.year - 2, today.year - 3, today.year - 4):
        try:
            day = datetime.strptime(f"{month_day} {year}", "%b %d %Y").date()
        except ValueError:  # 29 Feb in a common year
            continue
        if day <= today:
            return day
    raise SourceError(f"date heading {month_day!r} is not a calendar date")


def parse(data: str, listing_date: date | None = None, today: date | None = None) -> Parsed:
    blocks = [
        " ".join(line.strip() for line in b.strip().splitlines())
        for b in BLANK_LINE.split(storable(data))
        if b.strip()
    ]
    if not blocks:
        raise SourceError("empty capture")
    heading = next((i for i, b in enumerate(blocks) if DATE_HEADING.match(b)), None)
    if heading is None:
        raise SourceError("no date heading such as 'Mar 14' found")
    listed_on = listing_date or resolve_year(blocks[heading], today or date.today())

    parsed = Parsed()
    seen: set[str] = set()
    body = blocks[heading + 1 :]
    i = position = 0
    while i < len(body):
        position += 1
        title = body[i]
        if len(title) > LONGEST_TITLE:
            parsed.invalid.append(
                InvalidItem(
                    position, f"expected a title, found a paragraph of {len(title)} characters"
                )
            )
            i += 1  # resynchronise: the next block is taken as a title
            continue
        if i + 1 >= len(body):
            parsed.invalid.append(InvalidItem(position, "title without an abstract", title))
            break
        abstract = body[i + 1]
        i += 2
        key = title_key(title)
        if not key:
            parsed.invalid.append(InvalidItem(position, "title has no letters or digits", title))
            continue
        if key in seen:
            parsed.warnings.append(f"item {position} repeats the title {title[:60]!r}; kept once")
            continue
        seen.add(key)
        parsed.records.append(
            PaperRecord(
                title=title, abstract=abstract, listed_on=listed_on, listing_position=position
            )
        )
    return parsed
