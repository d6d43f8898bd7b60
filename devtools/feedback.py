"""Simulated readers who learn the ranking what they want, through the product's own paths.

Each reader has a hidden interest (a judged profile of ``papers/evaluation_set.json``: the
papers judged relevant to it) and starts vague: subscribed to one topic only. The bundled
captures are spread over catalogue days; each day every reader gets a digest composed by
``compose_chunk``, as a worker composes it, and presses "more like this" on the relevant
papers and "less like this" on the others through the links the email carries (the feedback
view at ``/digest/<token>/<paper>/more/``). Precision@size per round says how fast the
ranking learns.

It is development tooling, beside the benchmark in ``devtools`` and out of the production
image: it drives the newsletter's composition and its feedback links (with Django's test
client), and ``papers`` never imports ``newsletter``, so the pure nDCG evaluation
(``papers.evaluation``) could not run it. Everything happens in one transaction that is
rolled back: the database is left as it was. Run it on a database without other papers for
the published figures (the catalogue model is fitted on every paper there is).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from statistics import fmean
from urllib.parse import urlsplit

import time_machine
from django.conf import settings
from django.db import transaction
from django.test import Client
from django.utils import timezone

from newsletter.digests import TO_RENDER, compose_chunk
from newsletter.emails import digest_context
from newsletter.models import Digest, InterestProfile, Subscriber
from papers.evaluation import Profile
from papers.models import Paper, Topic
from papers.sources import PaperRecord, title_key

DAYS = 8
SIZE = 5
# Far in the future: no paper already in the database is listed in the simulated window.
FIRST_DAY = datetime(3000, 1, 3, 8, 0, tzinfo=UTC)


AGENT = "Mozilla/5.0 (simulated reader)"
# A reader presses one link, reads, presses the next: a minute apart (links followed within
# seconds of each other are a mail scanner's, and count for nothing: ``tracking.scanned``).
BETWEEN_PRESSES = timedelta(minutes=1)
SEEDS = 3  # orders of the catalogue over the days, averaged: one order is a noisy curve


@dataclass
class Curve:
    """Mean precision@size over the readers, round by round (round 1 is before any
    feedback): readers who press the links, the same readers silent (no feedback at all),
    and the best any ranking could do with each day's papers."""

    size: int
    readers: int
    precision: list[float] = field(default_factory=list)
    silent: list[float] = field(default_factory=list)
    best_possible: list[float] = field(default_factory=list)
    per_reader: dict[str, list[float]] = field(default_factory=dict)  # the first order's
    # The same three curves over each split's readers only ("tuning", "validation"): the
    # ranking is tuned on the tuning split's readers, and the validation split says whether
    # that generalises.
    splits: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    best_per_reader: dict[str, list[float]] = field(default_factory=dict)
    split_of: dict[str, str] = field(default_factory=dict)  # reader name -> split


def simulate(
    records: Sequence[PaperRecord],
    profiles: Sequence[Profile],
    days: int = DAYS,
    size: int = SIZE,
    seeds: int = SEEDS,
) -> Curve:
    """Run the simulated readers over ``records``, spread over ``days`` catalogue days in
    ``seeds`` random orders, pressing and silent, and average; everything is rolled back."""
    runs: dict[bool, list[Curve]] = {True: [], False: []}
    for seed in range(seeds):
        for press in (True, False):
            with transaction.atomic():
                try:
                    runs[press].append(_simulate(records, profiles, days, size, seed, press))
                finally:
                    transaction.set_rollback(True)
    first = runs[True][0]

    def mean(curves: list[Curve], attribute: str) -> list[float]:
        return [
            fmean(values) for values in zip(*(getattr(c, attribute) for c in curves), strict=True)
        ]

    splits = {}
    for split in sorted(set(first.split_of.values())):
        splits[split] = {
            "precision": _split_mean(runs[True], split, "per_reader"),
            "silent": _split_mean(runs[False], split, "per_reader"),
            "best_possible": _split_mean(runs[True], split, "best_per_reader"),
        }
    return Curve(
        size=size,
        readers=first.readers,
        precision=mean(runs[True], "precision"),
        silent=mean(runs[False], "precision"),
        best_possible=mean(runs[True], "best_possible"),
        per_reader=first.per_reader,
        splits=splits,
        split_of=first.split_of,
    )


