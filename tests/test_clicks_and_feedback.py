"""Links in a digest: the click redirect, "more / less like this", and the next ranking
learning from them."""

import re
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from newsletter.digests import (
    claim_due_subscribers,
    compose_chunk,
    for_planning,
    plan_digests,
    send_queued,
    signals_of,
)
from newsletter.emails import sign
from newsletter.models import Click, Digest, Feedback, Subscriber
from papers.models import Paper
from tests.factories import active_subscriber, add_profile

pytestmark = pytest.mark.django_db
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36"

MOLECULES = [
    (
        "Equivariant graph neural networks for molecular property prediction",
        "We predict molecular properties such as solubility and binding energy with an "
        "E(3)-equivariant graph neural network over atoms and chemical bonds of molecules.",
    ),
    (
        "Message passing on molecular graphs for drug discovery",
        "A graph neural network passes messages between atoms and bonds to screen molecules "
        "for drug discovery and predict chemical properties of candidate compounds.",
    ),
    (
        "Pretraining graph neural networks on millions of molecules",
        "Self-supervised pretraining of graph neural networks on unlabeled molecules and "
        "chemical reactions improves molecular property prediction for drug design.",
    ),
]
TRAFFIC = [
    (
        "Spatio-temporal graph neural networks for traffic forecasting",
        "We forecast road traffic speed over sensor networks with a graph neural network "
        "that models the road graph and temporal dynamics of congestion.",
    ),
    (
        "Graph neural networks for city-scale traffic flow prediction",
        "Traffic flow at intersections is predicted by a graph neural network over the road "
        "network, capturing rush-hour congestion and spatial dependencies between roads.",
    ),
    (
        "Forecasting congestion with dynamic road graphs",
        "Dynamic graph neural networks learn changing road graphs for traffic forecasting "
        "and congestion prediction across a city's sensor network.",
    ),
]


@pytest.fixture
def catalogue() -> dict[str, Paper]:
    papers = {}
    for n, (title, abstract) in enumerate(MOLECULES + TRAFFIC):
        papers[title] = Paper.objects.create(
            title=title,
            title_key=title.lower(),
            arxiv_id=f"2511.{n:05d}",
            abstract=abstract,
            upvotes=10,
            github_repo=f"https://github.com/example/repo{n}",
            listed_on=timezone.now().date(),
            source="hf-json",
        )
    return papers


@pytest.fixture
def sent_digest(catalogue, mailoutbox):  # type: ignore[no-untyped-def]
    active_subscriber("ada@example.org", ["graph neural networks"], digest_size=6)
    send_queued(compose_chunk(claim_due_subscribers(timezone.now(), 10)))
    return Digest.objects.get(), mailoutbox[0].body


def link(text: str, label: str, title: str) -> str:
    """The path of the ``label`` link under the paper titled ``title`` in a digest's text."""
    block = text[text.index(title) :]
    found = re.search(rf"{label}: http://localhost:8000(/\S+/)", block)
    assert found, block
    return found.group(1)


def test_a_paper_link_redirects_to_the_paper_and_counts_a_click(client, sent_digest) -> None:  # type: ignore[no-untyped-def]
    digest, text = sent_digest
    title = TRAFFIC[0][0]
    response = client.get(link(text, "Code", title), HTTP_USER_AGENT=BROWSER)

    assert response.status_code == 302
    paper = Paper.objects.get(title=title)
    assert response["Location"] == paper.github_repo
    click = Click.objects.get()
    assert (click.paper, click.digest, click.subscriber) == (paper, digest, digest.subscriber)


@pytest.mark.parametrize(
    ("method", "agent"),
    [
        ("head", BROWSER),
        ("get", ""),
        ("get", "Mozilla/5.0 (compatible; Barracuda Sentinel)"),
        ("get", "Mozilla/5.0 (compatible; Microsoft Office Protocol Discovery)"),
        ("get", "Mimecast URL Protect"),
    ],
)
def test_head_requests_and_link_scanners_redirect_but_count_nothing(  # type: ignore[no-untyped-def]
    client, sent_digest, method, agent
) -> None:
    _, text = sent_digest
    response = getattr(client, method)(link(text, "PDF", TRAFFIC[1][0]), HTTP_USER_AGENT=agent)
    assert response.status_code == 302
    assert not Click.objects.exists()
    less = link(text, "Less like this", TRAFFIC[1][0])
    assert getattr(client, method)(less, HTTP_USER_AGENT=agent).status_code == 200
    assert not Feedback.objects.exists()


def test_a_tampered_click_token_is_refused(client, sent_digest) -> None:  # type: ignore[no-untyped-def]
    _, text = sent_digest
    _, digest, token, paper, kind, _ = link(text, "Code", TRAFFIC[0][0]).split("/")
    token = token[:-1] + ("A" if token[-1] != "A" else "B")
    response = client.get(f"/{digest}/{token}/{paper}/{kind}/", HTTP_USER_AGENT=BROWSER)
    assert response.status_code == 404 and "Location" not in response
    assert not Click.objects.exists()


