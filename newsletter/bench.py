"""The digest benchmark behind ``manage.py bench_digests``: a synthetic population in a scratch
database, the real pipeline (dispatch, compose, send) through Celery workers on Redis into an
SMTP server on loopback that counts what it receives, in-process timings of the parts, and a
naive one-subscriber-at-a-time baseline on the same population.

Nothing here touches real data: ``ScratchDatabase`` creates ``<name>_bench`` next to the
configured PostgreSQL database (a file under ``var/`` with SQLite), migrates it in a
subprocess and points this process and the workers at it.
"""

from __future__ import annotations

import logging
import os
import pickle
import platform
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import numpy as np
from django.conf import settings
from django.core.mail import get_connection
from django.db import connection, transaction
from django.db.models import Count, Prefetch
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from config.celery import freeze_startup_objects
from newsletter import digests
from newsletter.models import Digest, DigestItem, InterestProfile, ProfilePaper, Subscriber
from papers import evaluation, ranking
from papers.models import Paper, PaperSnapshot, Topic
from papers.ranking_data import paper_text
from papers.sources import PaperRecord, text, title_key

ROOT = Path(settings.BASE_DIR)
SEEDS = ROOT / "papers" / "seeds"
BATCH = 2000

# --- Synthetic population -----------------------------------------------------------------------


def phrases(text: str, sep: str = "|") -> list[str]:
    return [p.strip() for p in text.split(sep) if p.strip()]


# What researchers following each seeded topic type as keywords (a mix of phrases and acronyms).
TOPIC_KEYWORDS: dict[str, list[str]] = {
    "diffusion-models": phrases(
        "diffusion models | classifier-free guidance | latent diffusion | text-to-image | "
        "image editing | consistency models | score-based generative models | one-step generation"
    ),
    "large-language-models": phrases(
        "large language models | instruction tuning | scaling laws | long context | "
        "LoRA | tokenization | in-context learning | pretraining data"
    ),
    "llm-reasoning-agents": phrases(
        "chain-of-thought | LLM agents | tool use | test-time compute | "
        "mathematical reasoning | reward models | web agents | reasoning"
    ),
    "computer-vision": phrases(
        "object detection | semantic segmentation | vision transformers | "
        "image classification | depth estimation | instance segmentation"
    ),
    "3d-vision": phrases(
        "neural radiance fields | gaussian splatting | 3D reconstruction | "
        "novel view synthesis | point clouds | text-to-3D"
    ),
    "video-generation": phrases(
        "video generation | video diffusion | temporal consistency | "
        "video editing | motion generation | frame interpolation"
    ),
    "speech-audio": phrases(
        "speech recognition | text-to-speech | audio generation | "
        "music generation | speaker verification | audio codec"
    ),
    "reinforcement-learning": phrases(
        "reinforcement learning | offline reinforcement learning | policy gradient | "
        "RLHF | exploration | model-based reinforcement learning | bandits"
    ),
    "robotics-embodied-ai": phrases(
        "robot manipulation | imitation learning | vision-language-action | "
        "sim-to-real | autonomous driving | legged locomotion"
    ),
    "graph-neural-networks": phrases(
        "graph neural networks | message passing | link prediction | "
        "node classification | knowledge graphs | heterophily | graph transformers"
    ),
    "efficient-inference": phrases(
        "quantization | pruning | knowledge distillation | "
        "KV cache | mixture of experts | efficient attention | binary neural networks"
    ),
    "multimodal-models": phrases(
        "vision-language models | multimodal large language models | "
        "CLIP | visual question answering | image captioning"
    ),
    "retrieval-rag": phrases(
        "retrieval-augmented generation | dense retrieval | "
        "reranking | embedding models | nearest neighbor search"
    ),
    "ai-safety-alignment": phrases(
        "jailbreak | red teaming | interpretability | preference optimization | "
        "hallucination | adversarial robustness | uncertainty calibration | differential privacy"
    ),
    "optimization-training": phrases(
        "optimizers | learning rate schedules | neural tangent kernel | "
        "generalization | backpropagation | distributed training"
    ),
    "self-supervised-learning": phrases(
        "contrastive learning | masked autoencoders | "
        "self-supervised learning | representation learning | metric learning"
    ),
    "medical-scientific-ml": phrases(
        "medical image segmentation | protein structure | molecule generation | "
        "physics-informed neural networks | neural operators | fMRI"
    ),
    "code-generation": phrases(
        "code generation | program synthesis | code LLMs | program repair | HumanEval"
    ),
    "time-series": phrases(
        "time series forecasting | anomaly detection | "
        "state space models | temporal point processes | traffic forecasting"
    ),
    "datasets-benchmarks": phrases(
        "benchmark | data contamination | evaluation protocol | dataset"
    ),
}
# How many readers (and papers) each area draws, relative to the others.
POPULARITY = {
    "large-language-models": 4.0,
    "llm-reasoning-agents": 3.5,
    "diffusion-models": 2.5,
    "multimodal-models": 2.5,
    "computer-vision": 2.0,
    "video-generation": 1.5,
    "3d-vision": 1.5,
    "efficient-inference": 1.5,
    "reinforcement-learning": 1.5,
    "robotics-embodied-ai": 1.5,
}
EXCLUDED = ["survey", "benchmark", "medical", "dataset", "theoretical"]
TIME_ZONES = [
    "UTC",
    "Europe/London",
    "Europe/Paris",
    "Europe/Berlin",
    "America/New_York",
    "America/Los_Angeles",
    "Asia/Shanghai",
    "Asia/Tokyo",
    "Asia/Kolkata",
    "Australia/Sydney",
]
FIRST_NAMES = phrases(
    "Wei Yuki Anna Omar Lucas Priya Chen Sofia Diego Fatima Jonas Mei Ravi Elena Tomás Aisha "
    "Hiroshi Leila Marco Nadia Sven Ines Kwame Olga Jun Zara Mateo Hana Arjun Clara",
    " ",
)
LAST_NAMES = phrases(
    "Zhang Wang Tanaka Müller Smith Kumar Garcia Rossi Kim Nguyen Dubois Ivanova Okafor Silva "
    "Li Chen Hernández Novak Sato Schmidt Patel Cohen Andersen Costa Park Khan Moreau Yamamoto",
    " ",
)
NAME_PARTS = phrases(
    "Flow Graph Diff Mix Sparse Token Vision Mamba Quant Fusion Align Edit Gen Scale Prompt "
    "Agent Mem Seg Pose Omni Uni Hyper Meta Auto Deep Fast Lite Turbo Octo Nova Sky Echo",
    " ",
)
ADJECTIVES = phrases(
    "Efficient Scalable Robust Unified Adaptive Training-free Controllable Sparse Hierarchical "
    "Self-supervised Lightweight Generalizable Faithful Compositional",
    " ",
)
DATASETS = phrases(
    "ImageNet COCO GSM8K MMLU HumanEval LibriSpeech nuScenes ScanNet OGB D4RL MATH ShapeNet "
    "Kinetics-400 BEIR ETTh1 LongBench VQAv2 Objaverse",
    " ",
)
TITLE_TEMPLATES = [
    "{name}: {adj} {kw} for {kw2}",
    "{name}: {kw} with {kw2}",
    "Towards {adj} {kw}",
    "{adj} {kw} via {kw2}",
    "Scaling {kw} with {kw2}",
    "On the Limits of {kw} for {kw2}",
    "{name}: Rethinking {kw} in the Era of {kw2}",
    "What Makes {kw} Work? A Study of {kw2}",
]
OPENERS = [
    "{Kw} have advanced rapidly, yet {kw2} remains challenging.",
    "Recent progress in {kw} has enabled {kw2}, but existing methods scale poorly.",
    "We study {kw} in the setting of {kw2}.",
    "Despite the success of {kw}, little is known about {kw2}.",
    "{Kw} is central to many applications, from {kw2} to {kw3}.",
]
CLOSERS = [
    "We propose {name}, a {adj_l} approach to {kw} that builds on {kw2}.",
    "We introduce {name}, which combines {kw} and {kw2} in a single framework.",
    "To address this, we present {name}, a {adj_l} method for {kw}.",
]
RESULTS = [
    "Experiments on {dataset} show that {name} outperforms strong baselines.",
    "On {dataset}, {name} improves over the state of the art while using less compute.",
    "Code and models are available at https://github.com/{user}/{repo}.",
    "Extensive experiments on {dataset} and {dataset2} demonstrate the effectiveness of {name}.",
]
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def _capitalise(phrase: str) -> str:
    return phrase[:1].upper() + phrase[1:]


