"""What the two writes every sent digest makes cost a worker: ``Digest.transitions.hand_off``
and ``record_sent`` as the plain statements they are (newsletter/models.py), against the same
two through the ORM. CPU time of this process per digest, the median of five rounds over
``N`` digests, in a scratch database (``<name>_transitions``)::

    DEVTOOLS=true .venv/bin/python -m devtools.transitions_cost [N]
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable

import django

ROUNDS = 5


def main(n: int) -> None:
    from django.conf import settings
    from django.test.utils import override_settings
    from django.utils import timezone

    from devtools import harness
    from newsletter.models import Digest, Subscriber

    active, queued = Subscriber.Status.ACTIVE, Digest.Status.QUEUED

    def as_sql(digest_id: int) -> None:
        assert Digest.transitions.hand_off(digest_id)
        Digest.transitions.record_sent(digest_id, f"<{digest_id}@example.org>")

    def through_the_orm(digest_id: int) -> None:
        readers = Subscriber.objects.filter(status=active)
        this = Digest.objects.filter(id=digest_id)
        assert this.filter(status=queued, subscriber__in=readers).update(
            status=Digest.Status.SENDING, handed_off_at=timezone.now()
        )
        this.update(
            status=Digest.Status.SENT,
            sent_at=timezone.now(),
            message_id=f"<{digest_id}@example.org>",
        )

    ways: dict[str, Callable[[int], None]] = {"SQL": as_sql, "ORM": through_the_orm}
    scratch = harness.ScratchDatabase("transitions")
    scratch.create(harness.process_env(scratch.url, settings.CELERY_BROKER_URL))
    try:
        with override_settings(DEBUG=False), scratch.use():
            readers = Subscriber.objects.bulk_create(
                Subscriber(email=f"reader{i}@example.org", status=active) for i in range(n)
            )
            cpu_ms: dict[str, list[float]] = {name: [] for name in ways}
            for round_ in range(ROUNDS):
                order = list(ways) if round_ % 2 == 0 else list(reversed(ways))
                for name in order:
                    Digest.objects.all().delete()
                    digests = Digest.objects.bulk_create(
                        Digest(subscriber=r, period=f"round {round_}") for r in readers
                    )
                    started = time.process_time()
                    for digest in digests:
                        ways[name](digest.id)
                    cpu_ms[name].append((time.process_time() - started) / n * 1000)
    finally:
        scratch.drop()
    for name, figures in cpu_ms.items():
        shown = ", ".join(f"{f:.3f}" for f in figures)
        print(f"{name}: {statistics.median(figures):.3f} ms of CPU per digest ({shown})")


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
