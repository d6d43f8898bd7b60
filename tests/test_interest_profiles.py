"""Interest profiles: what a reader gives (description, liked papers, followed authors, excluded
keywords) is stored on a profile of theirs, all or nothing; a liked paper the catalogue lacks
is fetched in the background and counts once it arrives; the data migration moved everyone's
interests into a first profile."""

from pathlib import Path

import pytest
from django.core import mail
from django.db import IntegrityError, connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from django.utils import timezone

from newsletter import emails
from newsletter.digests import for_planning, plan_digests, signals_of
from newsletter.models import InterestProfile, ProfilePaper, Subscriber
from papers.models import Paper
from tests.factories import active_subscriber, http_server

FIXTURES = Path(__file__).resolve().parent / "fixtures"
HF_PAPER = (FIXTURES / "hf_paper_2509.04664.json").read_text()
ARXIV_NOTHING = (FIXTURES / "arxiv_api_unknown_id.xml").read_text()


def signup_form(**overrides: object) -> dict[str, object]:
    data: dict[str, object] = {
        "email": "ada@example.org",
        "about": "I train small networks to run on microcontrollers.",
        "keywords": "",
        "liked": "https://arxiv.org/abs/2401.00001v2\nTiny Networks, Revisited",
        "authors": "Song Han; Ji Lin",
        "excluded_keywords": "medical",
        "frequency": "daily",
        "weekday": "0",
        "send_hour": "8",
        "timezone": "UTC",
        "consent": "on",
    }
    return data | overrides


@pytest.fixture
def tiny() -> Paper:
    return Paper.objects.create(
        title="Tiny Networks, Revisited", title_key="tiny networks revisited", source="text"
    )


@pytest.mark.django_db
def test_a_signup_stores_the_description_liked_papers_authors_and_exclusions(
    client: Client, tiny: Paper
) -> None:
    response = client.post("/", signup_form())

    assert b"Check your inbox" in response.content
    profile = Subscriber.objects.get().profiles.get()
    assert profile.about == "I train small networks to run on microcontrollers."
    assert profile.authors == ["Song Han", "Ji Lin"]
    assert profile.excluded_keywords == ["medical"]
    assert [(p.ref, p.arxiv_id, p.paper) for p in profile.papers.all()] == [
        ("https://arxiv.org/abs/2401.00001v2", "2401.00001", None),  # fetched once confirmed
        ("Tiny Networks, Revisited", "", tiny),
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("about", "x" * 1001, "Up to 1,000 characters, please (this is 1001)"),
        ("about", "I work on\x1b[31m\x07\x08 terminals", "plain text only"),
        ("liked", "\n".join(f"2401.{n:05d}" for n in range(500)), "Up to 100 papers, please"),
        ("liked", "2401.123", "“2401.123” is not a valid arXiv id"),
        ("liked", "A Paper Nobody Wrote", "No paper titled “A Paper Nobody Wrote” is in our"),
        ("liked", "https://example.com/abs/2401.00001", "links to example.com"),
        ("liked", "10.1145/3292500.3330701", "is not an arXiv DOI"),
        ("authors", "Song Han; 1234", "“1234” is not a name"),
        ("authors", "; ".join(f"Author {chr(65 + n % 26)}{n}" for n in range(51)), "Up to 50"),
        ("excluded_keywords", "ok\x07bad", "plain text only"),
    ],
)
def test_bad_input_gets_a_message_next_to_the_field_and_stores_nothing(
    client: Client, tiny: Paper, field: str, value: str, message: str
) -> None:
    response = client.post("/", signup_form(**{field: value}))

    assert response.status_code == 400
    page = response.content.decode()
    at = page.index(f'id="id_{field}"')
    next_field = page.find('<div class="field">', at)
    assert message in page[at:next_field]  # next to the field, not elsewhere
    assert not Subscriber.objects.exists() and not InterestProfile.objects.exists()
    assert not ProfilePaper.objects.exists() and not mail.outbox


