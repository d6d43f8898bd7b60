import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from devtools import chaos
from devtools.harness import HarnessError


class Command(BaseCommand):
    help = (
        "Run the digest pipeline under faults (killed worker, double dispatch, flaky SMTP, Redis "
        "restart, PostgreSQL cut, stops after the claim) in a scratch database; exit non-zero "
        "on any duplicate, loss or unwanted mail."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--subscribers", type=int, default=1000, metavar="N")
        parser.add_argument("--chunk", type=int, default=50, metavar="K")
        parser.add_argument("--timeout", type=float, default=300, help="seconds per case")
        parser.add_argument(
            "--case", action="append", choices=list(chaos.CASES), help="only these (repeatable)"
        )
        parser.add_argument("--json", action="store_true", help="end with one line of JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        names = options["case"] or list(chaos.CASES)
        header = f"{'case':<58} {'due':>5} {'received':>8} {'dup':>4} {'lost':>4} {'failed':>6} {'unwanted':>8} {'s':>6}"  # noqa: E501
        self.stdout.write(header)

        def report(o: chaos.Outcome) -> None:
            self.stdout.write(
                f"{o.case:<58} {o.due:>5} {o.received:>8} {o.duplicates:>4} {o.lost:>4} "
                f"{o.failed:>6} {o.unwanted:>8} {o.seconds:>6.0f}  {'ok' if o.ok else 'FAILED'}"
            )
            for note in o.notes:
                self.stdout.write(f"    {note}")

        try:
            outcomes = chaos.run_cases(
                names, options["subscribers"], options["chunk"], options["timeout"], report
            )
        except HarnessError as exc:
            raise CommandError(str(exc)) from exc
        if options["json"]:
            self.stdout.write(json.dumps([o.__dict__ | {"ok": o.ok} for o in outcomes]))
        if not all(o.ok for o in outcomes):
            sys.exit(1)