def _title_case(phrase: str) -> str:
    return " ".join(w if w[:1].isupper() else w.capitalize() for w in phrase.split())


def bundled_records(listing_date: Any) -> list[PaperRecord]:
    """The bundled Daily Papers captures, parsed by the real text parser, as of ``listing_date``;
    a paper listed on two days is one paper, as the importer makes it."""
    records: dict[str, PaperRecord] = {}
    for capture in sorted(SEEDS.glob("*.txt")):
        parsed = text.parse(capture.read_text(encoding="utf-8"), listing_date=listing_date)
        for record in parsed.records:
            records.setdefault(title_key(record.title), record)
    return list(records.values())


class Writer:
    """Realistic titles and abstracts from the bundled abstracts' sentences and each area's
    vocabulary, recombined with a seeded random generator."""

    def __init__(self, rng: random.Random, seeds: list[PaperRecord]) -> None:
        self.rng = rng
        self.areas = list(TOPIC_KEYWORDS)
        self.weights = [POPULARITY.get(a, 1.0) for a in self.areas]
        self.sentences: dict[str, list[str]] = {a: [] for a in self.areas}
        self.general: list[str] = []
        for record in seeds:
            for sentence in SENTENCE_END.split(record.abstract):
                if not 40 <= len(sentence) <= 400:
                    continue
                lower = sentence.lower()
                areas = [
                    a for a in self.areas if any(k.lower() in lower for k in TOPIC_KEYWORDS[a])
                ]
                for area in areas:
                    self.sentences[area].append(sentence)
                if not areas:
                    self.general.append(sentence)

    def area(self) -> str:
        return self.rng.choices(self.areas, self.weights)[0]

    def paper(self, position: int, listing_date: Any) -> PaperRecord:
        rng = self.rng
        area = self.area()
        other = self.area()
        kw, kw2 = rng.sample(TOPIC_KEYWORDS[area], 2)
        kw3 = rng.choice(TOPIC_KEYWORDS[other])
        name = "".join(rng.sample(NAME_PARTS, 2)) + rng.choice(["", "", "-2", "++", "-R1", "3D"])
        user = rng.choice(LAST_NAMES).lower() + rng.choice(["lab", "-group", "ai", ""])
        words = {
            "name": name,
            "adj": rng.choice(ADJECTIVES),
            "adj_l": rng.choice(ADJECTIVES).lower(),
            "kw": kw,
            "kw2": kw2 if rng.random() < 0.7 else kw3,
            "kw3": kw3,
            "Kw": _capitalise(kw),
            "dataset": rng.choice(DATASETS),
            "dataset2": rng.choice(DATASETS),
            "user": user,
            "repo": name.lower(),
        }
        title_words = {**words, "kw": _title_case(kw), "kw2": _title_case(str(words["kw2"]))}
        title = rng.choice(TITLE_TEMPLATES).format(**title_words)
        pool = self.sentences[area] or self.general
        body = [rng.choice(pool if rng.random() < 0.6 else self.general) for _ in range(4)]
        abstract = " ".join(
            [
                rng.choice(OPENERS).format(**words),
                *body[: rng.randint(2, 4)],
                rng.choice(CLOSERS).format(**words),
                rng.choice(RESULTS).format(**words),
            ]
        )
        authors = [
            f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}" for _ in range(rng.randint(2, 9))
        ]
        return PaperRecord(
            title=title,
            abstract=abstract,
            arxiv_id=f"{listing_date:%y%m}.{10000 + position:05d}",
            authors=authors,
            listed_on=listing_date,
            listing_position=position,
            github_repo=f"https://github.com/{user}/{name.lower()}" if rng.random() < 0.3 else "",
            ai_summary=(f"{name} improves {kw} by drawing on {kw2}." if rng.random() < 0.5 else ""),
            ai_keywords=rng.sample(TOPIC_KEYWORDS[area], 3) if rng.random() < 0.4 else [],
        )


