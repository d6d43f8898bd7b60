"""Staff screens open for every model, with data in them."""

import csv
import io

import pytest
from bs4 import BeautifulSoup
from django.urls import reverse
from django.utils import timezone

from newsletter.models import (
    Click,
    DeliveryEvent,
    Digest,
    Feedback,
    Library,
    OwedEmail,
    Subscriber,
)
from papers.models import Paper
from tests.factories import active_subscriber

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager_tasks")]


def test_every_admin_list_and_detail_page_opens(admin_client) -> None:  # type: ignore[no-untyped-def]
    reader = active_subscriber("ada@example.org", ["graphs"])
    paper = Paper.objects.create(title="GNNs", title_key="gnns", source="hf-json")
    digest = Digest.objects.create(subscriber=reader, period="2026-11-23", status="sent")
    digest.items.create(paper=paper, rank=1, score=0.5, reason="matches your keyword 'graphs'")
    rows = [
        reader,
        paper,
        digest,
        DeliveryEvent.objects.create(
            provider="Postmark",
            event_type="bounced",
            event_key="k",
            digest=digest,
            at=timezone.now(),
        ),
        Click.objects.create(digest=digest, subscriber=reader, paper=paper, url="https://x.org"),
        Feedback.objects.create(subscriber=reader, paper=paper, digest=digest, value=-1),
        OwedEmail.objects.create(subscriber=reader, name="confirm"),
        Library.objects.create(
            profile=reader.profiles.get(), filename="mine.bib", entries=[{"title": "GNNs"}]
        ),
    ]
    for row in rows:
        meta = row._meta
        changelist = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
        assert admin_client.get(changelist).status_code == 200, changelist
        change = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[row.pk])
        assert admin_client.get(change).status_code == 200, change


def run_action(admin_client, action: str, *subscribers):  # type: ignore[no-untyped-def]
    return admin_client.post(
        reverse("admin:newsletter_subscriber_changelist"),
        {"action": action, "_selected_action": [s.pk for s in subscribers]},
    )


def test_subscriber_actions_pause_resume_resend_and_export(admin_client, mailoutbox) -> None:  # type: ignore[no-untyped-def]
    ada = active_subscriber("ada@example.org", ["graph neural networks"])
    bob = active_subscriber("bob@example.org", ["diffusion"], status=Subscriber.Status.PENDING)

    run_action(admin_client, "pause", ada, bob)
    ada.refresh_from_db()
    bob.refresh_from_db()
    assert (ada.status, ada.next_digest_at) == (Subscriber.Status.PAUSED, None)
    assert bob.status == Subscriber.Status.PENDING  # only active subscribers pause

    run_action(admin_client, "resume", ada)
    ada.refresh_from_db()
    assert ada.status == Subscriber.Status.ACTIVE and ada.next_digest_at is not None

    run_action(admin_client, "resend_confirmation", ada, bob)
    assert [m.to for m in mailoutbox] == [["bob@example.org"]]  # pending ones only
    assert "/confirm/" in mailoutbox[0].body

    export = run_action(admin_client, "export_csv", ada, bob)
    rows = list(csv.reader(io.StringIO(export.content.decode())))
    assert export["Content-Type"] == "text/csv"
    assert [r[:2] for r in rows] == [
        ["email", "status"],
        ["ada@example.org", "active"],
        ["bob@example.org", "pending"],
    ]
    assert rows[1][-1] == "graph neural networks"


