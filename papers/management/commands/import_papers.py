import sys
from collections.abc import Iterable
from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from papers.importing import FORMATS, import_sources
from papers.sources import PaperRecord


def parse_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--date {value!r} is not a date, use YYYY-MM-DD") from None


class Command(BaseCommand):
    help = "Import papers from files or URLs (Daily Papers JSON/HTML, arXiv Atom/RSS, text)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("sources", nargs="+", metavar="SOURCE", help="a file path or an URL")
        parser.add_argument("--format", choices=FORMATS, default="auto")
        parser.add_argument(
            "--date", help="listing date YYYY-MM-DD for sources that carry none (text captures)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        listing_date = parse_date(options["date"]) if options["date"] else None

        def progress(records: Iterable[PaperRecord], label: str) -> Iterable[PaperRecord]:
            return tqdm(records, desc=label[:30], unit=" papers", file=sys.stderr, leave=False)

        summary = import_sources(options["sources"], options["format"], listing_date, progress)
        for warning in summary.warnings:
            self.stderr.write(f"warning: {warning}")
        for problem in summary.invalid:
            self.stderr.write(f"invalid: {problem}")
        for problem in summary.failed:
            self.stderr.write(f"failed: {problem}")
        self.stdout.write(
            f"{summary.new} new, {summary.updated} updated, {summary.unchanged} unchanged, "
            f"{summary.skipped} skipped, {len(summary.invalid)} invalid, "
            f"{len(summary.failed)} sources failed"
        )
        if not summary.ok:
            sys.exit(1)
