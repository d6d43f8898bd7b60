"""The staff dashboard at ``/admin/dashboard/`` and the tools beside it.

Every figure is an aggregate computed by the database, so the page makes the same number of
queries whatever the number of subscribers, digests and events. Each chart is an SVG
document of its own that pygal renders on the server, shown in a frame (so no markup built
here enters the page); its tooltips come from a static script of ours, which the content
security policy allows (pygal's own script is inline or on a CDN).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pygal
from csp.constants import SELF
from csp.decorators import csp_replace
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.db.models import Count, Q
from django.db.models.functions import TruncDate
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.templatetags.static import static
from django.utils import timezone

from config.celery import app as celery_app
from newsletter import digests, emails
from newsletter.models import Click, DeliveryEvent, Digest, Subscriber
from papers.health import source_health
from papers.models import ImportRun, Topic

WINDOW_DAYS = 30
Status = Subscriber.Status


def share(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


@dataclass
class Broker:
    reachable: bool
    waiting: dict[str, int] = field(default_factory=dict)  # messages waiting, per queue
    error: str = ""


def broker_state() -> Broker:
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
            channel = conn.default_channel
            # Not passive: an empty queue no worker has declared yet is "0 waiting", not an error.
            return Broker(
                True,
                {
                    queue.name: channel.queue_declare(queue=queue.name).message_count
                    for queue in celery_app.conf.task_queues
                },
            )
    except Exception as exc:  # a dashboard shows the failure instead of failing itself
        return Broker(False, error=f"{type(exc).__name__}: {exc}"[:200])


def top_keywords(limit: int = 10) -> list[tuple[str, int]]:
    """Keywords of active subscribers, most followed first, counted in the database."""
    elements = {
        "postgresql": "jsonb_array_elements_text(p.keywords) AS k(value)",
        "sqlite": "json_each(p.keywords) AS k",
    }.get(connection.vendor)
    if elements is None:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT lower(k.value), COUNT(DISTINCT s.id) FROM newsletter_subscriber s "
            f"JOIN newsletter_interestprofile p ON p.subscriber_id = s.id, {elements} "
            "WHERE s.status = %s GROUP BY lower(k.value) ORDER BY 2 DESC, 1 LIMIT %s",
            [Status.ACTIVE, limit],
        )
        return [(str(word), int(n)) for word, n in cursor.fetchall()]


def figures(now: datetime) -> dict[str, Any]:
    since = now - timedelta(days=WINDOW_DAYS)
    today = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    week = today - timedelta(days=today.weekday())

    by_status = dict(
        Subscriber.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n")
    )
    sent = Digest.objects.filter(status=Digest.Status.SENT).aggregate(
        today=Count("id", filter=Q(sent_at__gte=today)),
        week=Count("id", filter=Q(sent_at__gte=week)),
        window=Count("id", filter=Q(sent_at__gte=since)),
    )
    events = DeliveryEvent.objects.filter(received__gte=since)
    stops = events.aggregate(
        bounces=Count("id", filter=Q(event_type="bounced", soft=False)),
        complaints=Count("id", filter=Q(event_type="complained")),
    )
    unsubscribes = Subscriber.objects.filter(unsubscribed_at__gte=since).count()
    recent = events.filter(digest__sent_at__gte=since)
    reached = recent.aggregate(
        delivered=Count("digest", distinct=True, filter=Q(event_type="delivered")),
        bounced=Count("digest", distinct=True, filter=Q(event_type="bounced")),
        complained=Count("digest", distinct=True, filter=Q(event_type="complained")),
        opened=Count("digest", distinct=True, filter=Q(event_type="opened")),
        reported=Count("id"),
    )
    clicked = Click.objects.filter(digest__sent_at__gte=since).aggregate(
        n=Count("digest", distinct=True)
    )["n"]
    # A backend that reports no events (plain SMTP) knows nothing of deliveries: no rate then.
    provider_events = bool(reached.pop("reported"))
    rates = {
        name: share(n, sent["window"]) if provider_events else None for name, n in reached.items()
    }
    rates["clicked"] = share(clicked, sent["window"])
    return {
        "subscribers": {s: by_status.get(s, 0) for s in Status.values},
        "last_30_days": {"unsubscribes": unsubscribes, **stops},
        "digests_sent": {"today": sent["today"], "this_week": sent["week"]},
        "rates": rates,  # percent of the digests sent in the last 30 days
        "provider_events": provider_events,
        "most_clicked": list(
            Click.objects.filter(at__gte=since)
            .values("paper__title", "paper__arxiv_id")
            .annotate(clicks=Count("id"))
            .order_by("-clicks", "paper__title")[:10]
        ),
        "top_topics": list(
            Topic.objects.annotate(
                followers=Count(
                    "profiles__subscriber",
                    distinct=True,
                    filter=Q(profiles__subscriber__status=Status.ACTIVE),
                )
            )
            .filter(followers__gt=0)
            .order_by("-followers", "name")
            .values("name", "followers")[:10]
        ),
        "top_keywords": top_keywords(),
        "last_import": ImportRun.objects.first(),
        "sources": source_health(now),
    }


def per_day(rows: Any, field: str, since: date) -> dict[date, int]:
    counts = {row["day"]: row[field] for row in rows}
    return {since + timedelta(days=n): counts.get(since + timedelta(days=n), 0) for n in range(31)}


def series(now: datetime) -> dict[str, dict[date, Any]]:
    """Per day over the last 30 days: signups, unsubscribes, digests sent, open and click
    rates of the digests sent that day."""
    since = (now - timedelta(days=WINDOW_DAYS)).date()
    signups = (
        Subscriber.objects.filter(created__date__gte=since)
        .annotate(day=TruncDate("created"))
        .values("day")
        .annotate(n=Count("id"))
    )
    unsubscribes = (
        Subscriber.objects.filter(unsubscribed_at__date__gte=since)
        .annotate(day=TruncDate("unsubscribed_at"))
        .values("day")
        .annotate(n=Count("id"))
    )
    sent = list(
        Digest.objects.filter(sent_at__date__gte=since)
        .annotate(day=TruncDate("sent_at"))
        .values("day")
        .annotate(
            n=Count("id", distinct=True),
            opened=Count("id", distinct=True, filter=Q(events__event_type="opened")),
            clicked=Count("id", distinct=True, filter=Q(clicks__isnull=False)),
        )
    )
    digests_per_day = per_day(sent, "n", since)
    opened, clicked = per_day(sent, "opened", since), per_day(sent, "clicked", since)
    return {
        "signups": per_day(signups, "n", since),
        "unsubscribes": per_day(unsubscribes, "n", since),
        "digests": digests_per_day,
        "open_rate": {d: share(opened[d], n) for d, n in digests_per_day.items()},
        "click_rate": {d: share(clicked[d], n) for d, n in digests_per_day.items()},
    }


CHARTS = {
    "signups": ("Signups and unsubscribes per day", ("signups", "unsubscribes")),
    "digests": ("Digests sent per day", ("digests",)),
    "rates": ("Open and click rates (%)", ("open_rate", "click_rate")),
}
LEGENDS = {"open_rate": "opened", "click_rate": "clicked"}


def without_inline_scripts(root: Any) -> Any:
    """A pygal XML filter: drop its inline config script, which the CSP refuses and our
    tooltip script (a file) does not need."""
    for parent in list(root.iter()):
        for child in [c for c in parent if str(c.tag).endswith("script") and c.text]:
            parent.remove(child)
    return root


def chart_svg(title: str, lines: dict[str, dict[date, Any]], percent: bool = False) -> bytes:
    days = list(next(iter(lines.values())))
    plot = pygal.Line(
        title=title,
        height=260,
        width=720,
        js=[static("newsletter/chart-tooltips.js")],
        dots_size=3,
        x_label_rotation=0,
        show_minor_x_labels=False,
        truncate_label=-1,
        min_scale=2,
        range=(0, 100) if percent else None,
        style=pygal.style.CleanStyle,
    )
    plot.add_xml_filter(without_inline_scripts)
    plot.x_labels = [d.strftime("%d %b") for d in days]
    plot.x_labels_major = plot.x_labels[::7]
    for name, values in lines.items():
        plot.add(name, list(values.values()))
    return bytes(plot.render())


@csp_replace({"frame-ancestors": [SELF]})  # type: ignore[arg-type]  # typed for (request) views
def chart(request: HttpRequest, name: str) -> HttpResponse:
    """One of the dashboard's charts, as an SVG document for its frame."""
    if name not in CHARTS:
        raise Http404("No such chart.")
    title, keys = CHARTS[name]
    days = series(timezone.now())
    lines = {LEGENDS.get(key, key): days[key] for key in keys}
    response = HttpResponse(
        chart_svg(title, lines, percent=name == "rates"), content_type="image/svg+xml"
    )
    response["X-Frame-Options"] = "SAMEORIGIN"  # shown in the dashboard's frame
    return response


