from datetime import timedelta
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

from papers.importing import import_sources

SEEDS = Path(__file__).resolve().parents[2] / "seeds"


class Command(BaseCommand):
    help = (
        "Import the bundled Daily Papers captures as the last few days' listings, "
        "so a demo has fresh papers to rank and send."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        today = timezone.now().date()
        for days_ago, capture in enumerate(sorted(SEEDS.glob("*.txt"))):
            summary = import_sources([str(capture)], "text", today - timedelta(days=days_ago))
            self.stdout.write(
                f"{capture.name}: {summary.new} new, {summary.updated} updated, "
                f"{summary.unchanged} unchanged"
            )
