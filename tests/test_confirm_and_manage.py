import re
from datetime import timedelta

import pytest
import time_machine
from bs4 import BeautifulSoup, Tag
from django.core import mail
from django.test import Client
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from newsletter import emails, subscriptions
from newsletter.forms import join_terms, split_terms
from newsletter.models import ConsentRecord, Subscriber
from papers.models import Paper, Topic
from tests.factories import active_subscriber

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager_tasks")]


def sign_up(client: Client, email: str = "ada@example.org") -> str:
    client.post(
        "/",
        {
            "email": email,
            "keywords": "graph neural networks",
            "liked": "2503.12345",
            "frequency": "daily",
            "weekday": "0",
            "send_hour": "8",
            "timezone": "Asia/Tokyo",
            "consent": "on",
        },
    )
    found = re.search(r"http://[^\s]+/confirm/[^\s]+/", str(mail.outbox[-1].body))
    assert found
    return found.group(0)


def test_confirming_activates_and_schedules_the_first_digest(client: Client) -> None:
    Paper.objects.create(title="Liked", title_key="liked", arxiv_id="2503.12345", source="hf-json")
    link = sign_up(client)
    assert "Send digests to ada@example.org?" in client.get(link).content.decode()
    assert Subscriber.objects.get().status == "pending"  # a GET (a link scanner) confirms nothing

    response = client.post(link, REMOTE_ADDR="198.51.100.4", HTTP_USER_AGENT="Safari")

    assert response.status_code == 200 and b"You're subscribed" in response.content
    subscriber = Subscriber.objects.get()
    assert subscriber.status == "active" and subscriber.confirmed_at
    assert subscriber.next_digest_at and subscriber.next_digest_at > timezone.now()
    assert subscriber.next_digest_at.astimezone(subscriber.zone).hour == 8
    liked = subscriber.profiles.get().papers.get()
    assert liked.paper and liked.paper.arxiv_id == "2503.12345"
    confirm = ConsentRecord.objects.get(kind="confirm")
    assert (confirm.ip, confirm.user_agent) == ("198.51.100.4", "Safari")


