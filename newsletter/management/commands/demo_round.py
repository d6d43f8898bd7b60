import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from newsletter.models import Digest, InterestProfile, Subscriber
from newsletter.tasks import dispatch_digests
from papers.models import Topic

DEMO_READERS = [
    (
        "graphs@demo.paperboy",
        ["graph neural networks", "message passing"],
        ["graph-neural-networks"],
    ),
    ("pixels@demo.paperboy", ["diffusion models", "image editing"], ["diffusion-models"]),
    ("llm@demo.paperboy", ["large language models", "reasoning", "instruction tuning"], []),
    ("edge@demo.paperboy", ["quantization", "efficient inference", "pruning"], []),
]


class Command(BaseCommand):
    help = (
        "Create demo subscribers with different interests, send them a round of digests "
        "through the running Celery worker, and print where each email was written."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--timeout", type=int, default=180, help="seconds to wait")

    def handle(self, *args: Any, **options: Any) -> None:
        now = timezone.now()
        readers = []
        for email, keywords, topic_slugs in DEMO_READERS:
            reader, _ = Subscriber.objects.update_or_create(
                email=email,
                defaults={
                    "status": Subscriber.Status.ACTIVE,
                    "confirmed_at": now,
                    "next_digest_at": now,
                    "claimed_at": None,
                },
            )
            profile, _ = InterestProfile.objects.update_or_create(
                subscriber=reader, slot=1, defaults={"keywords": keywords}
            )
            profile.topics.set(Topic.objects.filter(slug__in=topic_slugs))
            readers.append(reader)
        # A fresh round: the demo may run again the same day.
        Digest.objects.filter(subscriber__in=readers).delete()
        outbox = Path(settings.EMAIL_FILE_PATH)
        before = set(outbox.glob("*.eml")) if outbox.exists() else set()

        dispatch_digests.delay()
        self.stdout.write("Sending the demo readers a round of digests through the worker...")
        deadline = time.monotonic() + options["timeout"]
        while Digest.objects.filter(subscriber__in=readers, status__in=["queued"]).exists() or (
            Digest.objects.filter(subscriber__in=readers).count() < len(readers)
        ):
            if time.monotonic() > deadline:
                raise CommandError("the worker did not finish the round in time; is it running?")
            time.sleep(0.5)

        written = sorted(set(outbox.glob("*.eml")) - before) if outbox.exists() else []
        self.stdout.write(f"Their emails, in {outbox}/:")
        for digest in Digest.objects.filter(subscriber__in=readers).select_related("subscriber"):
            address = digest.subscriber.email  # type: ignore[union-attr]
            files = [p.name for p in written if f"-{address}-" in p.name]
            status, papers = digest.get_status_display().lower(), digest.items.count()
            self.stdout.write(f"  {address}: {status}, {papers} papers  {' '.join(files)}")