def test_an_expired_click_token_is_refused(client, sent_digest) -> None:  # type: ignore[no-untyped-def]
    _, text = sent_digest
    path = link(text, "Code", TRAFFIC[0][0])
    with time_machine.travel(timezone.now() + timedelta(days=200)):
        assert client.get(path, HTTP_USER_AGENT=BROWSER).status_code == 404


def test_a_click_link_leads_only_to_that_papers_own_links(client, sent_digest) -> None:  # type: ignore[no-untyped-def]
    digest, _ = sent_digest
    token = sign(digest.id, "digest")
    in_digest = digest.items.first().paper
    elsewhere = Paper.objects.create(
        title="Not in this digest", title_key="not in this digest", arxiv_id="2511.99999"
    )
    for path in [
        f"/digest/{token}/{in_digest.id}/phish/",  # no such kind of link
        f"/digest/{token}/{in_digest.id}/project/",  # a kind the paper does not have
        f"/digest/{token}/{elsewhere.id}/abstract/",  # a paper the digest does not hold
        f"/digest/{sign([digest.id], 'digest')}/{in_digest.id}/abstract/",  # not a digest id
        f"/digest/{sign(digest.id, 'manage')}/{in_digest.id}/abstract/",  # another purpose
    ]:
        response = client.get(path, HTTP_USER_AGENT=BROWSER)
        assert response.status_code == 404 and "Location" not in response, path
    assert not Click.objects.exists()


def test_feedback_records_a_vote_the_latest_wins_and_undo_removes_it(client, sent_digest) -> None:  # type: ignore[no-untyped-def]
    digest, text = sent_digest
    title = MOLECULES[0][0]
    more, less = link(text, "More like this", title), link(text, "Less like this", title)

    page = client.get(more, HTTP_USER_AGENT=BROWSER)
    assert page.status_code == 200 and b"more papers like" in page.content
    assert Feedback.objects.get().value == 1
    page = client.get(less, HTTP_USER_AGENT=BROWSER)
    assert b"fewer papers like" in page.content and b"Undo" in page.content
    vote = Feedback.objects.get()
    assert (vote.value, vote.paper.title, vote.digest) == (-1, title, digest)

    page = client.post(less, HTTP_USER_AGENT=BROWSER)
    assert page.status_code == 200 and b"Undone" in page.content
    assert not Feedback.objects.exists()


def every_link(text: str) -> list[str]:
    """The paths of a digest's paper and feedback links, in the order the email has them."""
    return re.findall(r"http://localhost:8000(/digest/\S+/\S+/\S+/)", text)


def test_a_scanner_with_a_browsers_agent_following_every_link_teaches_nothing(  # type: ignore[no-untyped-def]
    client, sent_digest
) -> None:
    # Mail gateways that present a browser's User-Agent follow every link of a message
    # within a second or two; each click and vote would otherwise teach the ranking.
    _, text = sent_digest
    links = [path for path in every_link(text) if "/more/" in path or "/less/" in path]
    links += [path for path in every_link(text) if path not in links]
    assert len(links) >= 12

    pages = [client.get(path, HTTP_USER_AGENT=BROWSER) for path in links]

    assert not Click.objects.exists() and not Feedback.objects.exists()
    votes = [page for path, page in zip(links, pages, strict=True) if path.endswith("/more/")]
    assert all(b"Not counted yet" in page.content for page in votes[3:])
    assert all(page.status_code in (200, 302) for page in pages)


def test_a_reader_following_links_a_minute_apart_is_counted_every_time(  # type: ignore[no-untyped-def]
    client, sent_digest
) -> None:
    _, text = sent_digest
    more = [path for path in every_link(text) if path.endswith("/more/")][:3]
    clicks = [path for path in every_link(text) if path.endswith("/abstract/")][:3]
    start = timezone.now()
    for minutes, path in enumerate(more + clicks, 1):
        with time_machine.travel(start + timedelta(minutes=minutes), tick=False):
            assert client.get(path, HTTP_USER_AGENT=BROWSER).status_code in (200, 302)

    assert (Feedback.objects.count(), Click.objects.count()) == (3, 3)


def test_a_vote_taken_for_a_scanners_is_counted_when_the_reader_presses_the_button(  # type: ignore[no-untyped-def]
    client, sent_digest
) -> None:
    _, text = sent_digest
    more = [path for path in every_link(text) if path.endswith("/more/")]
    for path in more[:3]:
        client.get(path, HTTP_USER_AGENT=BROWSER)  # three in a second: still a reader

    page = client.get(more[3], HTTP_USER_AGENT=BROWSER)  # the fourth: a scanner's burst
    assert b"Not counted yet" in page.content and not Feedback.objects.exists()
    page = client.post(more[3], {"action": "count"}, HTTP_USER_AGENT=BROWSER)

    assert b"Thanks!" in page.content
    vote = Feedback.objects.get()
    assert (vote.value, f"/{vote.paper_id}/more/") == (1, more[3][more[3].rindex("/", 0, -6) :])


