"""The reader's control on the manage page: several named profiles, the balance, a preview of
the next digest, their state, and a private feed; and the digest's sections per profile."""

import pytest
from bs4 import BeautifulSoup
from django.test import Client
from django.utils import timezone

from newsletter import emails
from newsletter.digests import claim_due_subscribers, compose_chunk, send_queued
from newsletter.models import Digest, InterestProfile, Subscriber
from papers.models import Paper
from tests.factories import active_subscriber, add_profile

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalogue() -> list[Paper]:
    today = timezone.now().date()
    subjects = {
        "graph": "Graph neural networks learn node representations by message passing.",
        "diffusion": "Diffusion models generate images by iterative denoising.",
        "robot": "Robot grasping policies learnt from demonstrations.",
    }
    papers = []
    for n, (subject, abstract) in enumerate(subjects.items()):
        for variant in range(3):
            title = f"On {subject} number {variant}"
            papers.append(
                Paper.objects.create(
                    title=title,
                    title_key=title.lower(),
                    abstract=f"{abstract} We propose variant {variant} of {n}.",
                    listed_on=today,
                    upvotes={"graph": 20 * variant, "diffusion": variant, "robot": 50}[subject],
                    source="text",
                )
            )
    both = "On graph diffusion models"  # fits two profiles
    papers.append(
        Paper.objects.create(
            title=both,
            title_key=both.lower(),
            abstract="Graph neural networks meet diffusion models: message passing denoising.",
            listed_on=today,
            source="text",
        )
    )
    return papers


def page(client: Client, url: str) -> BeautifulSoup:
    return BeautifulSoup(client.get(url).content, "html.parser")


def test_a_reader_adds_renames_and_deletes_profiles_but_never_the_last(client: Client) -> None:
    reader = active_subscriber("ada@example.org", ["graph neural networks"])
    url = emails.manage_url(reader)

    response = client.post(url, {"action": "add_profile", "new_profile": "Reading group"})
    second = reader.profiles.get(name="Reading group")
    assert response["Location"].endswith(f"?profile={second.slot}")
    form = client.get(response["Location"]).context["form"]
    assert form.initial["name"] == "Reading group"
    data = {k: v for k, v in form.initial.items() if k != "topics"}
    data |= {"keywords": "diffusion models", "name": "Diffusion club", "action": "save"}
    data |= {"profile": str(second.slot)}
    assert client.post(url, data).status_code == 302
    second.refresh_from_db()
    assert (second.name, second.keywords) == ("Diffusion club", ["diffusion models"])
    assert reader.profiles.get(slot=1).keywords == ["graph neural networks"]  # untouched

    for n in range(3, 6):
        client.post(url, {"action": "add_profile", "new_profile": f"P{n}"})
    response = client.post(url, {"action": "add_profile", "new_profile": "Sixth"}, follow=True)
    assert "five profiles, the most there can be" in response.content.decode()
    assert reader.profiles.count() == InterestProfile.MAX_PER_SUBSCRIBER

    for profile in list(reader.profiles.all()):
        client.post(url, {"action": "delete_profile", "profile": str(profile.slot)})
    assert list(reader.profiles.values_list("name", flat=True)) == ["P5"]  # the last one stays
    assert "delete_profile" not in client.get(url).content.decode()


def test_each_profile_keeps_its_own_balance(client: Client) -> None:
    reader = active_subscriber("ada@example.org", ["graph neural networks"], trending_weight=0.0)
    add_profile(reader, name="Trends", keywords=["robot"], trending_weight=0.8)
    url = emails.manage_url(reader)

    assert client.get(url).context["form"].initial["trending_weight"] == "0.0"
    assert client.get(url + "?profile=2").context["form"].initial["trending_weight"] == "0.8"


def test_the_manage_page_previews_the_next_digest_and_a_change_shows_at_once(
    client: Client, catalogue
) -> None:  # type: ignore[no-untyped-def]
    reader = active_subscriber("ada@example.org", ["graph neural networks"], digest_size=3)
    url = emails.manage_url(reader)

    before = page(client, url).find(id="preview")
    assert before is not None
    assert "3 of 10 new papers matched your interests" not in before.get_text()
    titles = [a.get_text() for a in before.select("li a")]
    assert titles and all("graph" in t for t in titles)

    form = client.get(url).context["form"]
    data = {k: v for k, v in form.initial.items() if k != "topics"}
    response = client.post(url, data | {"trending_weight": "0.8", "action": "save"})
    assert response.status_code == 302, response.context["form"].errors

    after = page(client, url).find(id="preview")
    assert after is not None
    moved = [a.get_text() for a in after.select("li a")]
    # Mostly what's trending now: among the papers that match, the most voted first.
    assert moved[:2] == ["On graph number 2", "On graph number 1"] and moved != titles
    assert not Digest.objects.exists()  # a preview records nothing


