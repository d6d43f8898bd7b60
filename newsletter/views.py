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

from newsletter import emails, subscriptions, tasks
from newsletter.forms import ManageForm, ResubscribeForm, SignupForm
from newsletter.models import Subscriber
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
    form = SignupForm(request.POST or None)
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
        context = {"form": form, "csp_nonce": request.csp_nonce, **latest_trending_page(request)}  # type: ignore[attr-defined]
        return render(request, "newsletter/home.html", context, status=status)
    return HttpResponse(home_page(request))


# Stand-ins for the two values of the home page that differ per visitor (template-safe text).
CSRF_SLOT, NONCE_SLOT = "csrf0slot0a81f5c2", "nonce0slot04d7e93b"


def home_page(request: HttpRequest) -> str:
    """The home page with an empty form. All of it but the CSRF token and the script's nonce is
    the same for every visitor: it is rendered once per page of the list and per hour (so an
    import or a topic shows within the hour, and the trending order follows the clock) and kept
    in the cache, with stand-ins for those two."""
    number = request.GET.get("page", "1")
    key = f"home:{timezone.now():%Y%m%d%H}:{number}"
    cacheable = number.isascii() and number.isdigit() and len(number) <= 4  # keys stay few
    html = cache.get(key) if cacheable else None
    if html is None:
        context = {"form": SignupForm(), "csrf_token": CSRF_SLOT, "csp_nonce": NONCE_SLOT}
        context |= latest_trending_page(request)
        html = render_to_string("newsletter/home.html", context, request)
        if cacheable:
            cache.set(key, html, HOME_PAGE_SECONDS)
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


@require_http_methods(["GET", "HEAD", "POST"])
def manage(request: HttpRequest, token: str) -> HttpResponse:
    """The reader's page. Every POST that succeeds redirects back here (post/redirect/get),
    so a reload never repeats it; one with errors answers the form with them."""
    subscriber = subscriber_from(token, "manage")
    form = ManageForm.for_subscriber(subscriber)
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
        else:
            form = ManageForm(request.POST)
            if form.is_valid():
                subscriptions.apply_preferences(subscriber, form.cleaned_data)
                messages.success(request, "Saved. Your next digest will follow these preferences.")
                return redirect(request.path)
    context = {"subscriber": subscriber, "form": form, "resubscribe": resubscribe, "token": token}
    failed = form.errors or resubscribe.errors
    return render(request, "newsletter/manage.html", context, status=400 if failed else 200)


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
