from collections.abc import Iterable
from datetime import UTC, datetime, time, timedelta
from urllib.parse import urlencode

from django.db import IntegrityError, models, transaction
from django.db.models import OuterRef, Q, Subquery
from django.utils import timezone

from papers.ranking import trending_score
from papers.refs import Ref
from papers.sources import PaperRecord, title_key


class Source(models.TextChoices):
    HF_JSON = "hf-json", "Hugging Face Daily Papers API"
    HF_HTML = "hf-html", "Hugging Face Daily Papers page"
    ARXIV = "arxiv", "arXiv API"
    ARXIV_RSS = "arxiv-rss", "arXiv announcements (RSS)"
    TEXT = "text", "Daily Papers text capture"


# Fields a later import may fill in or change. A value the source does not know (None or
# empty) never overwrites a known one, so a poor source cannot erase what a rich one said.
MERGED_FIELDS = (
    "title",
    "abstract",
    "authors",
    "published_at",
    "upvotes",
    "comments",
    "github_repo",
    "github_stars",
    "project_page",
    "thumbnail",
    "ai_summary",
    "ai_keywords",
    "categories",
)
COUNT_FIELDS = ("upvotes", "comments", "github_stars")


class PaperQuerySet(models.QuerySet["Paper"]):
    def for_refs(self, refs: Iterable[Ref]) -> dict[Ref, "Paper"]:
        """The papers ``refs`` name that the catalogue holds (one query): by arXiv id, or by
        title, compared as ``title_key`` (case, accents and punctuation aside)."""
        refs = list(refs)
        ids = {r.arxiv_id for r in refs if r.arxiv_id}
        keys = {key for r in refs if r.title and (key := title_key(r.title))}
        if not (ids or keys):
            return {}
        by_id: dict[str, Paper] = {}
        by_title: dict[str, Paper] = {}
        # A paper with an id wins a title over an id-less capture of the same paper.
        for paper in self.filter(Q(arxiv_id__in=ids) | Q(title_key__in=keys)).order_by("id"):
            if paper.arxiv_id in ids:
                by_id[paper.arxiv_id] = paper
            known = by_title.get(paper.title_key)
            better = known is None or (paper.arxiv_id and not known.arxiv_id)
            if paper.title_key in keys and better:
                by_title[paper.title_key] = paper
        found = {
            r: by_id.get(r.arxiv_id) if r.arxiv_id else by_title.get(title_key(r.title))
            for r in refs
        }
        return {r: p for r, p in found.items() if p is not None}

    def trending(self, now: datetime | None = None) -> list["Paper"]:
        """The papers, each with ``.trending`` set, best first (one query)."""
        now = now or timezone.now()
        day_ago = PaperSnapshot.objects.filter(
            paper=OuterRef("pk"), taken_at__lte=now - timedelta(hours=24)
        ).order_by("-taken_at")
        papers = list(self.annotate(upvotes_day_ago=Subquery(day_ago.values("upvotes")[:1])))
        for paper in papers:
            # No snapshot older than a day: every vote we know of came within the day.
            gain = (paper.upvotes or 0) - (getattr(paper, "upvotes_day_ago", 0) or 0)
            paper.trending = trending_score(
                paper.upvotes, paper.comments, gain, paper.age_hours(now), paper.github_stars
            )
        papers.sort(key=lambda p: (-p.trending, p.listing_position or 0, p.id))
        return papers


