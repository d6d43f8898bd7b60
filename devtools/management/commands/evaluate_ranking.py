import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from devtools.feedback import DAYS, SEEDS, SIZE, simulate
from papers import evaluation
from papers.models import Topic
from papers.ranking_data import embedding_model

# The goals, reported beside the figures (never asserted by a test).
GOALS = {"keywords": 0.90, "sentence and liked": 0.85, "feedback gain": 0.15}


class Command(BaseCommand):
    help = (
        "nDCG@10 and P@10 of the ranking on the judged profiles (papers/evaluation_set.json) "
        "beside plain BM25 and plain TF-IDF, on the tuning and the validation split; "
        "--feedback: simulated readers' precision@5 per round of feedback."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print JSON")
        parser.add_argument(
            "--feedback",
            action="store_true",
            help="simulate readers who press more/less like this (in a rolled-back transaction)",
        )
        parser.add_argument("--days", type=int, default=DAYS, help="catalogue days (rounds)")
        parser.add_argument(
            "--seeds", type=int, default=SEEDS, help="orders of the catalogue to average over"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        profiles = evaluation.load_profiles()
        topics = {t.slug: t for t in Topic.objects.all()}
        unknown = sorted({p.start_topic for p in profiles if p.start_topic not in topics})
        if unknown:
            raise CommandError(f"Unknown start topics in the judged set: {', '.join(unknown)}")
        if options["feedback"]:
            if options["days"] < 2 or options["seeds"] < 1:
                raise CommandError("--days: give 2 or more; --seeds: 1 or more")
            self.feedback(profiles, options["days"], options["seeds"], options["json"])
            return
        result = evaluation.evaluate(
            evaluation.bundled_catalogue(),
            profiles,
            {slug: (t.name, t.description) for slug, t in topics.items()},
            encoder=embedding_model(),
        )
        summary = result.summary()
        if options["json"]:
            rows = [
                {
                    "name": s.name,
                    "kind": s.kind,
                    "split": s.split,
                    "relevant": s.relevant,
                    "ndcg": s.ndcg,
                    "precision": s.precision,
                }
                for s in result.profiles
            ]
            self.stdout.write(json.dumps({"k": result.k, "summary": summary, "profiles": rows}))
            return
        k = result.k
        self.stdout.write(
            f"{'profile':<44} {'kind':<8} {'split':<10} "
            f"nDCG@{k}: ours   bm25  tfidf   P@{k}: ours   bm25  tfidf"
        )
        for s in result.profiles:
            ndcg = "  ".join(f"{s.ndcg[m]:.3f}" for m in evaluation.METHODS)
            precision = "  ".join(f"{s.precision[m]:.2f}" for m in evaluation.METHODS)
            self.stdout.write(
                f"{s.name[:44]:<44} {s.kind:<8} {s.split:<10}        {ndcg}          {precision}"
            )
        self.stdout.write("")
        for split, table in summary.items():
            for kind, figures in table.items():
                ndcg = "  ".join(f"{figures[f'{m} ndcg']:.3f}" for m in evaluation.METHODS)
                precision = "  ".join(f"{figures[f'{m} p']:.2f}" for m in evaluation.METHODS)
                label = f"mean {kind} ({split})"
                self.stdout.write(f"{label:<63}        {ndcg}          {precision}")
        for split in evaluation.SPLITS:
            mixed = [
                s.ndcg["ours"]
                for s in result.profiles
                if s.split == split and s.kind in ("sentence", "liked")
            ]
            mean = sum(mixed) / len(mixed) if mixed else 0.0
            keywords = result.mean("ours", kind="keywords", split=split)
            self.stdout.write(
                f"goals ({split}): keywords {keywords:.3f} (>= {GOALS['keywords']}), "
                f"sentence and liked {mean:.3f} (>= {GOALS['sentence and liked']})"
            )

    def feedback(
        self, profiles: list[evaluation.Profile], days: int, seeds: int, as_json: bool
    ) -> None:
        curve = simulate(evaluation.bundled_records(), profiles, days, SIZE, seeds)
        if as_json:
            self.stdout.write(
                json.dumps(
                    {
                        "size": curve.size,
                        "readers": curve.readers,
                        "days": days,
                        "seeds": seeds,
                        "precision": [round(p, 4) for p in curve.precision],
                        "silent": [round(p, 4) for p in curve.silent],
                        "best_possible": [round(p, 4) for p in curve.best_possible],
                        "splits": {
                            split: {k: [round(p, 4) for p in v] for k, v in curves.items()}
                            for split, curves in curve.splits.items()
                        },
                        "per_reader": curve.per_reader,
                    }
                )
            )
            return
        self.stdout.write(
            f"{curve.readers} simulated readers, a digest of {curve.size} a day, starting "
            f"from one topic; precision@{curve.size} after each round's feedback:"
        )
        self.stdout.write(
            f"({seeds} orders of the catalogue over {days} days, averaged; 'silent' is the same "
            "readers pressing nothing)"
        )
        splits = list(curve.splits)
        header = f"{'round':>5}  {'feedback':>9}  {'silent':>7}  {'best possible':>13}"
        for split in splits:
            header += f"  {split + ' fb':>14}  {'silent':>7}  {'best':>5}"
        self.stdout.write(header)
        rounds = zip(curve.precision, curve.silent, curve.best_possible, strict=True)
        for n, (p, silent, best) in enumerate(rounds, 1):
            line = f"{n:>5}  {p:>9.3f}  {silent:>7.3f}  {best:>13.3f}"
            for split in splits:
                figures = curve.splits[split]
                line += (
                    f"  {figures['precision'][n - 1]:>14.3f}  {figures['silent'][n - 1]:>7.3f}"
                    f"  {figures['best_possible'][n - 1]:>5.3f}"
                )
            self.stdout.write(line)
        if len(curve.precision) > 5:
            gains = [("all readers", curve.precision)]
            gains += [(split, curve.splits[split]["precision"]) for split in splits]
            self.stdout.write(
                "after five rounds of feedback: "
                + ", ".join(f"{name} {p[5] - p[0]:+.3f}" for name, p in gains)
                + f" (goal >= +{GOALS['feedback gain']})"
            )
