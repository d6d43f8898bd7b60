"""Pages a person reaches: the signup form on the home page, and the signed links in emails."""

import json
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.cache import cache
from django.http import Http404, HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from newsletter import digests, emails, feeds, subscriptions, tasks
from newsletter.forms import ManageForm, ResubscribeForm, SignupForm
from newsletter.models import Digest, InterestProfile, Subscriber
from papers.views import latest_trending_page

HOME_PAGE_SECONDS = 3600


def client(request: HttpRequest) -> tuple[str | None, str]:
    return request.META.get("REMOTE_ADDR"), request.META.get("HTTP_USER_AGENT", "")


def subscriber_from(token: str, purpose: str, max_age: int | None = None) -> Subscriber:
    """The subscriber a signed link names; a friendly 404 for a tampered, expired or dead link."""
    pk = emails.signed_id(token, purpose, max_age)
    subscriber = Subscriber.objects.filter(pk=pk).first() if pk else None
    if subscriber is None:
        raise Http404("This link is broken, has expired, or its subscription no longer exists.")
    return subscriber


def message(
    request: HttpRequest, title: str, text: str, status: int = 200, **extra: Any
) -> HttpResponse:
    return render(
        request, "newsletter/message.html", {"title": title, "text": text, **extra}, status=status
    )


TOO_MANY = {
    "ip": "Too many attempts from here. Please try again in a few minutes.",
    "address": "Too many attempts for this address. Please try again in an hour.",
}


@require_http_methods(["GET", "HEAD", "POST"])
def home(request: HttpRequest) -> HttpResponse:
    form = SignupForm(request.POST or None, request.FILES or None)
    status = 200
    if request.method == "POST":
        ip, user_agent = client(request)
        if form.is_valid():
            if form.cleaned_data["website"]:  # the honeypot: a bot, answered like a person
                return check_your_inbox(request)
            limited = subscriptions.rate_limited(ip, form.cleaned_data["email"])
            if limited:
                form.add_error(None, TOO_MANY[limited])
                status = 429
            else:
                tasks.queue_subscription_email(
                    *subscriptions.signup(form.cleaned_data, ip, user_agent)
                )
                return check_your_inbox(request)
        else:
            status = 400
    if form.is_bound:  # a form with errors shows what was typed: rendered for this visitor
        nonce = request.csp_nonce  # type: ignore[attr-defined]
        page = latest_trending_page(request.GET.get("page"))
        context = {"form": form, "csp_nonce": nonce, **page}
        return render(request, "newsletter/home.html", context, status=status)
    return HttpResponse(home_page(request))


# Stand-ins for the two values of the home page that differ per visitor (template-safe text).
CSRF_SLOT, NONCE_SLOT = "csrf0slot0a81f5c2", "nonce0slot04d7e93b"


def home_page(request: HttpRequest) -> str:
    """The home page with an empty form. All of it but the CSRF token and the script's nonce is
    the same for every visitor: it is rendered once per page of the list and per hour (so an
    import or a topic shows within the hour, and the trending order follows the clock) and kept
    in the cache, with stand-ins for those two. A page number is read as the paginator reads it
    (anything but a number is page 1, past the end is the last page), so the cache holds one
    entry per page there is, whatever numbers visitors type."""
    hour = f"home:{timezone.now():%Y%m%d%H}"
    asked = request.GET.get("page", "1")
    number = int(asked) if asked.isascii() and asked.isdigit() and len(asked) < 10 else 1
    pages = cache.get(f"{hour}:pages")
    number = max(1, min(number, pages or number))
    html = cache.get(f"{hour}:{number}") if pages else None
    if html is None:
        listing = latest_trending_page(number)
        context = {"form": SignupForm(), "csrf_token": CSRF_SLOT, "csp_nonce": NONCE_SLOT}
        html = render_to_string("newsletter/home.html", context | listing, request)
        page = listing["page"]
        cache.set_many(
            {f"{hour}:{page.number}": html, f"{hour}:pages": page.paginator.num_pages},
            HOME_PAGE_SECONDS,
        )
    nonce = str(request.csp_nonce)  # type: ignore[attr-defined]
    return html.replace(CSRF_SLOT, get_token(request)).replace(NONCE_SLOT, nonce)


def check_your_inbox(request: HttpRequest) -> HttpResponse:
    # The same page for a new, pending or subscribed address: the form never tells which.
    return message(
        request,
        "Check your inbox",
        "We've sent you an email. Open the link in it to confirm your subscription "
        "(or to manage it, if you're already subscribed).",
    )


