"""Pages reached from a digest: the digest in a browser and the feedback links."""

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from newsletter import digests, emails, tracking
from newsletter.models import Click, Digest, DigestItem, Feedback, InterestProfile

LINK_MAX_AGE = 60 * 60 * 24 * 180  # digest links keep working for half a year


def digest_id(token: str) -> int:
    """The digest the reader's click and feedback links name; or 404."""
    value = emails.signed_id(token, "digest", LINK_MAX_AGE)
    if value is None:
        raise Http404("This link is broken or has expired.")
    return value


def digest_view(request: HttpRequest, token: str) -> HttpResponse:
    # The page's own token, or (emails sent before it had one) the reader's links' token.
    pk = emails.signed_id(token, "digest-page", LINK_MAX_AGE) or digest_id(token)
    digest = (
        Digest.objects.filter(pk=pk, subscriber__isnull=False)
        .select_related("subscriber")
        .prefetch_related(*digests.TO_RENDER)
        .first()
    )
    if digest is None or digest.subscriber is None:
        raise Http404("This digest no longer exists.")
    return HttpResponse(emails.digest_page(digest))


def digest_item(token: str, paper_id: int) -> tuple[DigestItem, int]:
    """The item of the digest ``token`` names for ``paper_id``, and its subscriber; or 404."""
    item = (
        DigestItem.objects.filter(digest_id=digest_id(token), paper_id=paper_id)
        .select_related("paper", "digest")
        .first()
    )
    if item is None or item.digest.subscriber_id is None:
        raise Http404("This paper is no longer in that digest.")
    return item, item.digest.subscriber_id


def profile_of(item: DigestItem) -> int | None:
    """The profile a vote or click on ``item`` teaches: the one the paper was picked for, else
    (a trending paper sent when nothing matched) the subscriber's first."""
    if item.profile_id or item.digest.subscriber_id is None:
        return item.profile_id
    first = InterestProfile.objects.filter(subscriber_id=item.digest.subscriber_id)
    return first.order_by("slot").values_list("id", flat=True).first()


@require_http_methods(["GET", "HEAD"])
def follow(request: HttpRequest, token: str, paper_id: int, kind: str) -> HttpResponse:
    """A paper link from a digest: count the click, then redirect to that paper's own link of
    that kind (``Paper.digest_links``), never anywhere else."""
    item, subscriber_id = digest_item(token, paper_id)
    url = item.paper.digest_links().get(kind)
    if not url:
        raise Http404("That paper has no such link.")
    if tracking.from_reader(request, item.digest.pk):
        Click.objects.create(
            digest=item.digest,
            subscriber_id=subscriber_id,
            paper=item.paper,
            url=url,
            profile_id=profile_of(item),
        )
    return HttpResponseRedirect(url)


@require_http_methods(["GET", "HEAD", "POST"])
def feedback(request: HttpRequest, token: str, paper_id: int, vote: int) -> HttpResponse:
    """ "More like this" / "less like this": GET records the vote (the next digest uses it)
    unless a link scanner sent it (``tracking.from_reader``); the page
    then offers to record it with a button. POST from the page records it ("count") or
    undoes it ("undo"): a scanner does not press buttons."""
    item, subscriber_id = digest_item(token, paper_id)
    mine = Feedback.objects.filter(subscriber_id=subscriber_id, paper=item.paper)
    context = {"paper": item.paper, "vote": vote}
    if request.method == "POST" and request.POST.get("action") != "count":
        mine.filter(value=vote).delete()
        return render(request, "newsletter/feedback_thanks.html", context | {"undone": True})
    counted = request.method == "POST" or tracking.from_reader(request, item.digest.pk)
    if counted:
        Feedback.objects.update_or_create(
            subscriber_id=subscriber_id,
            paper=item.paper,
            defaults={
                "value": vote,
                "digest": item.digest,
                "at": timezone.now(),
                "profile_id": profile_of(item),
            },
        )
    return render(request, "newsletter/feedback_thanks.html", context | {"counted": counted})
