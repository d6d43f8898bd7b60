import json
from dataclasses import replace
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from papers import ranking
from papers.models import Paper, Topic
from papers.ranking_data import embedding_model, paper_text
from papers.refs import RefError, parse_ref


class Command(BaseCommand):
    help = (
        "Rank the whole catalogue against interests (a description, keywords, topics, liked "
        "and disliked papers, excluded keywords, followed authors), by relevance alone, with "
        "the scoring digests use. A followed author's papers come first, as in a digest."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--about", default="", metavar="TEXT", help="what you work on")
        parser.add_argument(
            "--keywords",
            action="append",
            default=[],
            help='a word or phrase; repeat it, or separate several with commas: "a, b"',
        )
        parser.add_argument("--topic", action="append", default=[], metavar="SLUG")
        refs = "an arXiv id, an arXiv/Hugging Face/alphaXiv link, an arXiv DOI or a title"
        parser.add_argument("--like", action="append", default=[], metavar="REF", help=refs)
        parser.add_argument("--dislike", action="append", default=[], metavar="REF", help=refs)
        parser.add_argument(
            "--exclude", action="append", default=[], metavar="KEYWORD", help="never these"
        )
        parser.add_argument("--author", action="append", default=[], metavar="NAME")
        parser.add_argument("--limit", type=int, default=20, help="at most this many papers")
        parser.add_argument("--json", action="store_true", help="print a JSON list")

    def handle(self, *args: Any, **options: Any) -> None:
        keywords = terms(options["keywords"])
        about, authors = options["about"].strip(), terms(options["author"])
        if not (keywords or options["topic"] or about or options["like"] or authors):
            raise CommandError(
                "Give at least one --about, --keywords, --topic, --like or --author."
            )
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
        by_key = {text.key: text for text in texts}
        interests = ranking.Interests(
            about=about,
            topics=[(topics[s].name, topics[s].description) for s in options["topic"]],
            keywords=keywords,
            liked=[by_key[p.id] for p in catalogue_papers("--like", options["like"])],
            disliked=[by_key[p.id] for p in catalogue_papers("--dislike", options["dislike"])],
            excluded_keywords=terms(options["exclude"]),
            authors=authors,
        )
        model, limit = ranking.fit_model(texts, embedding_model()), options["limit"]
        picks = followed_authors_papers(model, texts, interests, limit)
        shown = {pick.key for pick in picks}
        for pick in ranking.rank_catalogue(model, texts, interests, limit=limit + len(picks)):
            if pick.key not in shown and len(picks) < limit:
                picks.append(pick)

        by_id = {paper.id: paper for paper in papers}
        rows = [
            {
                "rank": rank,
                "title": by_id[pick.key].title,
                "arxiv_id": by_id[pick.key].arxiv_id,
                "url": by_id[pick.key].url,
                "score": round(pick.score, 4),
                "why": pick.reason.text,
                "signal": pick.reason.signal,
                "matched": list(pick.reason.matched),
                "section": str(pick.section),
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


def terms(values: list[str]) -> list[str]:
    """Repeated options, each possibly holding several values separated by commas."""
    found = [t.strip() for value in values for t in value.split(",")]
    return list(dict.fromkeys(t for t in found if t))


def catalogue_papers(option: str, given: list[str]) -> list[Paper]:
    """The catalogue's papers the REFs name; a REF that names none is an error naming it."""
    try:
        refs = [parse_ref(ref) for ref in given]
    except RefError as error:
        raise CommandError(f"{option}: {error}") from None
    found = Paper.objects.for_refs(refs)
    missing = [ref for ref in refs if ref not in found]
    if missing:
        raise CommandError(
            f"{option} {missing[0].given!r}: no paper in the catalogue matches it"
            + (" (import it first with import_papers)" if missing[0].arxiv_id else "")
        )
    return list(dict.fromkeys(found[ref] for ref in refs))


def followed_authors_papers(
    model: ranking.Model, texts: list[ranking.PaperText], interests: ranking.Interests, limit: int
) -> list[ranking.Pick]:
    """The followed authors' papers, most relevant first, as a digest's own part has them."""
    if not interests.authors:
        return []
    everything = replace(interests, size=limit, trending_weight=0.0)
    # A floor no match reaches: only the authors' papers, which come whatever their relevance.
    picks = ranking.rank_chunk(model, texts, [everything], floor=1.01, diversity=0.0)[0]
    return [pick for pick in picks if pick.section == ranking.Section.AUTHORS]
