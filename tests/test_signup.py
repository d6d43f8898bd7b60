import re
import threading

import pytest
from django.core import mail
from django.db import connection
from django.test import Client

from newsletter import subscriptions
from newsletter.forms import SignupForm
from newsletter.models import ConsentRecord, ProfilePaper, Subscriber
from papers.models import Topic
from tests.conftest import address_lookup_plans
from tests.factories import active_subscriber

# The confirmation goes through a task, run here at once (a worker: test_confirmation_delivery).
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager_tasks")]


@pytest.fixture
def topics() -> list[Topic]:
    return list(Topic.objects.filter(slug__in=["diffusion-models", "graph-neural-networks"]))


def form(**overrides: object) -> dict[str, object]:
    data: dict[str, object] = {
        "email": "Ada@Example.org",
        "keywords": '"diffusion models", RLHF\nimage editing',
        "liked": "https://arxiv.org/abs/2503.12345v2, 2402.00001",
        "frequency": "weekly",
        "weekday": "4",
        "send_hour": "7",
        "timezone": "Europe/Paris",
        "consent": "on",
        "website": "",
    }
    return data | overrides


def post(client: Client, **overrides: object) -> tuple[int, str]:
    response = client.post(
        "/", form(**overrides), REMOTE_ADDR="203.0.113.7", HTTP_USER_AGENT="Firefox"
    )
    return response.status_code, response.content.decode()


def test_the_form_sits_above_the_trending_list(client: Client) -> None:
    page = client.get("/").content.decode()
    assert page.index('name="email"') < page.index("Trending papers")
    assert 'name="csrfmiddlewaretoken"' in page
    assert "Intl.DateTimeFormat().resolvedOptions().timeZone" in page


def test_a_signup_is_pending_with_its_interests_and_consent_and_gets_a_confirmation(
    client: Client, topics
) -> None:  # type: ignore[no-untyped-def]
    status, page = post(client, topics=[t.pk for t in topics])

    assert status == 200 and "Check your inbox" in page
    subscriber = Subscriber.objects.get()
    assert subscriber.email == "ada@example.org"
    assert subscriber.status == "pending" and subscriber.next_digest_at is None
    profile = subscriber.profiles.get()
    assert profile.keywords == ["diffusion models", "RLHF", "image editing"]
    assert profile.refs(ProfilePaper.LIKED) == ["https://arxiv.org/abs/2503.12345v2", "2402.00001"]
    assert [p.arxiv_id for p in profile.papers.all()] == ["2503.12345", "2402.00001"]
    assert (subscriber.frequency, subscriber.weekday, subscriber.send_hour) == ("weekly", 4, 7)
    assert set(profile.topics.all()) == set(topics)
    consent = ConsentRecord.objects.get()
    assert (consent.kind, consent.ip, consent.user_agent) == ("signup", "203.0.113.7", "Firefox")
    assert len(mail.outbox) == 1 and "/confirm/" in mail.outbox[0].body


def test_the_page_is_the_same_for_new_pending_and_active_addresses(client: Client) -> None:
    def without_csrf(page: str) -> str:
        return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", page)

    active_subscriber("active@example.org", ["graphs"])
    new = post(client, email="new@example.org")
    pending = post(client, email="new@example.org")
    active = post(client, email="active@example.org")

    assert new[0] == pending[0] == active[0] == 200
    assert without_csrf(new[1]) == without_csrf(pending[1]) == without_csrf(active[1])
    subjects = [m.subject for m in mail.outbox]
    assert subjects == [
        "Confirm your Paperboy subscription",
        "Confirm your Paperboy subscription",
        "Your Paperboy subscription",
    ]


def test_an_anonymous_form_never_changes_an_active_subscribers_preferences(client: Client) -> None:
    reader = active_subscriber("ada@example.org", ["graphs"])
    post(client, keywords="something else entirely")
    reader.refresh_from_db()
    assert reader.profiles.get().keywords == ["graphs"] and reader.status == "active"


def test_an_unsubscribed_address_can_sign_up_again(client: Client) -> None:
    active_subscriber("ada@example.org", ["graphs"], status="unsubscribed")
    post(client)
    assert Subscriber.objects.get().status == "pending"


def test_the_honeypot_gets_the_same_page_and_nothing_happens(client: Client) -> None:
    status, page = post(client, website="http://spam.example")
    assert status == 200 and "Check your inbox" in page
    assert not Subscriber.objects.exists() and mail.outbox == []