@pytest.mark.django_db
def test_every_mistake_among_the_liked_papers_is_named(client: Client) -> None:
    typed = "2401.00001, 2401.123\nhttps://evil.example/2401.00002\nNo Such Title"
    page = client.post("/", signup_form(liked=typed)).content.decode()
    assert "“2401.123” is not a valid arXiv id" in page
    assert "links to evil.example" in page


@pytest.mark.django_db
def test_the_manage_page_shows_what_the_reader_gave_and_a_bad_change_keeps_it(
    client: Client, tiny: Paper
) -> None:
    reader = active_subscriber(
        "ada@example.org",
        [],
        about="Tiny networks.",
        liked=["https://huggingface.co/papers/2401.00001", "Tiny Networks, Revisited"],
        authors=["Song Han"],
        excluded_keywords=["medical"],
    )
    url = emails.manage_url(reader)
    page = client.get(url).content.decode()
    for shown in ("Tiny networks.", "https://huggingface.co/papers/2401.00001", "Song Han"):
        assert shown in page

    form = signup_form(liked="2401.00001\nhttps://example.com/x", digest_size="10")
    form |= {"action": "save", "trending_weight": "0.2"}
    response = client.post(url, form)

    assert response.status_code == 400 and "links to example.com" in response.content.decode()
    profile = reader.profiles.get()
    assert profile.about == "Tiny networks." and profile.authors == ["Song Han"]
    assert profile.refs(ProfilePaper.LIKED) == [
        "https://huggingface.co/papers/2401.00001",
        "Tiny Networks, Revisited",
    ]


@pytest.mark.django_db
def test_a_subscriber_has_at_most_five_profiles() -> None:
    reader = active_subscriber("ada@example.org", ["graphs"])
    for slot in range(2, 6):
        InterestProfile.objects.create(subscriber=reader, slot=slot, name=f"Profile {slot}")
    with pytest.raises(IntegrityError):
        InterestProfile.objects.create(subscriber=reader, slot=6)


@pytest.mark.django_db
def test_a_profile_slot_is_taken_once() -> None:
    reader = active_subscriber("ada@example.org", ["graphs"])
    with pytest.raises(IntegrityError):
        InterestProfile.objects.create(subscriber=reader, slot=1)


@pytest.fixture
def daily_papers(settings):  # type: ignore[no-untyped-def]
    """Hugging Face knows 2509.04664 (a published capture); arXiv knows nothing."""
    asked: list[str] = []

    def respond(path: str, nth: int) -> tuple[int, str, str]:
        asked.append(path)
        if path.startswith("/api/papers/2509.04664"):
            return 200, "application/json", HF_PAPER
        if path.startswith("/api/papers/"):
            return 404, "application/json", '{"error":"Paper not found"}'
        return 200, "application/atom+xml", ARXIV_NOTHING

    with http_server(respond) as base:
        settings.PAPERS_HF_PAPER_API_URL = f"{base}/api/papers"
        settings.PAPERS_ARXIV_API_URL = f"{base}/api/query"
        yield asked


