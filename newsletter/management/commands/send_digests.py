import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone
from tqdm import tqdm

from newsletter import digests
from newsletter.models import Subscriber
from papers.models import Paper
from papers.ranking import Section


class Command(BaseCommand):
    help = "Run one scheduling round by hand: compose and send the digests that are due."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--now", action="store_true", help="treat every active subscriber as due now"
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="print who would get which papers; send nothing"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        now = timezone.now()
        if options["dry_run"]:
            self.dry_run(now, everyone=options["now"])
            return
        if options["now"]:
            digests.make_everyone_due(now)
        totals = {"sent": 0, "failed": 0, "cancelled": 0, "retry later": 0}
        with tqdm(unit="subscriber", file=sys.stderr, leave=False) as bar:
            while ids := digests.claim_due_subscribers(now, settings.DIGEST_CHUNK_SIZE):
                result = digests.send_queued(digests.compose_chunk(ids, now))
                totals["sent"] += result.sent
                totals["failed"] += result.failed
                totals["cancelled"] += result.cancelled
                totals["retry later"] += len(result.retry)
                bar.update(len(ids))
        self.stdout.write(", ".join(f"{n} {what}" for what, n in totals.items()))

    def dry_run(self, now: Any, everyone: bool) -> None:
        """Plan the due subscribers a chunk at a time, as the workers would (a whole
        population at once would hold every reader's candidates in memory)."""
        due = Subscriber.objects.filter(status=Subscriber.Status.ACTIVE)
        if not everyone:
            due = due.filter(next_digest_at__lte=now)
        ids = list(due.order_by("id").values_list("id", flat=True))
        for start in range(0, len(ids), settings.DIGEST_CHUNK_SIZE):
            chunk = ids[start : start + settings.DIGEST_CHUNK_SIZE]
            chosen = Subscriber.objects.filter(id__in=chunk).order_by("id")
            subscribers = list(digests.for_planning(chosen))
            self.print_plans(subscribers, digests.plan_digests(subscribers, now))

    def print_plans(self, subscribers: list[Subscriber], plans: dict[int, digests.Plan]) -> None:
        titles = dict(
            Paper.objects.filter(
                id__in={p.key for picks in plans.values() for p in picks}
            ).values_list("id", "title")
        )
        for subscriber in subscribers:
            picks = plans[subscriber.id]
            count = f"{len(picks)} paper{'' if len(picks) == 1 else 's'}"
            if not picks:
                count = "nothing passes the relevance floor, no digest"
            elif all(p.section == Section.TRENDING for p in picks):
                count = f"nothing passes the relevance floor: {count} trending instead"
            self.stdout.write(f"{subscriber.email}: {count}")
            for rank, pick in enumerate(picks, 1):
                self.stdout.write(f"  {rank:>2}. {titles[pick.key][:80]}  ({pick.reason.text})")