def relevance(now) -> dict[str, dict[str, float]]:  # type: ignore[no-untyped-def]
    subscribers = list(for_planning(Subscriber.objects.order_by("email")))
    plans = plan_digests(subscribers, now)
    titles = dict(Paper.objects.values_list("id", "title"))
    return {s.email: {titles[p.key]: p.relevance for p in plans[s.id]} for s in subscribers}


def link_in_a_sent_digest(email: str, paper: Paper, tail: str) -> str:
    """The path of ``paper``'s ``tail`` link (a link kind, "more" or "less") in a digest just
    sent to ``email`` with that one paper."""
    digest = Digest.objects.create(
        subscriber=Subscriber.objects.get(email=email), period="2026-11-22", status="sent"
    )
    digest.items.create(paper=paper, rank=1, score=1, reason="test")
    return f"/digest/{sign(digest.id, 'digest')}/{paper.id}/{tail}/"


def test_less_like_this_lowers_similar_papers_for_that_reader_only(client, catalogue) -> None:  # type: ignore[no-untyped-def]
    for email in ("ada@example.org", "bob@example.org"):
        active_subscriber(email, ["graph neural networks"], digest_size=6)
    now = timezone.now()
    before = relevance(now)
    assert before["ada@example.org"] == before["bob@example.org"]

    disliked = catalogue[MOLECULES[0][0]]
    less = link_in_a_sent_digest("ada@example.org", disliked, "less")
    assert client.get(less, HTTP_USER_AGENT=BROWSER).status_code == 200

    after = relevance(now)
    assert after["bob@example.org"] == before["bob@example.org"]  # others unchanged
    mine = after["ada@example.org"]
    assert disliked.title not in mine  # never picked again
    for title, _ in MOLECULES[1:]:
        assert mine.get(title, 0) < before["ada@example.org"][title]  # close papers fall
    worst_traffic = min(mine[title] for title, _ in TRAFFIC)
    best_molecule = max(mine.get(title, 0) for title, _ in MOLECULES[1:])
    assert best_molecule < worst_traffic  # and now rank below the unrelated ones


def test_a_click_lifts_similar_papers_for_that_reader(client, catalogue) -> None:  # type: ignore[no-untyped-def]
    active_subscriber("ada@example.org", ["graph neural networks"], digest_size=6)
    now = timezone.now()
    before = relevance(now)["ada@example.org"]

    clicked = catalogue[TRAFFIC[0][0]]
    abstract = link_in_a_sent_digest("ada@example.org", clicked, "abstract")
    assert client.get(abstract, HTTP_USER_AGENT=BROWSER).status_code == 302

    after = relevance(now)["ada@example.org"]
    for title, _ in TRAFFIC[1:]:
        assert after[title] > before[title]


def test_votes_and_clicks_teach_the_profile_the_paper_was_picked_for(client, catalogue) -> None:  # type: ignore[no-untyped-def]
    reader = active_subscriber("ada@example.org", ["graph neural networks"], digest_size=6)
    traffic = add_profile(reader, keywords=["traffic forecasting"])
    molecules = reader.profiles.get(slot=1)
    digest = Digest.objects.create(subscriber=reader, period="2026-11-22", status="sent")
    disliked, clicked = catalogue[MOLECULES[0][0]], catalogue[TRAFFIC[0][0]]
    digest.items.create(paper=disliked, rank=1, score=1, reason="r", profile=molecules)
    digest.items.create(paper=clicked, rank=2, score=1, reason="r", profile=traffic)
    token = sign(digest.id, "digest")

    client.get(f"/digest/{token}/{disliked.id}/less/", HTTP_USER_AGENT=BROWSER)
    client.get(f"/digest/{token}/{clicked.id}/abstract/", HTTP_USER_AGENT=BROWSER)

    assert Feedback.objects.get().profile == molecules
    assert Click.objects.get().profile == traffic
    signals, _ = signals_of([reader.id])
    assert signals[molecules.id].votes == {disliked.id: -1} and not signals[molecules.id].clicked
    assert signals[traffic.id].clicked == {clicked.id} and not signals[traffic.id].votes


def test_a_vote_on_a_paper_picked_for_no_profile_teaches_the_first(client, catalogue) -> None:  # type: ignore[no-untyped-def]
    active_subscriber("ada@example.org", ["graph neural networks"])
    paper = catalogue[MOLECULES[0][0]]
    client.get(link_in_a_sent_digest("ada@example.org", paper, "more"), HTTP_USER_AGENT=BROWSER)
    assert Feedback.objects.get().profile == Subscriber.objects.get().profiles.get()
