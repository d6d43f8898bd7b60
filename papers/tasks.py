import tempfile
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from papers import health, importing
from papers.importing import import_sources


@shared_task(bind=True, max_retries=3, default_retry_delay=300)
def import_daily_papers(self) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Import today's and yesterday's Daily Papers from the Hugging Face API (beat, hourly).

    A failed fetch is retried later; it never raises into beat, which only queues the task.
    """
    today = timezone.now().date()
    urls = [
        f"{settings.PAPERS_HF_API_URL}?{urlencode({'date': day.isoformat()})}"
        for day in (today, today - timedelta(days=1))
    ]
    summary = import_sources(urls, "hf-json", name="daily-papers")
    if summary.failed and self.request.retries < self.max_retries:
        raise self.retry()
    return summary.totals()


@shared_task
def import_upload(
    fmt: str, url: str | None = None, name: str | None = None, content: str | None = None
) -> dict[str, int]:
    """The admin's import tool: an URL, or an uploaded file's content carried in the task (the
    worker may run on another host than the web process that received the upload)."""
    if url:
        summary = import_sources([url], fmt)
    else:
        with tempfile.TemporaryDirectory(prefix="paperboy-upload-") as folder:
            path = Path(folder) / Path(name or "upload.txt").name
            path.write_text(content or "", encoding="utf-8")
            summary = import_sources([str(path)], fmt)
    return summary.totals()


@shared_task(bind=True, max_retries=5)
def fetch_papers(self, arxiv_ids: list[str]) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Store the papers with these arXiv ids that the catalogue lacks (``importing.fetch_papers``).

    The ids a transient failure left are asked again later, with backoff (or after the
    server's Retry-After); unknown ids are final and recorded in the import run.
    """
    result = importing.fetch_papers(arxiv_ids)
    if result.pending and self.request.retries < self.max_retries:
        backoff = settings.PAPERS_FETCH_RETRY_LATER * 2**self.request.retries
        raise self.retry(args=[result.pending], countdown=max(backoff, result.retry_after or 0))
    return result.totals()


@shared_task
def import_arxiv() -> dict[str, int] | None:
    """Import arXiv's latest announcement unless it is in already (beat, every few minutes)."""
    summary = importing.import_arxiv_announcements()
    return summary.totals() if summary else None


@shared_task
def check_sources() -> list[str]:
    """Email staff once about each scheduled source that has gone silent (beat, hourly)."""
    return health.alert_silent_sources()