def create_papers(rng: random.Random, count: int, now: datetime) -> list[Paper]:
    """``count`` papers listed today: the bundled captures first, then generated ones, with
    heavy-tailed votes, each with the engagement snapshot an import records."""
    today = now.date()
    seeds = bundled_records(today)
    records = seeds[:count]
    writer = Writer(rng, seeds)
    records += [writer.paper(len(seeds) + i, today) for i in range(count - len(records))]
    papers = []
    for position, record in enumerate(records, 1):
        record.listing_position = position
        record.upvotes = min(int(rng.paretovariate(1.1)) - 1, 2000)
        record.comments = int(record.upvotes * rng.random() * 0.2)
        paper = Paper(source="text" if record.arxiv_id is None else "hf-json", title=record.title)
        paper.merge(record)
        papers.append(paper)
    Paper.objects.bulk_create(papers, batch_size=BATCH)
    PaperSnapshot.objects.bulk_create(
        (
            PaperSnapshot(paper=p, taken_at=now, upvotes=p.upvotes, comments=p.comments)
            for p in papers
        ),
        batch_size=BATCH,
    )
    return papers


def create_subscribers(
    rng: random.Random, count: int, papers: list[Paper], now: datetime
) -> list[int]:
    """``count`` active subscribers, all due now, with interests drawn from the seeded topics:
    a home area or two, some followed as topics, keywords of those areas (now and then one from
    elsewhere), a few excluded words and liked papers."""
    topics = {t.slug: t for t in Topic.objects.all()}
    areas = [a for a in TOPIC_KEYWORDS if a in topics] or list(TOPIC_KEYWORDS)
    weights = [POPULARITY.get(a, 1.0) for a in areas]
    due = now - timedelta(minutes=1)
    subscribers: list[Subscriber] = []
    profiles: list[InterestProfile] = []
    follows: list[list[int]] = []
    likes: list[list[Paper]] = []
    for n in range(count):
        home = list(dict.fromkeys(rng.choices(areas, weights, k=rng.choice([1, 1, 2, 2, 3]))))
        keywords = list(
            dict.fromkeys(
                rng.choice(TOPIC_KEYWORDS[rng.choice(home)]) for _ in range(rng.randint(1, 4))
            )
        )
        if rng.random() < 0.15:
            keywords.append(rng.choice(TOPIC_KEYWORDS[rng.choice(areas)]))
        followed = [topics[a].id for a in home if a in topics and rng.random() < 0.6]
        liked = rng.sample(papers, min(len(papers), rng.randint(1, 3)))
        weekly = rng.random() < 0.15
        subscribers.append(
            Subscriber(
                email=f"reader{n}@bench.example.org",
                status=Subscriber.Status.ACTIVE,
                frequency=Subscriber.Frequency.WEEKLY if weekly else Subscriber.Frequency.DAILY,
                weekday=now.weekday(),
                send_hour=rng.randint(5, 10),
                timezone=rng.choice(TIME_ZONES),
                digest_size=rng.choice([5, 10, 10, 10, 15]),
                confirmed_at=now - timedelta(days=rng.randint(1, 400)),
                next_digest_at=due,
            )
        )
        profiles.append(
            InterestProfile(
                trending_weight=rng.choice([0.0, 0.2, 0.2, 0.2, 0.5]),
                keywords=keywords,
                excluded_keywords=[rng.choice(EXCLUDED)] if rng.random() < 0.08 else [],
            )
        )
        follows.append(followed)
        likes.append(liked if rng.random() < 0.1 else [])
    Subscriber.objects.bulk_create(subscribers, batch_size=BATCH)
    for subscriber, profile in zip(subscribers, profiles, strict=True):
        profile.subscriber = subscriber
    InterestProfile.objects.bulk_create(profiles, batch_size=BATCH)
    InterestProfile.topics.through.objects.bulk_create(
        (
            InterestProfile.topics.through(interestprofile_id=p.id, topic_id=t)
            for p, ts in zip(profiles, follows, strict=True)
            for t in ts
        ),
        batch_size=BATCH * 5,
    )
    ProfilePaper.objects.bulk_create(
        (
            ProfilePaper(
                profile=profile,
                opinion=ProfilePaper.LIKED,
                ref=paper.arxiv_id or paper.title[:500],
                arxiv_id=paper.arxiv_id or "",
                paper=paper,
            )
            for profile, liked_papers in zip(profiles, likes, strict=True)
            for paper in liked_papers
        ),
        batch_size=BATCH * 5,
    )
    return [s.id for s in subscribers if s.id is not None]


