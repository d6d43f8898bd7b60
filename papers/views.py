from django.conf import settings
from django.core.paginator import Page, Paginator
from django.db.models import Max
from django.http import HttpRequest

from papers.models import Paper


def latest_trending_page(request: HttpRequest) -> dict[str, object]:
    """Context for the trending list: the latest listing day's papers, best first, paginated."""
    latest = Paper.objects.aggregate(day=Max("listed_on"))["day"]
    papers = Paper.objects.filter(listed_on=latest).trending() if latest else []
    page: Page[Paper] = Paginator(papers, settings.PAPERS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    return {"listing_day": latest, "page": page}
