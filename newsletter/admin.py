import csv
from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path
from django.views.decorators.http import require_POST

from newsletter import dashboard, subscriptions, tasks
from newsletter.models import (
    Click,
    ConsentRecord,
    DeliveryEvent,
    Digest,
    DigestItem,
    Feedback,
    InterestProfile,
    Library,
    OwedEmail,
    ProfilePaper,
    Subscriber,
)

# A spreadsheet evaluates a cell that starts with one of these as a formula (CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def as_cell(value: object) -> object:
    """``value`` as a CSV cell a spreadsheet shows as text: a leading apostrophe before a
    formula's first character, as OWASP recommends."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return f"'{value}"
    return value


class ConsentInline(admin.TabularInline[ConsentRecord, Subscriber]):
    model = ConsentRecord
    extra = 0
    can_delete = False
    readonly_fields = ("kind", "at", "ip", "user_agent", "consent_version")

    def has_add_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False


class LinesField(forms.CharField):
    """A JSON list of strings edited as a text box, one item per line."""

    widget = forms.Textarea(attrs={"rows": 3, "cols": 40})

    def prepare_value(self, value: Any) -> Any:
        return "\n".join(value) if isinstance(value, list) else value

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        text = super().to_python(value) or ""
        return list(
            dict.fromkeys(" ".join(line.split()) for line in text.splitlines() if line.strip())
        )


class InterestProfileForm(forms.ModelForm[InterestProfile]):
    keywords = LinesField(required=False, help_text="One word or phrase per line.")
    excluded_keywords = LinesField(required=False, help_text="One per line.")
    authors = LinesField(label="Followed authors", required=False, help_text="One name per line.")

    class Meta:
        model = InterestProfile
        fields = (
            "name",
            "slot",
            "about",
            "topics",
            "keywords",
            "excluded_keywords",
            "authors",
            "trending_weight",
        )


class InterestProfileInline(admin.StackedInline[InterestProfile, Subscriber]):
    model = InterestProfile
    form = InterestProfileForm
    extra = 0
    min_num = 1
    max_num = InterestProfile.MAX_PER_SUBSCRIBER
    filter_horizontal = ("topics",)
    fields = (
        ("name", "slot"),
        "about",
        "topics",
        ("keywords", "excluded_keywords", "authors"),
        "papers_given",
        "trending_weight",
    )
    readonly_fields = ("papers_given",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[InterestProfile]:
        return super().get_queryset(request).prefetch_related("papers")

    def get_formset(self, request, obj=None, **kwargs):  # type: ignore[no-untyped-def]
        # One to five, checked on save too: the last profile cannot be deleted.
        return super().get_formset(request, obj, validate_min=True, validate_max=True, **kwargs)

    @admin.display(description="Liked and disliked papers")
    def papers_given(self, profile: InterestProfile) -> str:
        rows = [
            f"{'liked' if p.opinion == ProfilePaper.LIKED else 'disliked'}: {p.ref}"
            + ("" if p.paper_id or not p.arxiv_id else " (not in the catalogue yet)")
            for p in profile.papers.all()
        ]
        return "\n".join(rows) or "—"


# Fields that start, stop or schedule mail: written only over the row's current status.
LIFECYCLE = ("status", "next_digest_at")
SUBSCRIBER_FIELDS = {f.name for f in Subscriber._meta.concrete_fields}


class SubscriberForm(forms.ModelForm[Subscriber]):
    def clean_status(self) -> str:
        status: str = self.cleaned_data["status"]
        stopped = self.instance.pk and self.instance.status in Subscriber.STOPPED
        if stopped and status not in Subscriber.STOPPED:
            # Only the reader lifts a stop (resubscribing or confirming a new signup, with
            # their consent recorded); a form loaded before they left must not undo it either.
            raise forms.ValidationError(
                f"This reader's mail is stopped ({self.instance.get_status_display().lower()});"
                " only they can subscribe again."
            )
        return status


@admin.register(Subscriber)
class SubscriberAdmin(admin.ModelAdmin[Subscriber]):
    form = SubscriberForm
    list_display = ("email", "status", "frequency", "send_hour", "timezone", "next_digest_at")
    list_filter = ("status", "frequency", "profiles__topics")
    search_fields = ("email",)
    readonly_fields = ("created", "confirmed_at", "unsubscribed_at", "claimed_at")
    inlines = [InterestProfileInline, ConsentInline]
    actions = ["pause", "resume", "resend_confirmation", "export_csv"]
    change_form_template = "admin/paperboy/subscriber_change_form.html"

    def get_urls(self) -> list[URLPattern]:
        def tool(view: Any, allowed: Any) -> Any:
            # A reader's next digest is theirs: staff who may not view subscribers may not
            # read it, and only those who may change them may mail it out.
            def run(request: HttpRequest, pk: int) -> HttpResponse:
                if not allowed(request):
                    raise PermissionDenied
                subscriber = get_object_or_404(Subscriber, pk=pk)
                return view(request, subscriber)

            return self.admin_site.admin_view(run)

        return [
            path(
                "<id:pk>/preview/",
                tool(dashboard.preview, self.has_view_permission),
                name="newsletter_subscriber_preview",
            ),
            path(
                "<id:pk>/send-test/",
                require_POST(tool(dashboard.send_test, self.has_change_permission)),
                name="newsletter_subscriber_send_test",
            ),
            *super().get_urls(),
        ]

    def save_model(self, request: HttpRequest, obj: Subscriber, form: Any, change: bool) -> None:
        if not change:
            super().save_model(request, obj, form, change)
            return
        # The reader may leave (one-click unsubscribe, bounce, complaint) between the moment this
        # form loaded them and this save: write only what staff changed, and the status and
        # schedule only over the status the form was loaded with, never over a stop.
        changed = [n for n in form.changed_data if n in SUBSCRIBER_FIELDS]
        obj.save(update_fields=[n for n in changed if n not in LIFECYCLE])
        if "status" in changed and obj.status in Subscriber.STOPPED:
            # Stopped the one way mail stops (queued digests cancelled, the schedule dropped),
            # as the reader's own unsubscribe does.
            Subscriber.objects.filter(pk=obj.pk).stop_mail(obj.status)
        elif lifecycle := {n: getattr(obj, n) for n in changed if n in LIFECYCLE}:
            Subscriber.objects.filter(pk=obj.pk, status=form.initial["status"]).exclude(
                status__in=Subscriber.STOPPED
            ).update(**lifecycle)
        obj.refresh_from_db()

    def delete_model(self, request: HttpRequest, obj: Subscriber) -> None:
        subscriptions.erase(obj)  # as the reader's own "delete my data"

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Subscriber]) -> None:
        for subscriber in queryset:
            subscriptions.erase(subscriber)

    @admin.action(description="Pause the selected subscribers", permissions=["change"])
    def pause(self, request: HttpRequest, queryset: QuerySet[Subscriber]) -> None:
        paused = subscriptions.pause_all(queryset)
        self.message_user(request, f"Paused {paused} active subscriber(s).")

    @admin.action(description="Resume the selected subscribers", permissions=["change"])
    def resume(self, request: HttpRequest, queryset: QuerySet[Subscriber]) -> None:
        for subscriber in queryset:
            subscriptions.resume(subscriber)
        self.message_user(request, "Resumed the paused ones among them.")

    @admin.action(
        description="Resend the confirmation email (pending only)", permissions=["change"]
    )
    def resend_confirmation(self, request: HttpRequest, queryset: QuerySet[Subscriber]) -> None:
        pending = list(
            queryset.filter(status=Subscriber.Status.PENDING).values_list("pk", flat=True)
        )
        for subscriber_id in pending:
            subscriptions.owe_email(subscriber_id, "confirm")
            tasks.queue_subscription_email(subscriber_id, "confirm")
        self.message_user(request, f"Queued {len(pending)} confirmation email(s).")

    @admin.action(description="Export the selected subscribers as CSV", permissions=["view"])
    def export_csv(self, request: HttpRequest, queryset: QuerySet[Subscriber]) -> HttpResponse:
        response = HttpResponse(content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="subscribers.csv"'
        writer = csv.writer(response)
        fields = [
            "email",
            "status",
            "frequency",
            "send_hour",
            "timezone",
            "created",
            "confirmed_at",
        ]
        writer.writerow([*fields, "topics", "keywords"])
        for s in queryset.prefetch_related("profiles__topics").order_by("email"):
            row = [getattr(s, f) for f in fields]
            profiles = s.profiles.all()
            topics = dict.fromkeys(t.slug for p in profiles for t in p.topics.all())
            keywords = dict.fromkeys(k for p in profiles for k in p.keywords)
            cells = (*row, "; ".join(topics), "; ".join(keywords))
            writer.writerow([as_cell(v) for v in cells])
        return response


class DigestItemInline(admin.TabularInline[DigestItem, Digest]):
    model = DigestItem
    extra = 0
    can_delete = False
    fields = readonly_fields = ("rank", "section", "paper", "score", "reason")

    def has_add_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False


class ReadOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """What was sent, and what readers and providers did: recorded, never edited by hand."""

    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}  # as Django 6 will

    def has_add_permission(self, request) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False


@admin.register(Digest)
class DigestAdmin(ReadOnlyAdmin):
    list_display = ("period", "subscriber", "status", "sent_at", "created")
    list_filter = ("status",)
    search_fields = ("subscriber__email", "message_id")
    list_select_related = ("subscriber",)
    readonly_fields = [f.name for f in Digest._meta.fields]
    inlines = [DigestItemInline]


@admin.register(DeliveryEvent)
class DeliveryEventAdmin(ReadOnlyAdmin):
    list_display = ("received", "provider", "event_type", "soft", "recipient", "digest")
    list_filter = ("provider", "event_type", "soft")
    search_fields = ("recipient", "message_id")
    date_hierarchy = "received"


@admin.register(Click)
class ClickAdmin(ReadOnlyAdmin):
    list_display = ("at", "subscriber", "paper", "url")
    search_fields = ("subscriber__email", "paper__title")
    list_select_related = ("subscriber", "paper")


@admin.register(Feedback)
class FeedbackAdmin(ReadOnlyAdmin):
    list_display = ("at", "subscriber", "paper", "value")
    list_filter = ("value",)
    search_fields = ("subscriber__email", "paper__title")
    list_select_related = ("subscriber", "paper")


@admin.register(OwedEmail)
class OwedEmailAdmin(ReadOnlyAdmin):
    """Confirmation and manage-link emails asked for and not sent yet: a row older than a few
    minutes means the broker or the mail server is not taking them (each dispatch round
    queues them again)."""

    list_display = ("owed_since", "name", "subscriber", "claimed_at")
    list_filter = ("name",)
    search_fields = ("subscriber__email",)
    list_select_related = ("subscriber",)
    date_hierarchy = "owed_since"


@admin.register(Library)
class LibraryAdmin(ReadOnlyAdmin):
    """Reference libraries readers uploaded: which file, for which profile, how many entries
    (the entries themselves are the reader's, in their export)."""

    list_display = ("uploaded_at", "filename", "profile", "entry_count")
    search_fields = ("profile__subscriber__email", "filename")
    list_select_related = ("profile__subscriber",)
    fields = readonly_fields = ("profile", "filename", "uploaded_at", "entry_count")

    @admin.display(description="entries")
    def entry_count(self, library: Library) -> int:
        return len(library.entries)


admin.site.site_header = admin.site.site_title = "Paperboy"
