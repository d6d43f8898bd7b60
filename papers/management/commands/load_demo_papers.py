import json
from collections import defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q
from django.utils import timezone

from papers.importing import ImportSummary, import_sources, parse_source
from papers.models import Paper
from papers.sources import PaperRecord, title_key

SEEDS = Path(__file__).resolve().parents[2] / "seeds"
# Real papers' Daily Papers metadata (ids, authors, votes, links), each item naming its source.
CATALOGUE = SEEDS / "daily-papers.json"


class Command(BaseCommand):
    help = (
        "Import the bundled Daily Papers captures and demo catalogue as the last few days' "
        "listings, so a demo has fresh papers with ids, votes and links to rank and send."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        today = timezone.now().date()
        total = ImportSummary()
        listings: list[tuple[str, str, date | None]] = [
            (str(capture), "text", today - timedelta(days=days_ago))
            for days_ago, capture in enumerate(sorted(SEEDS.glob("*.txt")))
        ]
        listings.append((str(dated_catalogue(today)), "hf-json", None))
        for source, fmt, day in listings:
            summary = import_sources([source], fmt, day)
            if not summary.ok:
                raise CommandError(f"{source}: {(summary.failed + summary.invalid)[0]}")
            for outcome in ("new", "updated", "unchanged"):
                setattr(total, outcome, getattr(total, outcome) + getattr(summary, outcome))
            # The importer keeps a paper's earliest listing day; a demo run on a later day
            # lists the bundled papers anew, relative to that day.
            list_again(parse_source(source, fmt, day)[1].records)
        if options["verbosity"]:
            self.stdout.write(
                f"Demo catalogue: {total.new} new, {total.updated} updated, {total.unchanged} "
                f"unchanged papers, listed over the last {len(listings) - 1} days."
            )


def dated_catalogue(today: date) -> Path:
    """The demo catalogue with its listing days moved so the latest is ``today`` (a copy
    under var/; the bundled file stays as published)."""
    data = json.loads(CATALOGUE.read_text(encoding="utf-8"))
    items = data["dailyPapers"]
    listed = [day for item in items if (day := listing_day(item)) is not None]
    shift = today - max(listed)
    for item in items:
        if (day := listing_day(item)) is not None:
            moved = f"{day + shift}T00:00:00.000Z"
            item["paper"]["submittedOnDailyAt"] = item["publishedAt"] = moved
    path = Path(settings.VAR_DIR) / "demo" / CATALOGUE.name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def listing_day(item: dict[str, Any]) -> date | None:
    value = item["paper"].get("submittedOnDailyAt")
    return datetime.fromisoformat(value.replace("Z", "+00:00")).date() if value else None


def list_again(records: list[PaperRecord]) -> None:
    """Set each record's paper's listing day to the record's (one update per day)."""
    by_day: dict[date, list[PaperRecord]] = defaultdict(list)
    for record in records:
        if record.listed_on:
            by_day[record.listed_on].append(record)
    for day, listed in by_day.items():
        ids = [r.arxiv_id for r in listed if r.arxiv_id]
        keys = [title_key(r.title) for r in listed]
        Paper.objects.filter(Q(arxiv_id__in=ids) | Q(title_key__in=keys)).update(listed_on=day)
