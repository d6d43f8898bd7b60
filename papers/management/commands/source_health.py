import sys
from typing import Any

from django.core.management.base import BaseCommand

from papers.health import SCHEDULED, source_health, when


class Command(BaseCommand):
    help = "Each paper source's health: last success, last failure and why, new papers in 24 h."

    def handle(self, *args: Any, **options: Any) -> None:
        health = source_health()
        for source in health:
            self.stdout.write(f"{source.label} [{source.source or 'by hand'}]: {source.status}")
            self.stdout.write(f"  last success: {when(source.last_success)}")
            failure = f" ({source.failure})" if source.failure else ""
            self.stdout.write(f"  last failure: {when(source.last_failure)}{failure}")
            self.stdout.write(f"  new papers in the last 24 h: {source.new_24h}")
            if source.silent_since:
                self.stdout.write(f"  silent since {when(source.silent_since)}")
        if not health:
            self.stdout.write("No source has run yet.")
        # Non-zero when a scheduled source needs looking at, for monitoring.
        if any(s.source in SCHEDULED and s.status in ("failing", "silent") for s in health):
            sys.exit(1)
