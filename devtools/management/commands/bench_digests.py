import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from devtools import bench
from devtools.harness import HarnessError

ROWS = [
    ("digests_per_second", "end to end, digests/s", "{:.1f}"),
    ("ranking_us_per_subscriber", "ranking, µs per subscriber", "{:.1f}"),
    ("render_ms_per_digest", "render (digest_email), ms per digest", "{:.2f}"),
    ("mime_ms_per_digest", "MIME message build, ms per digest", "{:.2f}"),
    ("queries_per_chunk", "compose queries per chunk", "{}"),
    ("compose_ms_per_chunk", "compose, ms per chunk (in-process)", "{:.0f}"),
    ("send_queries_per_digest", "send queries per digest", "{:.2f}"),
    ("send_ms_per_digest", "send, ms per digest (in-process)", "{:.2f}"),
    ("worker_peak_rss_mb", "worker peak RSS, MB", "{:.0f}"),
    ("worker_cpu_ms_per_digest", "worker CPU, ms per digest", "{:.2f}"),
    ("messages_expected", "messages expected", "{}"),
    ("messages_received", "messages received", "{}"),
    ("baseline_digests_per_second", "baseline, digests/s", "{:.2f}"),
    ("baseline_queries_per_subscriber", "baseline queries per subscriber", "{:.1f}"),
    ("baseline_ratio", "speed-up over the baseline", "{:.0f}x"),
    ("ndcg_at_10", "nDCG@10 (ours)", "{:.3f}"),
    ("ndcg_at_10_plain_tfidf", "nDCG@10 (plain TF-IDF)", "{:.3f}"),
]


class Command(BaseCommand):
    help = (
        "Benchmark the digest pipeline on a synthetic population in a scratch database: "
        "Celery workers on Redis, an SMTP server on loopback, and a naive baseline."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--subscribers", type=int, default=20_000, metavar="N")
        parser.add_argument("--papers", type=int, default=2_000, metavar="M")
        parser.add_argument("--chunk", type=int, default=200, metavar="K", help="per task")
        parser.add_argument(
            "--workers", type=int, default=0, metavar="W", help="worker processes (default: cores)"
        )
        parser.add_argument(
            "--in-process",
            action="store_true",
            help="compose and send in this process instead of Celery workers (no Redis needed)",
        )
        parser.add_argument("--baseline-sample", type=int, default=500, metavar="S")
        parser.add_argument(
            "--ranking-sample",
            type=int,
            default=0,
            metavar="S",
            help="subscribers ranked to time ranking (default: one worker's share)",
        )
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument(
            "--stall-seconds", type=float, default=120, help="give up after this long idle"
        )
        parser.add_argument(
            "--keep-database", action="store_true", help="leave the scratch database to inspect"
        )
        parser.add_argument(
            "--explain", action="store_true", help="EXPLAIN ANALYZE the claim query (PostgreSQL)"
        )
        parser.add_argument("--json", action="store_true", help="end with one line of JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        settings = bench.Options(
            subscribers=options["subscribers"],
            papers=options["papers"],
            chunk=options["chunk"],
            workers=options["workers"],
            in_process=options["in_process"],
            baseline_sample=options["baseline_sample"],
            ranking_sample=options["ranking_sample"],
            seed=options["seed"],
            stall_seconds=options["stall_seconds"],
            keep_database=options["keep_database"],
            explain=options["explain"],
        )

        def progress(total: int) -> bench.Progress:
            return tqdm(
                total=total, desc="digests received", unit="msg", file=sys.stderr, mininterval=1
            )

        try:
            figures = bench.run(settings, progress)
        except HarnessError as exc:
            raise CommandError(str(exc)) from exc
        if options["json"]:
            self.stdout.write(json.dumps(figures, ensure_ascii=False))
        else:
            self.print_table(figures)
        if figures["messages_received"] != figures["messages_expected"]:
            self.stderr.write(
                f"{figures['messages_received']} messages received, "
                f"{figures['messages_expected']} expected ({figures['stalled'] or 'extra mail'})"
            )
            sys.exit(1)

    def print_table(self, figures: dict[str, Any]) -> None:
        self.stdout.write(
            f"{figures['subscribers']} subscribers x {figures['papers']} papers, chunks of "
            f"{figures['chunk']}, {figures['workers']} worker processes ({figures['mode']}), "
            f"{figures['cores']} cores, {figures['ram_mb']} MB RAM, Python {figures['python']}, "
            f"{figures['database']}, embedding model: {figures['embedding_model'] or 'none'}"
        )
        goals = figures["goals"]
        for key, label, fmt in ROWS:
            value = figures.get(key)
            shown = "n/a" if value is None else fmt.format(value)
            verdict = ""
            if key in goals:
                op, target = bench.GOALS[key]
                verdict = f"goal {op} {target:g}: " + ("met" if goals[key] else "MISSED")
            self.stdout.write(f"  {label:<40} {shown:>12}  {verdict}")
        if figures.get("claim_plan"):
            self.stdout.write("\nClaim query plan:\n" + figures["claim_plan"])
