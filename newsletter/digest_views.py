"""Pages reached from a digest: the digest in a browser and the feedback links."""

from typing import Any

from django.core import signing
from django.db.models import Prefetch
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from newsletter import emails, tracking
from newsletter.models import Click, Digest, DigestItem, Feedback

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


def digest_item(value: Any, last: type) -> tuple[DigestItem, int, Any]:
    """The digest item a [digest id, paper id, extra] token names, its subscriber, the extra;
    or 404."""
    if not (
        isinstance(value, list)
        and len(value) == 3
        and all(isinstance(v, int) for v in value[:2])
        and isinstance(value[2], last)
    ):
        raise Http404("This link is broken.")
    item = (
        DigestItem.objects.filter(digest_id=value[0], paper_id=value[1])
        .select_related("paper", "digest")
        .first()
    )
    if item is None or item.digest.subscriber_id is None:
        raise Http404("This paper is no longer in that digest.")
    return item, item.digest.subscriber_id, value[2]


@require_http_methods(["GET", "HEAD"])
def follow(request: HttpRequest, token: str) -> HttpResponse:
    """A paper link from a digest: count the click, then redirect to one of the paper's own
    links, never anywhere else."""
    item, subscriber_id, url = digest_item(unsign(token, "click"), str)
    if url not in item.paper.links():
        raise Http404("This link does not lead to that paper.")
    if tracking.from_reader(request):
        Click.objects.create(
            digest=item.digest, subscriber_id=subscriber_id, paper=item.paper, url=url
        )
    return HttpResponseRedirect(url)


@require_http_methods(["GET", "HEAD", "POST"])
def feedback(request: HttpRequest, token: str) -> HttpResponse:
    """ "More like this" / "less like this": GET records the vote (the next digest uses it),
    POST from the thanks page undoes it."""
    item, subscriber_id, vote = digest_item(unsign(token, "feedback"), int)
    if vote not in (1, -1):
        raise Http404("This link is broken.")
    mine = Feedback.objects.filter(subscriber_id=subscriber_id, paper=item.paper)
    if request.method == "POST":
        mine.filter(value=vote).delete()
        return render(
            request, "newsletter/feedback_thanks.html", {"paper": item.paper, "undone": True}
        )
    if tracking.from_reader(request):
        Feedback.objects.update_or_create(
            subscriber_id=subscriber_id,
            paper=item.paper,
            defaults={"value": vote, "digest": item.digest, "at": timezone.now()},
        )
    return render(request, "newsletter/feedback_thanks.html", {"paper": item.paper, "vote": vote})