def dashboard(request: HttpRequest) -> HttpResponse:
    context = {
        **admin.site.each_context(request),
        "title": "Dashboard",
        "figures": figures(timezone.now()),
        "charts": [(name, title) for name, (title, _) in CHARTS.items()],
        "broker": broker_state(),
    }
    return TemplateResponse(request, "admin/paperboy/dashboard.html", context)


# --- Tools --------------------------------------------------------------------------------------


def compose_preview(subscriber: Subscriber, now: datetime | None = None) -> Any:
    """The next digest of ``subscriber`` as it would be sent (``digests.preview``: nothing is
    recorded or sent), or None when there is nothing to send. A preview carries none of the
    reader's links (``emails.digest_context``)."""

    def email(digest: Digest) -> Any:
        return emails.digest_email(digest, preview=True) if digest.items.all() else None

    return digests.preview(subscriber, email, now)


def preview(request: HttpRequest, subscriber: Subscriber) -> HttpResponse:
    message = compose_preview(subscriber)
    context = {**admin.site.each_context(request), "title": "Preview", "subscriber": subscriber}
    if message is None:
        return TemplateResponse(request, "admin/paperboy/preview_nothing.html", context)
    # The email in a sandboxed frame: the admin's own page around it, its styles kept apart.
    context |= {"subject": message.subject, "html": message.alternatives[0][0]}
    return TemplateResponse(request, "admin/paperboy/preview.html", context)