# --- Scratch database ---------------------------------------------------------------------------


class ScratchDatabase:
    """A database of its own for the benchmark, migrated in a subprocess; while ``use()`` is
    active this process's default connection points at it."""

    def __init__(self, suffix: str = "bench") -> None:
        self.settings_dict = connection.settings_dict
        self.vendor = connection.vendor
        self.original_name = str(self.settings_dict["NAME"])
        if self.vendor == "postgresql":
            self.name = f"{self.original_name}_{suffix}"
            parts = urlsplit(settings.DATABASE_URL)
            self.url = parts._replace(path=f"/{self.name}").geturl()
        elif self.vendor == "sqlite":
            path = Path(settings.VAR_DIR) / f"{suffix}.sqlite3"
            self.name = str(path.resolve())
            self.url = f"sqlite:///{self.name}"
        else:
            raise BenchError(f"the benchmark supports PostgreSQL and SQLite, not {self.vendor}")

    def admin(self) -> Any:
        """A connection to the server's ``postgres`` database, to create and drop ours."""
        import psycopg

        db = self.settings_dict
        return psycopg.connect(
            host=db.get("HOST") or None,
            port=db.get("PORT") or None,
            user=db.get("USER") or None,
            password=db.get("PASSWORD") or None,
            dbname="postgres",
            autocommit=True,
        )

    def create(self, env: dict[str, str]) -> None:
        """Drop the scratch database if it exists, create it and run the migrations into it."""
        self.drop()
        if self.vendor == "postgresql":
            from psycopg import sql

            with self.admin() as admin:
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))
        migrate = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--no-input", "--verbosity=0"],
            cwd=ROOT,
            env={**env, "DATABASE_URL": self.url},
            capture_output=True,
            text=True,
        )
        if migrate.returncode:
            raise BenchError(f"migrating {self.name} failed:\n{migrate.stderr[-3000:]}")

    def drop(self) -> None:
        if self.vendor == "postgresql":
            from psycopg import sql

            with self.admin() as admin:
                admin.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(self.name)
                    )
                )
        else:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(self.name + suffix).unlink(missing_ok=True)

    @contextmanager
    def use(self) -> Iterator[None]:
        connection.close()
        self.settings_dict["NAME"] = self.name
        try:
            yield
        finally:
            connection.close()
            self.settings_dict["NAME"] = self.original_name


class BenchError(Exception):
    """The benchmark cannot run as asked; the message says why."""


# --- SMTP sink ----------------------------------------------------------------------------------


class CountingSink:
    """An aiosmtpd handler that counts messages and notes when the last one arrived."""

    def __init__(self) -> None:
        self.count = 0
        self.bytes = 0
        self.last = 0.0
        self.recipients: set[str] = set()
        self.duplicates = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        for recipient in envelope.rcpt_tos:
            if recipient in self.recipients:
                self.duplicates += 1
            self.recipients.add(recipient)
        self.bytes += len(envelope.original_content or envelope.content or b"")
        self.count += 1
        self.last = time.perf_counter()
        return "250 Message accepted for delivery"

    def reset(self) -> None:
        self.count = self.bytes = self.duplicates = 0
        self.last = 0.0
        self.recipients = set()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


Handler = TypeVar("Handler")


@contextmanager
def smtp_sink(handler: Handler) -> Iterator[tuple[Handler, int]]:
    """An aiosmtpd server on a free loopback port with ``handler``, while the block runs."""
    from aiosmtpd.controller import Controller

    # aiosmtpd logs every command at INFO; the progress bar says enough.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    port = free_port()
    # The default limit (33 MB) is fine; a digest is ~20 kB. No TLS: loopback only.
    controller = Controller(handler, hostname="127.0.0.1", port=port, ready_timeout=10)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@contextmanager
def email_to(port: int) -> Iterator[None]:
    """This process's emails go to the sink while the block runs."""
    names = ("EMAIL_BACKEND", "EMAIL_HOST", "EMAIL_PORT", "EMAIL_USE_TLS")
    saved = {name: getattr(settings, name) for name in names}
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_USE_TLS = "127.0.0.1", port, False
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(settings, name, value)


# --- Worker processes ---------------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += children.get(current, [])
    return found


def peak_rss_mb(pids: list[int]) -> dict[int, float]:
    """Each process's peak resident set size (VmHWM) in MB; processes gone are left out."""
    peaks = {}
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
        if match:
            peaks[pid] = int(match.group(1)) / 1024
    return peaks


@dataclass
class Workers:
    """``celery worker --concurrency=W`` on the benchmark's own queues, in a subprocess."""

    env: dict[str, str]
    concurrency: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    peaks: dict[int, float] = field(default_factory=dict)

    def start(self, timeout: float = 60) -> None:
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            f"--concurrency={self.concurrency}",
            "--pool=prefork",
            f"--hostname=bench{os.getpid()}@%h",
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while " ready." not in self.log_path.read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"the Celery worker did not start:\n{self.log_tail()}")
            time.sleep(0.1)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def sample(self) -> None:
        """Keep each worker process's peak RSS (read while they run: they vanish on exit)."""
        if self.process is not None:
            for pid, mb in peak_rss_mb(descendants(self.process.pid)).items():
                self.peaks[pid] = max(self.peaks.get(pid, 0.0), mb)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.sample()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text()[-chars:] if self.log_path.exists() else ""


def use_queues(prefix: str) -> None:
    """Tasks sent from this process go to the benchmark's own queues (the workers get the same
    CELERY_QUEUE_PREFIX), so no other worker on the same broker can take them (and the
    benchmark's workers take nothing else)."""
    from config.celery import app

    app.conf.task_default_queue = f"{prefix}celery"
    app.conf.task_routes = {
        task: {"queue": prefix + route["queue"]}
        for task, route in settings.CELERY_TASK_ROUTES.items()
    }
    app.amqp.flush_routes()
    purge_queues(prefix)