@require_http_methods(["GET", "HEAD", "POST"])
def confirm(request: HttpRequest, token: str) -> HttpResponse:
    max_age = settings.NEWSLETTER_CONFIRM_DAYS * 24 * 3600
    subscriber = subscriber_from(token, "confirm", max_age)
    if request.method != "POST":  # link scanners fetch GETs: they must not confirm
        return message(
            request,
            "Confirm your subscription",
            f"Send digests to {subscriber.email}?",
            button="Yes, confirm",
        )
    if subscriptions.confirm(subscriber, *client(request)) or subscriber.status == "active":
        return render(
            request,
            "newsletter/confirmed.html",
            {"subscriber": subscriber, "manage_url": emails.manage_url(subscriber)},
        )
    return message(
        request,
        "This link has been used",
        "This subscription is no longer waiting for confirmation. Sign up again on the home page.",
    )


STOPPED_BECAUSE: dict[str, str] = {
    Subscriber.Status.PAUSED: "Paused: no digests until you resume them below.",
    Subscriber.Status.UNSUBSCRIBED: "Stopped: you unsubscribed, so no digests are sent.",
    Subscriber.Status.BOUNCED: "Stopped: your mail server refused our digests (they bounced), "
    "so we stopped sending to protect your address. Sign up again once it accepts mail.",
    Subscriber.Status.COMPLAINED: "Stopped: a digest was reported as spam from this address, "
    "so we send nothing more. Sign up again if that was a mistake.",
    Subscriber.Status.PENDING: "Waiting for you to confirm: open the link in our first email.",
}


def chosen_profile(profiles: list[InterestProfile], slot: str | None) -> InterestProfile:
    """The profile ``?profile=<slot>`` names, else the first."""
    return next((p for p in profiles if str(p.slot) == slot), profiles[0])


@require_http_methods(["GET", "HEAD", "POST"])
def manage(request: HttpRequest, token: str) -> HttpResponse:
    """The reader's page: their state, their profiles (one edited at a time, ``?profile=<slot>``),
    the schedule, what their next digest would contain, their feed. Every POST that succeeds
    redirects back here (post/redirect/get), so a reload never repeats it; one with errors
    answers the form with them."""
    subscriber = subscriber_from(token, "manage")
    profiles = list(
        subscriber.profiles.select_related("library").prefetch_related("topics", "papers")
    )
    if not profiles:  # every subscriber has one; a row from before profiles gets it here
        profiles = [InterestProfile.objects.create(subscriber=subscriber, slot=1)]
    profile = chosen_profile(profiles, request.POST.get("profile") or request.GET.get("profile"))
    here = request.path if profile == profiles[0] else f"{request.path}?profile={profile.slot}"
    form = ManageForm.for_subscriber(subscriber, profile)
    resubscribe = ResubscribeForm()
    if request.method == "POST":
        action = request.POST.get("action", "save")
        left = subscriber.status == Subscriber.Status.UNSUBSCRIBED
        if action == "resubscribe":
            resubscribe = ResubscribeForm(request.POST)
            if resubscribe.is_valid():
                if subscriptions.resubscribe(subscriber, *client(request)):
                    messages.success(request, "Welcome back. Your next digest is scheduled.")
                return redirect(request.path)
        elif action == "unsubscribe":
            if subscriptions.unsubscribe(subscriber):
                messages.success(request, "Unsubscribed. You won't get any more digests.")
            else:
                messages.info(request, "You were already unsubscribed.")
            return redirect(request.path)
        elif action == "reset_feed":
            subscriptions.reset_feed(subscriber)
            messages.success(request, "Your feed has a new address; the old one no longer works.")
            return redirect(f"{here}#feed")
        elif left:  # a page left open from before: nothing to pause or save now
            messages.info(request, "You're unsubscribed; resubscribe first.")
            return redirect(request.path)
        elif action == "pause":
            subscriptions.pause(subscriber)
            messages.success(request, "Paused. You won't get digests until you resume.")
            return redirect(request.path)
        elif action == "resume":
            subscriptions.resume(subscriber)
            messages.success(request, "Resumed. Your next digest is scheduled.")
            return redirect(request.path)
        elif action == "add_profile":
            name = " ".join(request.POST.get("new_profile", "").split())[:60]
            added = subscriptions.add_profile(subscriber, name or "New profile")
            if added is None:
                messages.info(request, "You have five profiles, the most there can be.")
                return redirect(here)
            messages.success(request, f"Added “{added.name}”. Say what it is about below.")
            return redirect(f"{request.path}?profile={added.slot}")
        elif action == "delete_profile":
            if subscriptions.delete_profile(profile):
                messages.success(request, f"Deleted the profile “{profile.name}”.")
            else:
                messages.info(request, "Your last profile can't be deleted; change it instead.")
            return redirect(request.path)
        elif action == "follow_authors":
            followed = subscriptions.follow_authors(profile, request.POST.getlist("follow"))
            if followed:
                messages.success(request, f"Now following {', '.join(followed)}.")
            return redirect(here)
        elif action == "remove_library":
            if subscriptions.remove_library(profile):
                messages.success(request, "Removed your library and the papers it liked.")
            return redirect(here)
        else:
            form = ManageForm(request.POST, request.FILES, profile=profile)
            if form.is_valid():
                subscriptions.apply_preferences(subscriber, form.cleaned_data, profile)
                library = form.cleaned_data.get("library")
                said = f" From your library: {library.summary()}" if library else ""
                messages.success(
                    request, f"Saved. Your next digest will follow these preferences.{said}"
                )
                return redirect(here)
    failed = form.errors or resubscribe.errors
    context = {
        "subscriber": subscriber,
        "form": form,
        "resubscribe": resubscribe,
        "token": token,
        "profiles": profiles,
        "profile": profile,
        "can_add": len(profiles) < InterestProfile.MAX_PER_SUBSCRIBER,
        "library": getattr(profile, "library", None),
        "library_papers": sum(1 for p in profile.papers.all() if p.library_id),
        "suggested_authors": subscriptions.suggested_authors(profile),
        "stopped_because": STOPPED_BECAUSE.get(subscriber.status, ""),
        "last_digest": last_digest(subscriber),
        "feed_url": emails.feed_url(subscriber),
        # What the next digest would contain, by the code that composes it; not after a
        # failed save (the page shows the mistakes, and the preview would show the old state).
        "preview": None if failed else next_digest_preview(subscriber),
    }
    return render(request, "newsletter/manage.html", context, status=400 if failed else 200)