def test_a_confirmation_link_expires(client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    link = sign_up(client)
    with time_machine.travel(
        timezone.now() + timedelta(days=settings.NEWSLETTER_CONFIRM_DAYS, hours=1)
    ):
        response = client.post(link)
    assert response.status_code == 404 and b"expired" in response.content
    assert Subscriber.objects.get().status == "pending"


@pytest.mark.parametrize(
    "path",
    [
        "/confirm/{}/",
        "/manage/{}/",
        "/unsubscribe/{}/",
        "/manage/{}/export/",
        "/digest/{}/",
        "/digest/{}/1/more/",
        "/digest/{}/1/abstract/",
    ],
)
def test_a_tampered_token_gets_a_friendly_404(client: Client, path: str) -> None:
    reader = active_subscriber("ada@example.org", ["graphs"])
    token = emails.sign(reader.id, "manage")[:-3] + "abc"
    response = client.get(path.format(token))
    assert response.status_code == 404
    assert b"This link" in response.content or b"broken" in response.content


def test_a_token_for_one_purpose_does_not_open_another(client: Client) -> None:
    reader = active_subscriber("ada@example.org", ["graphs"])
    assert client.get(f"/manage/{emails.sign(reader.id, 'unsubscribe')}/").status_code == 404


def test_the_manage_page_changes_every_preference_and_reschedules(client: Client) -> None:
    reader = active_subscriber("ada@example.org", ["graphs"])
    topic = Topic.objects.get(slug="diffusion-models")
    url = emails.manage_url(reader)

    response = client.post(
        url,
        {
            "action": "save",
            "topics": [topic.pk],
            "keywords": "video generation",
            "liked": "",
            "excluded_keywords": "medical",
            "frequency": "weekly",
            "weekday": "2",
            "send_hour": "18",
            "timezone": "America/New_York",
            "digest_size": "5",
            "trending_weight": "0.5",
        },
    )

    assert response.status_code == 302 and response["Location"] == url.removeprefix(
        "http://localhost:8000"
    )  # post/redirect/get: a reload repeats nothing
    assert b"Saved" in client.get(response["Location"]).content
    reader.refresh_from_db()
    profile = reader.profiles.get()
    assert profile.keywords == ["video generation"] and profile.excluded_keywords == ["medical"]
    assert list(profile.topics.all()) == [topic]
    assert (reader.frequency, reader.weekday, reader.send_hour) == ("weekly", 2, 18)
    assert (reader.digest_size, profile.trending_weight) == (5, 0.5)
    local = reader.next_digest_at.astimezone(reader.zone)  # type: ignore[union-attr]
    assert (local.weekday(), local.hour) == (2, 18)


def test_bad_preferences_are_refused_next_to_the_field(client: Client) -> None:
    reader = active_subscriber("ada@example.org", ["graphs"])
    response = client.post(
        emails.manage_url(reader),
        {
            "action": "save",
            "keywords": "graphs",
            "frequency": "daily",
            "weekday": "0",
            "send_hour": "8",
            "timezone": "Atlantis/Capital",
            "digest_size": "10",
            "trending_weight": "0.2",
        },
    )
    assert response.status_code == 400 and b"not a time zone we know" in response.content
    reader.refresh_from_db()
    assert reader.timezone == "UTC"


def test_pause_and_resume(client: Client) -> None:
    reader = active_subscriber("ada@example.org", ["graphs"])
    url = emails.manage_url(reader)
    client.post(url, {"action": "pause"})
    reader.refresh_from_db()
    assert reader.status == "paused" and reader.next_digest_at is None
    client.post(url, {"action": "resume"})
    reader.refresh_from_db()
    assert reader.status == "active" and reader.next_digest_at is not None


def test_unconfirmed_signups_are_purged_after_the_configured_days(client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.NEWSLETTER_PURGE_PENDING_AFTER_DAYS = 7
    sign_up(client, "old@example.org")
    active_subscriber("kept@example.org", ["graphs"])
    later = timezone.now() + timedelta(days=8)
    with time_machine.travel(later):
        sign_up(client, "recent@example.org")
    assert subscriptions.purge_unconfirmed(later) == 1
    assert set(Subscriber.objects.values_list("email", flat=True)) == {
        "kept@example.org",
        "recent@example.org",
    }


def submitted(page: bytes) -> dict[str, list[str]]:
    """What a browser posts for the profile form of ``page`` with nothing changed."""
    form = BeautifulSoup(page, "html.parser").find("form", id="profile-form")
    assert isinstance(form, Tag)
    data: dict[str, list[str]] = {}
    for field in form.find_all(["input", "textarea", "select"]):
        name = str(field.get("name", ""))
        if not name or (
            field.get("type") in ("checkbox", "radio") and not field.has_attr("checked")
        ):
            continue
        if field.name == "textarea":
            value = field.text.removeprefix("\n")  # as HTML parsing drops the first newline
        elif field.name == "select":
            chosen = field.find("option", selected=True) or field.find("option")
            value = str(chosen["value"]) if isinstance(chosen, Tag) else ""
        else:
            value = str(field.get("value", ""))
        data.setdefault(name, []).append(value)
    return data


def test_saving_the_manage_page_unchanged_changes_nothing(client: Client) -> None:
    reader = active_subscriber(
        "ada@example.org",
        ["robotics; grasping", "diffusion models", "video"],
        excluded_keywords=["robotics, manipulation", "medical", "a;b"],
        authors=["Ada Lovelace", "Alan Turing"],
        topics=[Topic.objects.get(slug="diffusion-models")],
    )
    url = emails.manage_url(reader)

    for _ in range(2):  # saved, reloaded and saved again
        data = submitted(client.get(url).content) | {"action": ["save"]}
        response = client.post(url, data, follow=True)
        assert response.status_code == 200 and b"Saved" in response.content

    profile = reader.profiles.get()
    assert profile.excluded_keywords == ["robotics, manipulation", "medical", "a;b"]
    assert profile.keywords == ["robotics; grasping", "diffusion models", "video"]
    assert profile.authors == ["Ada Lovelace", "Alan Turing"]
    assert [t.slug for t in profile.topics.all()] == ["diffusion-models"]


def test_excluded_keywords_typed_with_quotes_survive_a_save_a_reload_and_a_save(
    client: Client,
) -> None:
    # Issue 22: this, saved, reloaded and saved again, became three keywords.
    typed = '"robotics, manipulation", medical'
    reader = active_subscriber("ada@example.org", ["diffusion models"])
    url = emails.manage_url(reader)
    data = submitted(client.get(url).content) | {"action": ["save"], "excluded_keywords": [typed]}
    assert b"Saved" in client.post(url, data, follow=True).content

    shown = submitted(client.get(url).content)
    assert shown["excluded_keywords"] == [typed]
    client.post(url, shown | {"action": ["save"]})

    assert reader.profiles.get().excluded_keywords == ["robotics, manipulation", "medical"]


@given(st.lists(st.sampled_from(["a", "b", " ", ",", ";", '"', "\n", "\t", "é", "LLM"])))
def test_keywords_as_typed_survive_being_shown_and_saved_again(pieces: list[str]) -> None:
    terms = split_terms("".join(pieces))
    assert split_terms(join_terms(terms)) == terms


def test_the_confirmed_and_manage_pages_give_the_next_digest_in_the_readers_zone(
    client: Client,
) -> None:
    link = sign_up(client)  # 08:00 in Asia/Tokyo, 23:00 UTC the day before
    page = client.post(link).content.decode()
    reader = Subscriber.objects.get()
    local = reader.next_digest_at.astimezone(reader.zone)  # type: ignore[union-attr]

    assert f"{local:%A} {local.day} {local:%B} at 08:00 (Asia/Tokyo time)" in page
    assert "UTC" not in BeautifulSoup(page, "html.parser").main.get_text()  # type: ignore[union-attr]
    manage = client.get(emails.manage_url(reader)).content.decode()
    shown = BeautifulSoup(manage, "html.parser").find(id="next-digest")
    assert shown is not None
    assert shown.get_text() == f"{local:%A} {local.day} {local:%B}, 08:00 (Asia/Tokyo time)"


def test_every_manage_post_redirects_back_with_its_notice(client: Client) -> None:
    reader = active_subscriber("ada@example.org", ["graphs"])
    url = emails.manage_url(reader).removeprefix("http://localhost:8000")
    notices = {"pause": "Paused.", "resume": "Resumed.", "unsubscribe": "Unsubscribed. You"}
    for action, notice in notices.items():
        response = client.post(url, {"action": action})
        assert (response.status_code, response["Location"]) == (302, url)
        assert notice in client.get(url).content.decode()
    assert notices["unsubscribe"] not in client.get(url).content.decode()  # said once


def test_an_unsubscribed_reader_is_offered_to_resubscribe_with_consent(client: Client) -> None:
    reader = active_subscriber("ada@example.org", ["graphs"])
    url = emails.manage_url(reader).removeprefix("http://localhost:8000")
    subscriptions.unsubscribe(reader)

    page = client.get(url).content.decode()
    assert "Resubscribe" in page and "Save preferences" not in page
    assert "next digest" not in page

    refused = client.post(url, {"action": "resubscribe"})
    assert refused.status_code == 400 and b"This field is required" in refused.content
    assert Subscriber.objects.get().status == "unsubscribed"

    client.post(url, {"action": "resubscribe", "consent": "on"}, REMOTE_ADDR="203.0.113.9")
    reader.refresh_from_db()
    assert reader.status == "active" and reader.unsubscribed_at is None
    assert reader.next_digest_at and reader.next_digest_at > timezone.now()
    consent = ConsentRecord.objects.get(subscriber=reader, kind="resubscribe")
    assert consent.ip == "203.0.113.9" and consent.consent_version
    assert "Welcome back" in client.get(url).content.decode()


def test_a_second_unsubscribe_says_already_unsubscribed(client: Client) -> None:
    reader = active_subscriber("ada@example.org", ["graphs"])
    manage = emails.manage_url(reader).removeprefix("http://localhost:8000")
    link = emails.unsubscribe_url(reader).removeprefix("http://localhost:8000")
    assert b"Unsubscribed" in client.post(link).content

    assert b"already unsubscribed" in client.post(link).content
    assert b"already unsubscribed" in client.get(link).content
    client.post(manage, {"action": "unsubscribe"})
    assert "You were already unsubscribed." in client.get(manage).content.decode()