def purge_queues(prefix: str = "") -> None:
    """Empty every queue of ``settings.CELERY_TASK_QUEUES`` (names given the ``prefix``)."""
    from config.celery import app

    with app.connection_for_write() as conn:
        for queue in settings.CELERY_TASK_QUEUES:
            conn.default_channel.queue_purge(prefix + queue.name)


# --- The pipeline run ---------------------------------------------------------------------------


class Progress(Protocol):
    def update(self, n: int) -> Any: ...

    def close(self) -> Any: ...


@dataclass
class PipelineRun:
    expected: int
    received: int = 0
    duplicates: int = 0
    seconds: float = 0.0  # first claim to last message received
    dispatch_seconds: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)
    stalled: str = ""

    @property
    def per_second(self) -> float:
        return self.received / self.seconds if self.seconds else 0.0


def run_round(
    sink: CountingSink,
    expected: int,
    workers: Workers | None,
    stall_seconds: float,
    progress: Progress,
) -> PipelineRun:
    """Dispatch one round (``dispatch_digests``, here, as beat would have a worker run it) and
    wait until the sink has every message, the workers stall or die."""
    from newsletter.tasks import dispatch_digests

    run = PipelineRun(expected=expected)
    errors: list[BaseException] = []

    def dispatch() -> None:
        try:
            dispatch_digests()
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)
        finally:
            run.dispatch_seconds = time.perf_counter() - start
            connection.close()

    start = time.perf_counter()
    dispatcher = threading.Thread(target=dispatch, name="dispatch", daemon=True)
    dispatcher.start()
    last_count, last_change, last_sample = 0, time.monotonic(), 0.0
    while sink.count < expected:
        time.sleep(0.2)
        now = time.monotonic()
        if sink.count != last_count:
            progress.update(sink.count - last_count)
            last_count, last_change = sink.count, now
        if workers is not None and now - last_sample > 1:
            workers.sample()
            last_sample = now
        if errors:
            run.stalled = f"dispatch failed: {errors[0]!r}"
            break
        if workers is not None and not workers.alive():
            run.stalled = "the Celery worker exited"
            break
        if now - last_change > stall_seconds and not dispatcher.is_alive():
            run.stalled = f"no message for {stall_seconds:.0f} s"
            break
    dispatcher.join()
    time.sleep(0.5)  # anything sent twice would arrive now
    progress.update(sink.count - last_count)
    progress.close()
    if workers is not None:
        workers.sample()
    run.received = sink.count
    run.duplicates = sink.duplicates
    run.seconds = (sink.last - start) if sink.count else time.perf_counter() - start
    if errors and not run.stalled:
        run.stalled = f"dispatch failed: {errors[0]!r}"
    run.statuses = dict(
        Digest.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n")
    )
    return run


# --- In-process measurements --------------------------------------------------------------------


@dataclass
class Parts:
    ranking_us_per_subscriber: float = 0.0
    ranking_first_chunk_ms: float = 0.0
    render_ms_per_digest: float = 0.0
    mime_ms_per_digest: float = 0.0
    compose_queries_per_chunk: int = 0
    compose_ms_per_chunk: float = 0.0
    send_queries_per_digest: float = 0.0
    send_ms_per_digest: float = 0.0
    measured_chunk: int = 0


RANKING_PASSES = 3


def measure_ranking(chunk: int, limit: int, now: datetime) -> tuple[float, float]:
    """``rank_chunk`` on ``limit`` subscribers (by default one worker's share of the round),
    chunk by chunk, as compose calls it: (µs per subscriber once the candidates are prepared,
    ms of the first chunk that prepares them).

    The median of ``RANKING_PASSES`` passes, each from a fresh copy of the model (nothing
    cached, as a worker meets new candidates), so what a worker's caches cost to fill is
    spread over as many subscribers as a worker ranks in the round; a burst of other work on
    this machine (autovacuum after the round, say) would otherwise be the figure.
    """
    subscribers = list(
        Subscriber.objects.filter(status=Subscriber.Status.ACTIVE).order_by("id")[:limit]
    )
    candidates = [paper_text(p, now) for p in Paper.objects.all().trending(now)]
    fitted = pickle.dumps(digests.catalogue_model())
    signals: dict[int, digests.Signals] = defaultdict(digests.Signals)
    for at in range(0, len(subscribers), 10_000):
        signals.update(digests.signals_of([s.id for s in subscribers[at : at + 10_000]])[0])
    profiles = InterestProfile.objects.filter(subscriber__in=subscribers).select_related(
        "subscriber"
    )
    model = pickle.loads(fitted)
    interests = [
        digests.interests_of(p, p.subscriber.digest_size, signals[p.id], model, frozenset())
        for p in profiles.order_by("subscriber_id", "slot")
    ]
    floor = settings.DIGEST_RELEVANCE_FLOOR
    rest = interests[chunk:] or interests
    per_subscriber, first = [], []
    for _ in range(RANKING_PASSES):
        model = pickle.loads(fitted)  # its caches are not pickled
        started = time.perf_counter()
        ranking.rank_chunk(model, candidates, interests[:chunk], floor=floor)
        first.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        for at in range(0, len(rest), chunk):
            ranking.rank_chunk(model, candidates, rest[at : at + chunk], floor=floor)
        per_subscriber.append((time.perf_counter() - started) / len(rest) * 1e6)
    return statistics.median(per_subscriber), statistics.median(first)