def last_digest(subscriber: Subscriber) -> dict[str, Any] | None:
    """The last digest sent: when, and its page."""
    digest = (
        Digest.objects.filter(subscriber=subscriber, status=Digest.Status.SENT)
        .order_by("-sent_at")
        .first()
    )
    if digest is None:
        return None
    return {"sent_at": digest.sent_at, "url": emails.digest_url(digest)}


def next_digest_preview(subscriber: Subscriber) -> dict[str, Any] | None:
    """The sections, papers and header line of the subscriber's next digest, as it would be
    composed now (``digests.preview``, the admin's preview and the real digest's code)."""
    if subscriber.status in Subscriber.STOPPED:
        return None

    def sections(digest: Digest) -> dict[str, Any]:
        context = emails.digest_context(digest, preview=True)
        return {
            "header": context["header"],
            "sections": context["sections"],
            "nothing_matched": emails.nothing_matched(digest),
            "empty": not context["items"],
        }

    return digests.preview(subscriber, sections)


def export(request: HttpRequest, token: str) -> HttpResponse:
    subscriber = subscriber_from(token, "manage")
    data = json.dumps(subscriptions.export_data(subscriber), indent=2)
    response = HttpResponse(data, content_type="application/json")
    response["Content-Disposition"] = 'attachment; filename="paperboy-my-data.json"'
    return response


@require_http_methods(["GET", "HEAD", "POST"])
def erase(request: HttpRequest, token: str) -> HttpResponse:
    subscriber = subscriber_from(token, "manage")
    if request.method != "POST":
        return message(
            request,
            "Delete my data",
            f"This deletes {subscriber.email}, your interests and consent records for "
            "good. Only anonymous counts remain.",
            button="Delete everything",
        )
    subscriptions.erase(subscriber)
    return message(request, "Deleted", "Your data is gone. Thanks for reading Paperboy.")


def feed(request: HttpRequest, token: str) -> HttpResponse:
    """The reader's private Atom feed of their digests' picks; 404 for a tampered token or one
    the reader has reset."""
    subscriber = emails.feed_subscriber(token)
    if subscriber is None:
        raise Http404("This feed does not exist, or its address was reset.")
    return feeds.DigestFeed()(request, subscriber=subscriber)


@csrf_exempt  # RFC 8058: the mail client posts with no cookies and no CSRF token
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    subscriber = subscriber_from(token, "unsubscribe")
    already = message(
        request,
        "Already unsubscribed",
        f"{subscriber.email} is already unsubscribed and gets no digests. To start again, open "
        "the link to manage your subscription in any of our emails.",
    )
    if request.method != "POST":  # link scanners fetch GETs: show a button instead
        if subscriber.status == Subscriber.Status.UNSUBSCRIBED:
            return already
        return message(
            request,
            "Unsubscribe",
            f"Stop sending digests to {subscriber.email}?",
            button="Unsubscribe",
        )
    if not subscriptions.unsubscribe(subscriber):
        return already
    return message(request, "Unsubscribed", f"{subscriber.email} won't get any more digests.")
