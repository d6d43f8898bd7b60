"""A synthetic population for the benchmark and the fault injection: papers (the bundled Daily
Papers captures, then generated ones) and subscribers with realistic interests, all due now,
built from a seeded random generator and written with a few bulk inserts."""

from __future__ import annotations

import random
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings

from newsletter.models import InterestProfile, ProfilePaper, Subscriber
from papers.models import Paper, PaperSnapshot, Topic
from papers.sources import PaperRecord, text, title_key

SEEDS = Path(settings.BASE_DIR) / "papers" / "seeds"
BATCH = 2000


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