def measure_render(sample: int) -> tuple[float, float]:
    """``digest_email`` on composed digests, and building the MIME message from it (ms each)."""
    from newsletter.emails import digest_email

    sent = list(
        Digest.objects.filter(status=Digest.Status.SENT)
        .order_by("id")
        .select_related("subscriber")
        .prefetch_related(*digests.TO_RENDER)[:sample]
    )
    if not sent:
        return 0.0, 0.0
    digest_email(sent[0])  # templates are compiled once per process
    started = time.perf_counter()
    messages = [digest_email(d) for d in sent]
    rendered = time.perf_counter() - started
    started = time.perf_counter()
    for message in messages:
        message.message().as_bytes()
    built = time.perf_counter() - started
    return rendered / len(sent) * 1000, built / len(sent) * 1000


def measure_chunk(chunk: int, now: datetime, port: int) -> tuple[int, float, float, float, int]:
    """Queries and time of one chunk, composed and sent in this process: tomorrow's digests of
    a chunk of daily subscribers (the papers they got today are among the candidates).

    Returns (compose queries, compose ms, send queries per digest, send ms per digest, digests).
    """
    tomorrow = now + timedelta(days=1)
    ids = list(
        Subscriber.objects.filter(frequency=Subscriber.Frequency.DAILY)
        .order_by("id")
        .values_list("id", flat=True)[: 2 * chunk]
    )
    # Claimed for tomorrow's period, as dispatch_digests leaves a chunk.
    Subscriber.objects.filter(id__in=ids).update(next_digest_at=tomorrow, claimed_at=tomorrow)
    if len(ids) > chunk:
        # A first chunk, not measured: a worker has the model fitted and the candidates
        # prepared (``ranking_first_chunk_ms``) before its second chunk.
        digests.compose_chunk(ids[:chunk], tomorrow)
        ids = ids[chunk:]
    with CaptureQueriesContext(connection) as composing:
        started = time.perf_counter()
        to_send = digests.compose_chunk(ids, tomorrow)
        compose_ms = (time.perf_counter() - started) * 1000
    with email_to(port), CaptureQueriesContext(connection) as sending:
        started = time.perf_counter()
        result = digests.send_queued(to_send)
        send_s = time.perf_counter() - started
    count = max(result.sent, 1)
    return len(composing), compose_ms, len(sending) / count, send_s / count * 1000, len(to_send)


def measure_parts(chunk: int, now: datetime, port: int, ranking_limit: int) -> Parts:
    # Timed as in a worker process: what this process holds, the population it built
    # included, is left out of garbage collection as a worker's startup objects are.
    freeze_startup_objects()
    parts = Parts()
    parts.render_ms_per_digest, parts.mime_ms_per_digest = measure_render(sample=300)
    (
        parts.compose_queries_per_chunk,
        parts.compose_ms_per_chunk,
        parts.send_queries_per_digest,
        parts.send_ms_per_digest,
        parts.measured_chunk,
    ) = measure_chunk(chunk, now, port)
    parts.ranking_us_per_subscriber, parts.ranking_first_chunk_ms = measure_ranking(
        chunk, ranking_limit, now
    )
    return parts


def measure_ndcg() -> tuple[float, float]:
    """nDCG@10 of the ranking and of plain TF-IDF on the judged profiles (papers.evaluation),
    over the bundled catalogue as the evaluation defines it."""
    records = bundled_records(timezone.now().date())
    papers = [
        ranking.PaperText(key=i, title=r.title, abstract=r.abstract)
        for i, r in enumerate(records, 1)
    ]
    topics = {t.slug: (t.name, t.description) for t in Topic.objects.all()}
    result = evaluation.evaluate(papers, evaluation.load_profiles(), topics)
    return result.ours, result.baseline


# --- The naive baseline -------------------------------------------------------------------------


@dataclass
class Baseline:
    subscribers: int = 0
    seconds: float = 0.0
    queries: int = 0
    sent: int = 0

    @property
    def per_second(self) -> float:
        return self.subscribers / self.seconds if self.seconds else 0.0