def test_the_csv_export_starts_no_cell_with_what_a_spreadsheet_evaluates(admin_client) -> None:  # type: ignore[no-untyped-def]
    formulas = ['=HYPERLINK("https://evil.example","x")', "+1+1", "-1+1", "@SUM(A1)", "\tx", "\rx"]
    readers = [
        active_subscriber(f"r{n}@example.org", [formula, "graph neural networks"])
        for n, formula in enumerate(formulas)
    ]
    readers.append(active_subscriber("=1+1@example.org", ["graph neural networks"]))

    export = run_action(admin_client, "export_csv", *readers)

    rows = list(csv.reader(io.StringIO(export.content.decode())))
    cells = [cell for row in rows[1:] for cell in row]
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    keywords = {row[0]: row[-1] for row in rows[1:]}
    assert keywords["r0@example.org"] == "'" + formulas[0] + "; graph neural networks"
    assert "'=1+1@example.org" in keywords  # shown as typed, after the apostrophe


def form_fields(page: bytes) -> dict[str, str | list[str]]:
    """What the browser would post from the admin's change form, as it stands."""
    form = BeautifulSoup(page, "html.parser").find("form", id="subscriber_form")
    data: dict[str, str | list[str]] = {}
    for field in form.find_all(["input", "textarea", "select"]):  # type: ignore[union-attr]
        name = str(field.get("name") or "")
        if not name or field.get("type") in ("submit", "button"):
            continue
        if field.name == "textarea":
            data[name] = field.text.removeprefix("\n")
        elif field.name == "select":
            chosen = [str(o["value"]) for o in field.find_all("option") if o.has_attr("selected")]
            data[name] = chosen if field.has_attr("multiple") else str((chosen or [""])[0])
        elif field.get("type") == "checkbox":
            if field.has_attr("checked"):
                data[name] = str(field.get("value", "on"))
        else:
            data[name] = str(field.get("value", ""))
    return data


def test_staff_see_and_edit_a_subscribers_profiles_with_keywords_as_lines(admin_client) -> None:  # type: ignore[no-untyped-def]
    reader = active_subscriber(
        "ada@example.org",
        ["graph neural networks", "message passing"],
        about="Graphs of molecules.",
        authors=["Ada Lovelace"],
        liked=["2401.00001"],
    )
    url = reverse("admin:newsletter_subscriber_change", args=[reader.pk])
    page = admin_client.get(url)
    text = BeautifulSoup(page.content, "html.parser").get_text()
    assert "Graphs of molecules." in text and "liked: 2401.00001 (not in the catalogue yet)" in text

    data = form_fields(page.content)
    assert data["profiles-0-keywords"] == "graph neural networks\nmessage passing"
    data["profiles-0-keywords"] = "graph neural networks\r\n  protein   folding \r\n\r\n"
    data["profiles-0-authors"] = "Ada Lovelace\r\nAlan Turing"
    response = admin_client.post(url, data)

    assert response.status_code == 302, response.content
    profile = reader.profiles.get()
    assert profile.keywords == ["graph neural networks", "protein folding"]
    assert profile.authors == ["Ada Lovelace", "Alan Turing"]


def test_the_admin_refuses_to_delete_a_subscribers_last_profile(admin_client) -> None:  # type: ignore[no-untyped-def]
    reader = active_subscriber("ada@example.org", ["graphs"])
    url = reverse("admin:newsletter_subscriber_change", args=[reader.pk])
    data = form_fields(admin_client.get(url).content)
    data["profiles-0-DELETE"] = "on"
    response = admin_client.post(url, data)
    assert response.status_code == 200 and "Please submit at least 1 form" in response.text
    assert reader.profiles.count() == 1


def test_the_admin_rejects_an_unknown_time_zone_next_to_the_field(admin_client) -> None:  # type: ignore[no-untyped-def]
    reader = active_subscriber("ada@example.org", ["graphs"])
    url = reverse("admin:newsletter_subscriber_change", args=[reader.pk])
    data = form_fields(admin_client.get(url).content)
    data["timezone"] = "Europe/Pariss"

    response = admin_client.post(url, data)

    assert response.status_code == 200
    field = BeautifulSoup(response.content, "html.parser").select_one(".field-timezone")
    assert field is not None and "is not a time zone we know" in field.get_text()
    reader.refresh_from_db()
    assert reader.timezone == "UTC"
