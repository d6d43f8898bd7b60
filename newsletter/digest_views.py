"""Pages reached from a digest: the digest in a browser and the feedback links."""

from typing import Any

from django.core import signing
from django.db.models import Prefetch
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from newsletter import emails
from newsletter.models import Digest, DigestItem

LINK_MAX_AGE = 60 * 60 * 24 * 180  # digest links keep working for half a year


def unsign(token: str, purpose: str) -> Any:
    try:
        return signing.loads(token, salt=f"newsletter.{purpose}", max_age=LINK_MAX_AGE)
    except signing.BadSignature:
        raise Http404("This link is broken or has expired.") from None


def digest_view(request: HttpRequest, token: str) -> HttpResponse:
    items = DigestItem.objects.select_related("paper").order_by("rank")
    digest = (
        Digest.objects.filter(pk=unsign(token, "digest"), subscriber__isnull=False)
        .select_related("subscriber")
        .prefetch_related(Prefetch("items", queryset=items))
        .first()
    )
    if digest is None or digest.subscriber is None:
        raise Http404("This digest no longer exists.")
    return HttpResponse(emails.digest_email(digest).alternatives[0][0])


@require_http_methods(["GET", "HEAD"])
def feedback(request: HttpRequest, token: str) -> HttpResponse:
    value = unsign(token, "feedback")
    if not (isinstance(value, list) and len(value) == 3 and value[2] in (1, -1)):
        raise Http404("This link is broken.")
    digest_id, paper_id, vote = value
    item = (
        DigestItem.objects.filter(digest_id=digest_id, paper_id=paper_id)
        .select_related("paper")
        .first()
    )
    if item is None:
        raise Http404("This paper is no longer in that digest.")
    return render(request, "newsletter/feedback_thanks.html", {"paper": item.paper, "vote": vote})