def send_test(request: HttpRequest, subscriber: Subscriber) -> HttpResponse:
    """Send ``subscriber``'s next digest to the staff member's own address, and only there."""
    staff_address = getattr(request.user, "email", "")
    if not staff_address:
        messages.error(request, "Your staff account has no email address to send the test to.")
        return redirect("admin:newsletter_subscriber_change", subscriber.pk)
    message = compose_preview(subscriber)
    if message is None:
        messages.warning(request, f"Nothing matches {subscriber.email} now; no test sent.")
        return redirect("admin:newsletter_subscriber_change", subscriber.pk)
    message.to, message.cc, message.bcc = [staff_address], [], []
    message.subject = f"[Test for {subscriber.email}] {message.subject}"
    message.send()
    messages.success(request, f"Sent {subscriber.email}'s next digest to {staff_address}.")
    return redirect("admin:newsletter_subscriber_change", subscriber.pk)


class ImportForm(forms.Form):
    file = forms.FileField(
        required=False, help_text="A Daily Papers JSON or HTML page, arXiv Atom, or a text capture."
    )
    url = forms.URLField(required=False, assume_scheme="https")
    format = forms.ChoiceField(
        choices=[(f, f) for f in ("auto", "hf-json", "hf-html", "arxiv", "text")], initial="auto"
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if bool(data.get("file")) == bool(data.get("url")):
            raise forms.ValidationError("Give either a file or an URL.")
        upload = data.get("file")
        if upload:
            limit = settings.PAPERS_MAX_UPLOAD_BYTES
            if upload.size > limit:
                raise forms.ValidationError(
                    f"The file is {upload.size:,} bytes; at most {limit:,}."
                )
            try:
                data["content"] = upload.read().decode("utf-8")
            except UnicodeDecodeError:
                self.add_error("file", "The file is not UTF-8 text.")
        return data


def import_papers(request: HttpRequest) -> HttpResponse:
    """Import papers from an upload or an URL in a task; the runs below show each summary.
    Staff who may not add papers may not import them."""
    from papers.tasks import import_upload

    if not request.user.has_perm("papers.add_paper"):
        raise PermissionDenied

    form = ImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        if data.get("url"):
            import_upload.delay(data["format"], url=data["url"])
            messages.success(request, f"Importing {data['url']}; refresh for the summary.")
        else:
            name = Path(data["file"].name).name
            import_upload.delay(data["format"], name=name, content=data["content"])
            messages.success(request, f"Importing {name}; refresh for the summary.")
        return redirect("admin-import-papers")
    context = {
        **admin.site.each_context(request),
        "title": "Import papers",
        "form": form,
        "runs": ImportRun.objects.all()[:10],
    }
    return TemplateResponse(request, "admin/paperboy/import.html", context)