def test_a_preview_is_composed_by_the_code_that_composes_the_digest(
    client: Client, catalogue
) -> None:  # type: ignore[no-untyped-def]
    reader = active_subscriber("ada@example.org", ["graph neural networks"], digest_size=3)
    add_profile(reader, name="Diffusion", keywords=["diffusion models"])
    preview = page(client, emails.manage_url(reader)).find(id="preview")
    assert preview is not None

    send_queued(compose_chunk(claim_due_subscribers(timezone.now(), 10)))

    sent = Digest.objects.get().items.order_by("rank").select_related("paper")
    assert sorted(a.get_text() for a in preview.select("li a")) == sorted(
        i.paper.title for i in sent
    )


def test_a_paper_fitting_two_profiles_comes_once_in_the_better_one_naming_both(
    catalogue, mailoutbox
) -> None:  # type: ignore[no-untyped-def]
    reader = active_subscriber(
        "ada@example.org", ["graph neural networks"], name="Thesis", digest_size=6
    )
    add_profile(reader, name="Reading group", keywords=["diffusion models"])

    send_queued(compose_chunk(claim_due_subscribers(timezone.now(), 10)))

    digest = Digest.objects.get()
    both = digest.items.get(paper__title="On graph diffusion models")
    assert both.profile is not None and both.also_for == [
        {"Thesis": "Reading group", "Reading group": "Thesis"}[both.profile.name]
    ]
    text = mailoutbox[0].body
    assert text.count("On graph diffusion models") == 1
    assert text.index("== Thesis ==") < text.index("== Reading group ==")
    assert f"also fits '{both.also_for[0]}'" in text
    assert "of 10 new papers matched your interests" in text
    html = mailoutbox[0].alternatives[0][0]
    assert "Thesis</h2>" in html and "Reading group</h2>" in html


def test_the_manage_page_says_when_the_next_and_last_digests_are_and_why_mail_stopped(
    client: Client, catalogue
) -> None:  # type: ignore[no-untyped-def]
    reader = active_subscriber("ada@example.org", ["graph neural networks"], timezone="Asia/Tokyo")
    url = emails.manage_url(reader)
    assert page(client, url).find(id="last-digest").get_text() == "none yet"  # type: ignore[union-attr]

    send_queued(compose_chunk(claim_due_subscribers(timezone.now(), 10)))
    last = page(client, url).find(id="last-digest")
    assert last is not None and "read it again" in last.get_text()
    link = last.find("a")["href"]  # type: ignore[index, union-attr]
    assert (
        "On graph" in client.get(str(link).removeprefix("http://localhost:8000")).content.decode()
    )
    assert "(Asia/Tokyo time)" in page(client, url).find(id="next-digest").get_text()  # type: ignore[union-attr]

    for status, said in [
        ("paused", "Paused"),
        ("bounced", "bounced"),
        ("complained", "reported as spam"),
    ]:
        Subscriber.objects.filter(pk=reader.pk).update(status=status)
        stopped = page(client, url).find(id="stopped")
        assert stopped is not None and said in stopped.get_text()


def test_the_private_feed_carries_the_picks_and_a_reset_or_tampered_token_is_a_404(
    client: Client, catalogue
) -> None:  # type: ignore[no-untyped-def]
    reader = active_subscriber("ada@example.org", ["graph neural networks"])
    send_queued(compose_chunk(claim_due_subscribers(timezone.now(), 10)))
    url = emails.manage_url(reader)
    feed = page(client, url).find(id="feed-url")
    assert feed is not None
    path = str(feed["href"]).removeprefix("http://localhost:8000")

    response = client.get(path)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/atom+xml")
    atom = BeautifulSoup(response.content, "html.parser")
    titles = [e.title.get_text() for e in atom.find_all("entry")]  # type: ignore[union-attr]
    assert titles and all(t.startswith("On graph") for t in titles)
    assert "matches your keyword" in atom.find("entry").summary.get_text()  # type: ignore[union-attr]

    token = path.split("/")[2]
    assert client.get(f"/feed/{token[:-2]}xx/").status_code == 404  # tampered
    other = active_subscriber("bob@example.org", ["robot"])
    forged = emails.sign([other.pk, reader.feed_key], "feed")  # another reader's id, own key
    assert client.get(f"/feed/{forged}/").status_code == 404

    client.post(url, {"action": "reset_feed"})
    assert client.get(path).status_code == 404  # revoked
    new = page(client, url).find(id="feed-url")
    assert new is not None and str(new["href"]) != str(feed["href"])
    assert client.get(str(new["href"]).removeprefix("http://localhost:8000")).status_code == 200


def test_the_feed_holds_only_digests_that_were_sent(client: Client, catalogue) -> None:  # type: ignore[no-untyped-def]
    reader = active_subscriber("ada@example.org", ["graph neural networks"])
    compose_chunk(claim_due_subscribers(timezone.now(), 10))  # queued, not sent yet
    response = client.get(emails.feed_url(reader).removeprefix("http://localhost:8000"))
    assert BeautifulSoup(response.content, "html.parser").find("entry") is None
