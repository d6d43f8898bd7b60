"""Source health: for each source, when it last worked, when and why it last failed, and the
papers it brought in the last 24 hours, read from the import runs it left. A scheduled source
that produces nothing for PAPERS_SOURCE_SILENT_HOURS is an incident, told to staff once."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import mail_admins
from django.db import transaction
from django.db.models import Max, Min, OuterRef, Q, Subquery, Sum
from django.utils import timezone

from papers.models import ImportRun, SourceAlert

# The sources beat runs on its own, by ImportRun.source; silence is an incident only for them.
SCHEDULED = {"daily-papers": "Hugging Face Daily Papers", "arxiv": "arXiv announcements"}
LABELS = SCHEDULED | {"paper-by-id": "Papers fetched by arXiv id", "": "Imports by hand"}


@dataclass
class SourceHealth:
    source: str
    label: str
    last_success: datetime | None
    last_failure: datetime | None
    failure: str  # the reason of the last failure
    new_24h: int
    last_produced: datetime | None  # the last run that read any paper
    silent_since: datetime | None  # scheduled and quiet for too long: since when

    @property
    def status(self) -> str:
        if self.silent_since:
            return "silent"
        if self.last_failure and (not self.last_success or self.last_failure > self.last_success):
            return "failing"
        return "ok" if self.last_success else "never worked"


def source_health(now: datetime | None = None) -> list[SourceHealth]:
    """Every source that ever ran, scheduled ones first (one query)."""
    now = now or timezone.now()
    last_reason = (
        ImportRun.objects.filter(source=OuterRef("source"))
        .exclude(failure="")
        .order_by("-started")
        .values("failure")[:1]
    )
    rows = (
        ImportRun.objects.values("source")
        .annotate(
            last_success=Max("finished", filter=Q(failure="", finished__isnull=False)),
            last_failure=Max("finished", filter=~Q(failure="")),
            new_24h=Sum("new", filter=Q(started__gte=now - timedelta(hours=24)), default=0),
            last_produced=Max(
                "finished", filter=Q(new__gt=0) | Q(updated__gt=0) | Q(unchanged__gt=0)
            ),
            first_run=Min("started"),
            reason=Subquery(last_reason),
        )
        .order_by("source")
    )
    silent_after = timedelta(hours=settings.PAPERS_SOURCE_SILENT_HOURS)
    health = []
    for row in rows:
        quiet_since = row["last_produced"] or row["first_run"]
        silent = row["source"] in SCHEDULED and now - quiet_since > silent_after
        health.append(
            SourceHealth(
                source=row["source"],
                label=LABELS.get(row["source"], row["source"]),
                last_success=row["last_success"],
                last_failure=row["last_failure"],
                failure=row["reason"] or "",
                new_24h=row["new_24h"],
                last_produced=row["last_produced"],
                silent_since=quiet_since if silent else None,
            )
        )
    health.sort(key=lambda h: (h.source not in SCHEDULED, h.label))
    return health


def alert_silent_sources(now: datetime | None = None) -> list[str]:
    """Email staff about each scheduled source gone silent, once per incident (an incident
    is named by when the silence began); the sources alerted about now."""
    alerted = []
    for source in source_health(now):
        if not source.silent_since:
            continue
        with transaction.atomic():  # no email, no record: the next check tries again
            _, new = SourceAlert.objects.get_or_create(
                source=source.source, silent_since=source.silent_since
            )
            if new:
                mail_admins(
                    f"{source.label} has produced no papers since "
                    f"{source.silent_since:%Y-%m-%d %H:%M} UTC",
                    silence_report(source),
                )
                alerted.append(source.source)
    return alerted


def silence_report(source: SourceHealth) -> str:
    lines = [
        f"{source.label} ({source.source}) has produced no papers for more than "
        f"{settings.PAPERS_SOURCE_SILENT_HOURS} hours.",
        f"Last success: {when(source.last_success)}",
        f"Last failure: {when(source.last_failure)} {source.failure}".rstrip(),
        "",
        "This is the only email about this silence; the next one comes after the source has "
        "produced papers again and then falls silent anew.",
        f"Source health: {settings.SITE_URL}/admin/dashboard/ or `manage.py source_health`.",
    ]
    return "\n".join(lines)


def when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else "never"