def _split_mean(curves: list[Curve], split: str, attribute: str) -> list[float]:
    """Round by round, the mean over ``curves`` and over the readers of ``split``."""
    rows = [
        values
        for curve in curves
        for name, values in getattr(curve, attribute).items()
        if curve.split_of[name] == split
    ]
    return [fmean(column) for column in zip(*rows, strict=True)]


def _simulate(
    records: Sequence[PaperRecord],
    profiles: Sequence[Profile],
    days: int,
    size: int,
    seed: int,
    press: bool,
) -> Curve:
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    # Each paper's day; a day's papers join the catalogue that morning, as an import would.
    daily: list[list[Paper]] = [[] for _ in range(days)]
    for n, i in enumerate(order):
        day = n * days // len(order)
        daily[day].append(
            Paper(
                title=records[i].title,
                title_key=title_key(records[i].title),
                abstract=records[i].abstract,
                source="text",
                listed_on=(FIRST_DAY + timedelta(days=day)).date(),
            )
        )
    topics = {t.slug: t for t in Topic.objects.all()}
    readers: dict[int, set[str]] = {}  # subscriber -> the papers relevant to them
    names: dict[int, str] = {}
    splits: dict[str, str] = {}
    for n, profile in enumerate(profiles):
        subscriber = Subscriber.objects.create(
            email=f"simulated-{n}@readers.invalid",
            status=Subscriber.Status.ACTIVE,
            digest_size=size,
        )
        interests = InterestProfile.objects.create(subscriber=subscriber, trending_weight=0.2)
        interests.topics.set([topics[profile.start_topic]])
        readers[subscriber.id] = {title_key(t) for t in profile.relevant}
        names[subscriber.id] = profile.name
        splits[profile.name] = profile.split
    client = Client(HTTP_HOST=urlsplit(settings.SITE_URL).hostname or "localhost")
    curve = Curve(size=size, readers=len(readers))
    per_reader: dict[int, list[float]] = {r: [] for r in readers}
    best_per_reader: dict[int, list[float]] = {r: [] for r in readers}
    seen: dict[int, set[str]] = {r: set() for r in readers}
    keys: dict[int, str] = {}  # paper id -> its title key
    pressed_at = timezone.now()  # the clock of the readers' presses (links expire by it)
    for day in range(days):
        now = FIRST_DAY + timedelta(days=day)
        keys.update((p.pk, p.title_key) for p in Paper.objects.bulk_create(daily[day]))
        # The window a daily digest draws from: today's and yesterday's papers.
        listed = {p.title_key for p in daily[day] + (daily[day - 1] if day else [])}
        Subscriber.objects.filter(id__in=readers).update(next_digest_at=now, claimed_at=now)
        composed = compose_chunk(list(readers), now)
        digests = list(
            Digest.objects.filter(id__in=composed).prefetch_related(*TO_RENDER).order_by("id")
        )
        Digest.objects.filter(id__in=composed).update(status=Digest.Status.SENT, sent_at=now)
        best: list[float] = []
        picked: dict[int, Digest] = {d.subscriber_id or 0: d for d in digests}
        for reader, relevant in readers.items():
            # What the day could offer: relevant papers of the window this reader has not had.
            offered = (listed & relevant) - seen[reader]
            best.append(min(len(offered), size) / size)
            best_per_reader[reader].append(best[-1])
            digest = picked.get(reader)
            hits = 0
            if digest is not None:
                for item in digest_context(digest)["items"]:
                    paper = keys[item.paper_id]
                    liked = paper in relevant
                    hits += liked
                    seen[reader].add(paper)
                    link = item.more_url if liked else item.less_url
                    if press:
                        pressed_at += BETWEEN_PRESSES
                        with time_machine.travel(pressed_at, tick=False):
                            client.get(urlsplit(link).path, HTTP_USER_AGENT=AGENT)
            per_reader[reader].append(hits / size)
        curve.precision.append(fmean(p[-1] for p in per_reader.values()))
        curve.best_possible.append(fmean(best))
    curve.per_reader = {names[r]: values for r, values in per_reader.items()}
    curve.best_per_reader = {names[r]: values for r, values in best_per_reader.items()}
    curve.split_of = splits
    return curve
