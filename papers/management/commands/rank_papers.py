import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from papers import ranking
from papers.models import Paper, Topic
from papers.ranking_data import embedding_model, paper_text


class Command(BaseCommand):
    help = (
        "Rank the whole catalogue against keywords and topics, by relevance alone, with the "
        "scoring digests use."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--keywords",
            action="append",
            default=[],
            help='a word or phrase; repeat it, or separate several with commas: "a, b"',
        )
        parser.add_argument("--topic", action="append", default=[], metavar="SLUG")
        parser.add_argument("--limit", type=int, default=20, help="at most this many papers")
        parser.add_argument("--json", action="store_true", help="print a JSON list")

    def handle(self, *args: Any, **options: Any) -> None:
        keywords = [k.strip() for value in options["keywords"] for k in value.split(",")]
        keywords = [k for k in keywords if k]
        if not keywords and not options["topic"]:
            raise CommandError("Give at least one --keywords or --topic.")
        if options["limit"] < 1:
            raise CommandError(f"--limit {options['limit']}: give a number of papers, 1 or more")
        topics = {topic.slug: topic for topic in Topic.objects.all()}
        unknown = [slug for slug in options["topic"] if slug not in topics]
        if unknown:
            raise CommandError(
                f"Unknown topic {', '.join(unknown)}; valid slugs: {', '.join(sorted(topics))}"
            )

        now = timezone.now()
        papers = Paper.objects.trending(now)
        texts = [paper_text(paper, now) for paper in papers]
        interests = ranking.Interests(
            topics=[(topics[s].name, topics[s].description) for s in options["topic"]],
            keywords=keywords,
        )
        picks = ranking.rank_catalogue(
            ranking.fit_model(texts, embedding_model()), texts, interests, limit=options["limit"]
        )

        by_key = {paper.id: paper for paper in papers}
        rows = [
            {
                "rank": rank,
                "title": by_key[pick.key].title,
                "arxiv_id": by_key[pick.key].arxiv_id,
                "url": by_key[pick.key].url,
                "score": round(pick.score, 4),
                "why": pick.reason.text,
                "signal": pick.reason.signal,
                "matched": list(pick.reason.matched),
            }
            for rank, pick in enumerate(picks, 1)
        ]
        if options["json"]:
            self.stdout.write(json.dumps(rows, indent=2, ensure_ascii=False))
            return
        if not rows:
            self.stdout.write("No paper is relevant enough to these interests.")
            return
        self.stdout.write(f"{'#':>3}  {'score':>6}  {'title':<70}  why")
        for row in rows:
            title = str(row["title"])
            title = title if len(title) <= 70 else title[:69] + "…"
            self.stdout.write(f"{row['rank']:>3}  {row['score']:>6.3f}  {title:<70}  {row['why']}")