def test_signups_are_rate_limited_per_address(client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.NEWSLETTER_SIGNUPS_PER_ADDRESS = 2
    assert post(client)[0] == 200
    assert post(client)[0] == 200
    status, page = post(client)
    assert status == 429 and "Too many attempts for this address" in page
    assert "from here" not in page
    assert len(mail.outbox) == 2


def test_signups_are_rate_limited_per_ip(client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.NEWSLETTER_SIGNUPS_PER_IP = 3
    for n in range(3):
        assert post(client, email=f"reader{n}@example.org")[0] == 200
    status, page = post(client, email="reader9@example.org")
    assert status == 429 and "Too many attempts from here" in page
    assert Subscriber.objects.count() == 3


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"email": "not-an-address"}, "email", "Enter a valid email address"),
        ({"email": "a" * 250 + "@example.org"}, "email", "at most 254 characters"),
        ({"email": "ada@example.org\r\nBcc: victim@example.org"}, "email", "Enter a valid email"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone", "not a time zone we know"),
        ({"send_hour": "24"}, "send_hour", "Select a valid choice"),
        ({"send_hour": "-1"}, "send_hour", "Select a valid choice"),
        ({"keywords": ",".join(f"k{n}" for n in range(21))}, "keywords", "Up to 20 keywords"),
        ({"keywords": "x" * 101}, "keywords", "under 100 characters"),
        ({"keywords": "ok\x07bad"}, "keywords", "plain text only"),
        ({"keywords": "ok\x00bad"}, "keywords", "Null characters are not allowed"),
        ({"topics": ["99999"]}, "topics", "Select a valid choice"),
        ({"liked": "2503.123"}, "liked", "“2503.123” is not a valid arXiv id"),
        ({"consent": ""}, "consent", "This field is required"),
        ({"keywords": "", "topics": [], "liked": ""}, None, "Say what you work on, pick a topic"),
    ],
)
def test_bad_input_gets_a_clear_message_and_saves_nothing(
    client: Client, overrides, field, message
) -> None:  # type: ignore[no-untyped-def]
    status, page = post(client, **overrides)
    assert status == 400
    assert message in page
    assert not Subscriber.objects.exists() and mail.outbox == []
    if field == "timezone":
        assert 'value="Mars/Olympus_Mons"' in page  # what was typed is kept


def test_an_error_shows_next_to_its_field(client: Client) -> None:
    _, page = post(client, timezone="Nowhere/Land")
    field = page[page.index('for="id_timezone"') :]
    assert field.index("not a time zone we know") < field.index("</div>")


@pytest.mark.parametrize(
    "address",
    [
        '"<meta\x0chttp-equiv=refresh\x0ccontent=0;url=https://evil.example/>"@x.com',
        '"<meta http-equiv=refresh content=0;url=https://evil.example/>"@x.com',
        '"ada\x07"@example.org',
        '"ada\x7f"@example.org',
        '"x@evil.example,y"@example.org',
        '""@example.com',
        "ada@\ue000.com",
        "ada@\u3002example.com",
        "ada@exa\u200bmple.org",
        "ada@exam\u202eple.org",
    ],
)
def test_an_address_no_mail_system_delivers_is_refused_next_to_the_field(
    client: Client, address: str
) -> None:
    status, page = post(client, email=address)

    assert status == 400
    field = page[page.index('for="id_email"') :]
    error = field.index('class="errorlist')
    assert error < field.index("</div>")  # the message sits in the address's own field
    assert not Subscriber.objects.exists() and mail.outbox == []


@pytest.mark.parametrize(
    ("address", "envelope"),
    [
        ("ada@bücher.example", "ada@xn--bcher-kva.example"),
        ('"ada..lovelace"@example.org', '"ada..lovelace"@example.org'),
        ('".ada"@example.org', '".ada"@example.org'),
        ("ada+papers@example.org", "ada+papers@example.org"),
    ],
)
def test_idn_domains_and_ordinary_quoted_local_parts_sign_up_and_get_their_mail(
    client: Client, smtp_sink, address: str, envelope: str
) -> None:  # type: ignore[no-untyped-def]
    sink, _ = smtp_sink
    status, page = post(client, email=address)

    assert status == 200 and "Check your inbox" in page
    assert Subscriber.objects.get().email == address
    [received] = sink.messages
    assert f"To: {envelope}".encode() in received


@pytest.mark.django_db(transaction=True)
def test_two_signups_of_one_new_address_at_the_same_moment_make_one_pending_row(
    postgres, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    # Found by the signup load test (BENCHMARKS.md): neither request finds a row to lock, both
    # insert, and the second answered a 500. Here the other request commits in between.
    form_data = SignupForm(form(email="ada@example.org"))
    assert form_data.is_valid(), form_data.errors
    apply_preferences = subscriptions.apply_preferences
    raced: list[bool] = []

    def other_request() -> None:
        subscriptions.signup(form_data.cleaned_data, "203.0.113.8", "Chrome")
        connection.close()

    def the_other_request_commits_first(subscriber, cleaned):  # type: ignore[no-untyped-def]
        if not raced:
            raced.append(True)
            other = threading.Thread(target=other_request)
            other.start()
            other.join()
        apply_preferences(subscriber, cleaned)

    monkeypatch.setattr(subscriptions, "apply_preferences", the_other_request_commits_first)
    subscriptions.signup(form_data.cleaned_data, "203.0.113.7", "Firefox")

    subscriber = Subscriber.objects.get()
    assert subscriber.status == "pending"
    assert ConsentRecord.objects.filter(subscriber=subscriber, kind="signup").count() == 2


@pytest.mark.usefixtures("postgres")
def test_a_signup_finds_its_address_through_the_unique_index_not_by_reading_every_row() -> None:
    # email__iexact compares upper(email), which no index holds: with 100,000 subscribers each
    # signup read the whole table (37 ms of the database's time, BENCHMARKS.md).
    active_subscriber("ada@example.org", ["graphs"])
    with address_lookup_plans() as plans:
        subscriptions.signup(form(email="ADA@example.org"), "192.0.2.1", "Mozilla/5.0")

    assert plans and all("subscriber_unique_email" in plan for plan in plans), plans
