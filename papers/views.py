from typing import Any

from django.conf import settings
from django.core.paginator import Page, Paginator
from django.db.models import Max

from papers.models import Paper


def latest_trending_page(number: int | str | None) -> dict[str, Any]:
    """Context for the trending list: the latest listing day's papers, best first, paginated;
    page ``number`` as ``Paginator.get_page`` reads it."""
    latest = Paper.objects.aggregate(day=Max("listed_on"))["day"]
    papers = Paper.objects.filter(listed_on=latest).trending() if latest else []
    page: Page[Paper] = Paginator(papers, settings.PAPERS_PER_PAGE).get_page(number)
    return {"listing_day": latest, "page": page}