@pytest.mark.django_db
def test_a_liked_paper_not_in_the_catalogue_is_fetched_once_confirmed_and_then_counts(
    client: Client, daily_papers, eager_tasks, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    client.post("/", signup_form(liked="https://huggingface.co/papers/2509.04664v1"))
    assert not Paper.objects.exists() and not daily_papers  # a signup alone fetches nothing
    confirm = mail.outbox[-1].body.split("/confirm/")[1].split("/")[0]

    with django_capture_on_commit_callbacks(execute=True) as queued:
        client.post(f"/confirm/{confirm}/")

    assert len(queued) == 1 and daily_papers == ["/api/papers/2509.04664"]
    paper = Paper.objects.get(arxiv_id="2509.04664")
    reader = Subscriber.objects.get()
    profile = reader.profiles.get()
    signals, _ = signals_of([reader.id])
    assert signals[profile.id].liked == {paper.id}  # found by its id, as composing finds it


@pytest.mark.django_db
def test_composing_finds_a_liked_paper_that_arrived_after_it_was_given() -> None:
    reader = active_subscriber("ada@example.org", ["graphs"], liked=["2401.00001"])
    profile = reader.profiles.get()
    assert signals_of([reader.id])[0][profile.id].liked == set()
    arrived = Paper.objects.create(
        arxiv_id="2401.00001", title="Arrived", title_key="arrived", source="arxiv"
    )
    assert signals_of([reader.id])[0][profile.id].liked == {arrived.id}
    # nothing was written: the link is made when the reader is next saved or confirmed
    assert profile.papers.get().paper is None
    assert plan_digests(list(for_planning(Subscriber.objects.all())), timezone.now()) == {
        reader.id: []
    }


# --- The data migration -------------------------------------------------------------------------

BEFORE = [("newsletter", "0005_interest_profiles"), ("papers", "0003_seed_topics")]
AFTER = [("newsletter", "0007_remove_subscriber_interests")]


@pytest.fixture
def migrator(transactional_db):  # type: ignore[no-untyped-def]
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    executor.migrate(BEFORE)
    yield executor
    executor.loader.build_graph()
    executor.migrate(latest)


def test_the_migration_moves_every_subscribers_interests_into_a_first_profile(migrator) -> None:  # type: ignore[no-untyped-def]
    old = migrator.loader.project_state(BEFORE).apps
    Subscriber_, Paper_, Topic_ = (
        old.get_model("newsletter", "Subscriber"),
        old.get_model("papers", "Paper"),
        old.get_model("papers", "Topic"),
    )
    liked = Paper_.objects.create(arxiv_id="2401.00001", title="L", title_key="l", source="text")
    voted = Paper_.objects.create(arxiv_id="2401.00002", title="V", title_key="v", source="text")
    ada = Subscriber_.objects.create(
        email="ada@example.org",
        keywords=["graph neural networks"],
        excluded_keywords=["medical"],
        trending_weight=0.5,
        liked_refs=["2401.00001", "2401.99999"],
    )
    graphs, _ = Topic_.objects.get_or_create(slug="graph-neural-networks", defaults={"name": "G"})
    ada.topics.add(graphs)
    ada.liked_papers.add(liked)
    Subscriber_.objects.create(email="bob@example.org", keywords=["diffusion"])
    digest = old.get_model("newsletter", "Digest").objects.create(subscriber=ada, period="p")
    digest.items.create(paper=voted, rank=1, score=1.0, reason="r")
    old.get_model("newsletter", "Feedback").objects.create(
        subscriber=ada, paper=voted, digest=digest, value=-1
    )
    old.get_model("newsletter", "Click").objects.create(
        subscriber=ada, paper=voted, digest=digest, url="https://arxiv.org/abs/2401.00002"
    )

    migrator.loader.build_graph()
    migrator.migrate(AFTER)

    new = migrator.loader.project_state(AFTER).apps
    Profile = new.get_model("newsletter", "InterestProfile")
    first = Profile.objects.get(subscriber__email="ada@example.org")
    assert (first.slot, first.name) == (1, "My interests")
    assert (first.keywords, first.excluded_keywords, first.trending_weight) == (
        ["graph neural networks"],
        ["medical"],
        0.5,
    )
    assert [t.slug for t in first.topics.all()] == ["graph-neural-networks"]
    papers = first.papers.order_by("ref")
    assert [(p.ref, p.paper_id, p.opinion) for p in papers] == [
        ("2401.00001", liked.id, 1),
        ("2401.99999", None, 1),
    ]
    assert Profile.objects.get(subscriber__email="bob@example.org").keywords == ["diffusion"]
    for model in ("Feedback", "Click", "DigestItem"):
        assert new.get_model("newsletter", model).objects.get().profile_id == first.id, model
    fields = {f.name for f in new.get_model("newsletter", "Subscriber")._meta.get_fields()}
    assert not fields & {"keywords", "topics", "liked_refs", "liked_papers", "trending_weight"}