def baseline_vectorizer(n_papers: int) -> Any:
    """TF-IDF as arxiv-sanity-lite's compute.py sets it up (its df cut-offs need a catalogue
    of some size; a tiny one keeps every term)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    large = n_papers >= 1000
    return TfidfVectorizer(
        input="content",
        encoding="utf-8",
        decode_error="replace",
        strip_accents="unicode",
        lowercase=True,
        analyzer="word",
        stop_words="english",
        token_pattern=r"(?u)\b[a-zA-Z_][a-zA-Z0-9_]+\b",
        ngram_range=(1, 2),
        max_features=20000,
        norm="l2",
        use_idf=True,
        smooth_idf=True,
        sublinear_tf=True,
        max_df=0.1 if large else 1.0,
        min_df=5 if large else 1,
    )


def run_baseline(subscriber_ids: list[int], now: datetime, port: int) -> Baseline:
    """The naive way, on the same population and papers: one subscriber at a time, a query or
    more per step, a per-subscriber LinearSVC (arxiv-sanity-lite's recommendation: the
    subscriber's keyword and topic texts as positives against the catalogue, papers scored by
    ``decision_function``), the same email builder, one SMTP connection per subscriber.

    The TF-IDF features are computed once beforehand, as arxiv-sanity-lite does offline.
    """
    import scipy.sparse as sp
    from sklearn.svm import LinearSVC

    from newsletter.emails import digest_email

    catalogue = list(Paper.objects.order_by("id"))
    vectorizer = baseline_vectorizer(len(catalogue))
    features = vectorizer.fit_transform([f"{p.title}. {p.abstract}" for p in catalogue])
    keys = np.array([p.id for p in catalogue])
    period = "baseline"  # a period of its own: the round already has today's
    result = Baseline(subscribers=len(subscriber_ids))
    with email_to(port), CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        for subscriber_id in subscriber_ids:
            subscriber = Subscriber.objects.get(id=subscriber_id)
            profile = subscriber.profiles.get()
            topics = list(profile.topics.all())
            liked = [p.paper for p in profile.papers.select_related("paper") if p.paper]
            seen = set(
                DigestItem.objects.filter(digest__subscriber=subscriber).values_list(
                    "paper_id", flat=True
                )
            )
            positives = [
                *profile.keywords,
                *(f"{t.name}. {t.description}" for t in topics),
                *(f"{p.title}. {p.abstract}" for p in liked),
            ]
            x = sp.vstack([features, vectorizer.transform(positives)], format="csr")
            y = np.zeros(x.shape[0])
            y[features.shape[0] :] = 1
            svm = LinearSVC(class_weight="balanced", C=0.01, tol=1e-6, max_iter=10000)
            svm.fit(x, y)
            scores = svm.decision_function(features)
            never = seen | {p.id for p in liked}
            picks = [
                (int(keys[i]), float(scores[i]))
                for i in np.argsort(-scores)
                if int(keys[i]) not in never
            ][: subscriber.digest_size]
            digest = Digest.objects.create(
                subscriber=subscriber, period=period, created=now, status=Digest.Status.SENDING
            )
            for rank, (paper_id, score) in enumerate(picks, 1):
                DigestItem.objects.create(
                    digest=digest, paper_id=paper_id, rank=rank, score=score, reason="svm"
                )
            digest = Digest.objects.prefetch_related(
                Prefetch("items", queryset=DigestItem.objects.select_related("paper"))
            ).get(id=digest.id)
            digest.subscriber = subscriber
            message = digest_email(digest)
            with get_connection() as smtp:  # one connection per subscriber
                smtp.send_messages([message])
            Digest.objects.filter(id=digest.id).update(
                status=Digest.Status.SENT, sent_at=timezone.now()
            )
            result.sent += 1
        result.seconds = time.perf_counter() - started
    result.queries = len(queries)
    return result


# --- The whole benchmark ------------------------------------------------------------------------


@dataclass
class Options:
    subscribers: int = 20_000
    papers: int = 2_000
    chunk: int = 200
    workers: int = 0  # 0: one per core
    in_process: bool = False
    baseline_sample: int = 500
    ranking_sample: int = 0  # 0: one worker's share of the population
    seed: int = 7
    stall_seconds: float = 120
    keep_database: bool = False
    explain: bool = False


GOALS = {
    "digests_per_second": (">=", 500.0),
    "ranking_us_per_subscriber": ("<=", 50.0),
    "queries_per_chunk": ("<=", 10.0),
    "worker_peak_rss_mb": ("<", 300.0),
}


def machine() -> dict[str, Any]:
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    match = re.search(r"^MemTotal:\s+(\d+) kB", meminfo, re.M)
    return {
        "cores": os.cpu_count() or 1,
        "ram_mb": int(match.group(1)) // 1024 if match else None,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
    }


def check_broker(in_process: bool) -> str:
    broker = str(settings.CELERY_BROKER_URL)
    if in_process:
        return broker
    if not broker.startswith(("redis://", "rediss://")):
        raise BenchError(
            f"the benchmark runs Celery workers on Redis, and CELERY_BROKER_URL is {broker!r}: "
            "set CELERY_BROKER_URL=redis://... or pass --in-process to compose and send in this "
            "process instead"
        )
    return broker


def worker_env(db_url: str, broker: str, port: int, chunk: int) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": db_url,
        "CELERY_BROKER_URL": broker,
        # As in production: DEBUG would keep every query in memory.
        "DEBUG": "false",
        "SECRET_KEY": settings.SECRET_KEY,
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(port),
        "EMAIL_USE_TLS": "false",
        "EMAIL_HOST_USER": "",
        "EMAIL_HOST_PASSWORD": "",
        "DIGEST_CHUNK_SIZE": str(chunk),
        # Every subscriber gets exactly one digest, so the count to expect is known up front.
        "DIGEST_WHEN_NOTHING_MATCHES": "trending",
        "PYTHONUNBUFFERED": "1",
    }


def run(options: Options, progress: Callable[[int], Progress]) -> dict[str, Any]:
    """Build, run, measure; return the figures. ``progress(total)`` makes the round's progress
    bar (messages received of ``total``)."""
    if options.subscribers < 1 or options.papers < 1 or options.chunk < 1:
        raise BenchError("--subscribers, --papers and --chunk must be at least 1")
    broker = check_broker(options.in_process)
    info = machine()
    workers_n = options.workers or info["cores"]
    scratch = ScratchDatabase()
    # The benchmark's own process: no query log (DEBUG would keep every statement in memory).
    settings.DEBUG = False
    saved = {n: getattr(settings, n) for n in ("DIGEST_CHUNK_SIZE", "DIGEST_WHEN_NOTHING_MATCHES")}
    settings.DIGEST_CHUNK_SIZE = options.chunk
    settings.DIGEST_WHEN_NOTHING_MATCHES = "trending"
    figures: dict[str, Any] = {}
    timings: dict[str, float] = {}
    try:
        with smtp_sink(CountingSink()) as (sink, port):
            env = worker_env(scratch.url, broker, port, options.chunk)
            started = time.perf_counter()
            scratch.create(env)
            timings["migrate_seconds"] = time.perf_counter() - started
            with scratch.use():
                figures = _run_in(scratch, options, workers_n, sink, port, env, progress, timings)
    finally:
        for name, value in saved.items():
            setattr(settings, name, value)
        if not options.keep_database:
            scratch.drop()
    figures.update(info)
    figures["database"] = scratch.vendor
    figures["scratch_database"] = scratch.name if options.keep_database else None
    figures.update({k: round(v, 2) for k, v in timings.items()})
    return figures


def _run_in(
    scratch: ScratchDatabase,
    options: Options,
    workers_n: int,
    sink: CountingSink,
    port: int,
    env: dict[str, str],
    progress: Callable[[int], Progress],
    timings: dict[str, float],
) -> dict[str, Any]:
    rng = random.Random(options.seed)
    now = timezone.now()
    started = time.perf_counter()
    papers = create_papers(rng, options.papers, now)
    subscriber_ids = create_subscribers(rng, options.subscribers, papers, now)
    timings["build_seconds"] = time.perf_counter() - started
    plan = claim_plan(now) if options.explain and scratch.vendor == "postgresql" else None

    workers: Workers | None = None
    prefix = f"paperboy-bench-{os.getpid()}-"
    try:
        if options.in_process:
            from config.celery import app

            app.conf.task_always_eager = True
            stack = email_to(port)
            freeze_startup_objects()  # this process stands in for a worker process
        else:
            use_queues(prefix)
            workers = Workers(
                {**env, "CELERY_QUEUE_PREFIX": prefix},
                workers_n,
                Path(settings.VAR_DIR) / "bench" / "worker.log",
            )
            workers.start()
            stack = _nothing()
        with stack:
            round_ = run_round(
                sink,
                len(subscriber_ids),
                workers,
                options.stall_seconds,
                progress(len(subscriber_ids)),
            )
    finally:
        if workers is not None:
            workers.stop()
        if options.in_process:
            from config.celery import app

            app.conf.task_always_eager = False
    if workers is not None:
        peak = max(workers.peaks.values(), default=0.0)
        rss_of = "celery worker processes (parent and pool children)"
    else:
        peak = peak_rss_mb([os.getpid()]).get(os.getpid(), 0.0)
        rss_of = "this process (in-process mode: it also built the population)"

    sink.reset()
    share = -(-options.subscribers // (1 if options.in_process else workers_n))
    parts = measure_parts(options.chunk, now, port, options.ranking_sample or share)
    sample = subscriber_ids[-min(options.baseline_sample, len(subscriber_ids)) :]
    baseline = run_baseline(sample, now, port)
    ndcg, ndcg_plain = measure_ndcg()

    figures: dict[str, Any] = {
        "subscribers": options.subscribers,
        "papers": options.papers,
        "chunk": options.chunk,
        "workers": workers_n,
        "mode": "in-process" if options.in_process else "celery",
        "digests_per_second": round(round_.per_second, 1),
        "elapsed_seconds": round(round_.seconds, 2),
        "dispatch_seconds": round(round_.dispatch_seconds, 2),
        "messages_expected": round_.expected,
        "messages_received": round_.received,
        "duplicate_recipients": round_.duplicates,
        "digest_statuses": round_.statuses,
        "stalled": round_.stalled or None,
        "ranking_us_per_subscriber": round(parts.ranking_us_per_subscriber, 1),
        "ranking_first_chunk_ms": round(parts.ranking_first_chunk_ms, 1),
        "render_ms_per_digest": round(parts.render_ms_per_digest, 3),
        "mime_ms_per_digest": round(parts.mime_ms_per_digest, 3),
        "queries_per_chunk": parts.compose_queries_per_chunk,
        "compose_ms_per_chunk": round(parts.compose_ms_per_chunk, 1),
        "measured_chunk_digests": parts.measured_chunk,
        "send_queries_per_digest": round(parts.send_queries_per_digest, 3),
        "send_ms_per_digest": round(parts.send_ms_per_digest, 3),
        "worker_peak_rss_mb": round(peak, 1),
        "worker_peak_rss_of": rss_of,
        "baseline_subscribers": baseline.subscribers,
        "baseline_digests_per_second": round(baseline.per_second, 2),
        "baseline_queries_per_subscriber": round(
            baseline.queries / max(baseline.subscribers, 1), 1
        ),
        "baseline_ratio": round(round_.per_second / baseline.per_second, 1)
        if baseline.per_second
        else None,
        "ndcg_at_10": round(ndcg, 3),
        "ndcg_at_10_plain_tfidf": round(ndcg_plain, 3),
    }
    if plan is not None:
        figures["claim_plan"] = plan
    figures["goals"] = {
        name: _meets(figures[name], op, target) for name, (op, target) in GOALS.items()
    }
    return figures


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def _meets(value: float | None, op: str, target: float) -> bool:
    if value is None:
        return False
    return {">=": value >= target, "<=": value <= target, "<": value < target}[op]


def claim_plan(now: datetime) -> str:
    """EXPLAIN ANALYZE of the claim query on the population, in a transaction rolled back."""
    stale = now - timedelta(minutes=settings.DIGEST_CLAIM_LEASE_MINUTES)
    from django.db.models import Q

    query = (
        Subscriber.objects.select_for_update(skip_locked=True)
        .filter(status=Subscriber.Status.ACTIVE, next_digest_at__lte=now)
        .filter(Q(claimed_at__isnull=True) | Q(claimed_at__lt=stale))
        .order_by("next_digest_at")
        .values_list("id", flat=True)[: settings.DIGEST_CHUNK_SIZE]
    )
    with connection.cursor() as cursor:  # fresh rows: give the planner the statistics
        cursor.execute("ANALYZE newsletter_subscriber")  # autovacuum keeps in production
    with transaction.atomic():
        plan = query.explain(analyze=True, buffers=True)
        transaction.set_rollback(True)
    return plan