class Paper(models.Model):
    arxiv_id = models.CharField(
        "arXiv id",
        max_length=32,
        unique=True,
        null=True,
        blank=True,
        help_text="No version suffix.",
    )
    title = models.TextField()
    title_key = models.CharField(max_length=500, db_index=True, editable=False)
    abstract = models.TextField(blank=True)
    authors = models.JSONField(default=list, blank=True)
    published_at = models.DateTimeField("published on arXiv", null=True, blank=True)
    listed_on = models.DateField("listed as a daily paper", null=True, blank=True, db_index=True)
    listing_position = models.PositiveIntegerField(null=True, blank=True)
    upvotes = models.PositiveIntegerField(null=True, blank=True)
    comments = models.PositiveIntegerField(null=True, blank=True)
    github_repo = models.URLField(max_length=500, blank=True)
    github_stars = models.PositiveIntegerField(null=True, blank=True)
    project_page = models.URLField(max_length=500, blank=True)
    thumbnail = models.URLField(max_length=500, blank=True)
    ai_summary = models.TextField(blank=True)
    ai_keywords = models.JSONField(default=list, blank=True)
    categories = models.JSONField(default=list, blank=True)
    source = models.CharField(max_length=16, choices=Source.choices)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    objects = PaperQuerySet.as_manager()
    trending: float  # set by PaperQuerySet.trending()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["title_key"],
                condition=Q(arxiv_id__isnull=True),
                name="paper_unique_title_without_arxiv_id",
            )
        ]
        ordering = ["-listed_on", "listing_position", "id"]

    def __str__(self) -> str:
        return self.title

    def age_hours(self, now: datetime) -> float:
        if self.listed_on:
            since = datetime.combine(self.listed_on, time.min, tzinfo=UTC)
        else:
            since = self.published_at or self.created
        return (now - since).total_seconds() / 3600

    @property
    def abs_url(self) -> str:
        return f"https://arxiv.org/abs/{self.arxiv_id}" if self.arxiv_id else ""

    @property
    def pdf_url(self) -> str:
        return f"https://arxiv.org/pdf/{self.arxiv_id}" if self.arxiv_id else ""

    @property
    def daily_papers_url(self) -> str:
        return f"https://huggingface.co/papers/{self.arxiv_id}" if self.arxiv_id else ""

    @property
    def url(self) -> str:
        """The best page for the paper: arXiv when there is an id, else its project or code,
        else an arXiv search for its title (text captures carry nothing more)."""
        return (
            self.abs_url
            or self.project_page
            or self.github_repo
            or "https://arxiv.org/search/?"
            + urlencode({"query": self.title, "searchtype": "title"})
        )

    def digest_links(self) -> dict[str, str]:
        """The links a digest shows for the paper, by kind ("" when it has none of a kind)."""
        return {
            "main": self.url,
            "abstract": self.abs_url,
            "pdf": self.pdf_url,
            "code": self.github_repo,
            "daily": self.daily_papers_url,
            "project": self.project_page,
        }

    @classmethod
    def upsert(cls, record: PaperRecord, source: str, now: datetime | None = None) -> str:
        """Create or update the paper a record describes; return "new", "updated",
        "unchanged" or "skipped" (a new version of a paper the catalogue does not hold)."""
        return cls.upsert_many([record], source, now)[0]

    @classmethod
    def upsert_many(
        cls, records: list[PaperRecord], source: str, now: datetime | None = None
    ) -> list[str]:
        """``upsert`` for a batch in one transaction and a fixed number of queries: one to find
        the papers, one insert, one update, one insert of snapshots. The outcome of each record.

        Idempotent: the same records twice change nothing. A count change also records a
        ``PaperSnapshot`` so the trending score can see growth. Records of one paper within the
        batch merge into one row. If another import inserts one of these papers meanwhile, the
        batch is done again, one paper at a time.
        """
        now = now or timezone.now()
        try:
            with transaction.atomic():
                return cls._upsert_batch(records, source, now)
        except IntegrityError:
            if len(records) == 1:
                raise
            return [outcome for r in records for outcome in cls.upsert_many([r], source, now)]

    @classmethod
    def _upsert_batch(cls, records: list[PaperRecord], source: str, now: datetime) -> list[str]:
        ids = {r.arxiv_id for r in records if r.arxiv_id}
        keys = {title_key(r.title) for r in records}
        found = cls.objects.select_for_update().filter(
            Q(arxiv_id__in=ids) | Q(title_key__in=keys, arxiv_id__isnull=True)
        )
        by_id = {p.arxiv_id: p for p in found if p.arxiv_id}
        by_title = {p.title_key: p for p in found if not p.arxiv_id}
        created: dict[int, Paper] = {}
        changed: dict[int, set[str]] = {}
        outcomes = []
        for record in records:
            key = title_key(record.title)
            paper = by_id.get(record.arxiv_id) if record.arxiv_id else None
            # A paper first seen without an id (a text capture) is the same paper once a
            # richer source names its id.
            paper = paper or by_title.get(key)
            if paper is None and record.update_only:
                outcomes.append("skipped")
                continue
            if paper is None:
                paper = cls(source=source, title=record.title, created=now)
                created[id(paper)] = paper
            fields = paper.merge(record)
            if paper.arxiv_id:
                by_title.pop(key, None)
                by_id[paper.arxiv_id] = paper
            else:
                by_title[paper.title_key] = paper
            first = id(paper) not in changed
            changed.setdefault(id(paper), set()).update(fields)
            new = first and id(paper) in created
            outcomes.append("new" if new else "updated" if fields else "unchanged")
        touched = {id(p): p for p in [*by_id.values(), *by_title.values(), *created.values()]}
        updated = [p for k, p in touched.items() if changed.get(k) and k not in created]
        for paper in [*created.values(), *updated]:
            paper.updated = now
        Paper.objects.bulk_create(list(created.values()))
        if updated:
            columns = sorted(set().union(*(changed[id(p)] for p in updated)) | {"updated"})
            Paper.objects.bulk_update(updated, columns)
        PaperSnapshot.objects.bulk_create(
            PaperSnapshot(
                paper=paper,
                taken_at=now,
                upvotes=paper.upvotes,
                comments=paper.comments,
                github_stars=paper.github_stars,
            )
            for key, paper in touched.items()
            if any(f in changed.get(key, ()) for f in COUNT_FIELDS)
            and any(getattr(paper, f) is not None for f in COUNT_FIELDS)
        )
        return outcomes

    def merge(self, record: PaperRecord) -> set[str]:
        """Copy what the record knows onto this paper; return the names of changed fields."""
        changed: set[str] = set()

        def put(name: str, value: object) -> None:
            if getattr(self, name) != value:
                setattr(self, name, value)
                changed.add(name)

        for name in MERGED_FIELDS:
            value = getattr(record, name)
            if value is None or value == "" or value == []:
                continue
            put(name, value)
        if record.arxiv_id and not self.arxiv_id:
            put("arxiv_id", record.arxiv_id)
        put("title_key", title_key(self.title))
        # Keep the earliest listing day and the best position: stable whatever the import order.
        if record.listed_on and (self.listed_on is None or record.listed_on < self.listed_on):
            put("listed_on", record.listed_on)
        if record.listing_position is not None and (
            self.listing_position is None or record.listing_position < self.listing_position
        ):
            put("listing_position", record.listing_position)
        return changed


class PaperSnapshot(models.Model):
    """Engagement counts at one time, recorded whenever they change."""

    paper = models.ForeignKey(Paper, on_delete=models.CASCADE, related_name="snapshots")
    taken_at = models.DateTimeField(db_index=True)
    upvotes = models.PositiveIntegerField(null=True, blank=True)
    comments = models.PositiveIntegerField(null=True, blank=True)
    github_stars = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["paper", "taken_at"]
        get_latest_by = "taken_at"

    def __str__(self) -> str:
        return f"{self.paper_id} at {self.taken_at:%Y-%m-%d %H:%M}"


class ImportRun(models.Model):
    """One run of the importer, for the dashboard's "last ingestion"."""

    started = models.DateTimeField(default=timezone.now)
    finished = models.DateTimeField(null=True, blank=True)
    # The scheduled source this run read ("arxiv", "daily-papers", "paper-by-id"); blank for
    # imports by hand. Source health is computed from these rows.
    source = models.CharField(max_length=32, blank=True, db_index=True)
    sources = models.JSONField(default=list)
    # Why the source as a whole failed (unreachable, refused, not a feed); blank when it worked.
    failure = models.TextField(blank=True)
    # The announcement day an arXiv feed carried: the one the schedule then no longer needs.
    announced_on = models.DateField(null=True, blank=True)
    new = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    invalid = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-started"]
        get_latest_by = "started"

    def __str__(self) -> str:
        return f"Import at {self.started:%Y-%m-%d %H:%M}: {self.new} new, {self.updated} updated"

    @property
    def ok(self) -> bool:
        return not self.errors and not self.invalid


class SourceAlert(models.Model):
    """Staff were told that a source fell silent: one row, so one email, per incident. An
    incident is named by the last time the source produced papers before it went quiet."""

    source = models.CharField(max_length=32)
    silent_since = models.DateTimeField()
    sent = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "silent_since"], name="one_alert_per_silence")
        ]
        ordering = ["-sent"]

    def __str__(self) -> str:
        return f"{self.source} silent since {self.silent_since:%Y-%m-%d %H:%M}"


class Topic(models.Model):
    """A research area subscribers can follow. The ranking reads its name and description."""

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=100)
    description = models.TextField(
        help_text="A few sentences in the words papers of this area use."
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
