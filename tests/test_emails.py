import email
import email.policy
import importlib
import re

import pytest
from django.apps import apps
from django.core import signing
from django.utils import timezone

from newsletter import emails
from newsletter.digests import TO_RENDER, claim_due_subscribers, compose_chunk, send_queued
from newsletter.models import Click, Digest, DigestItem, Feedback
from papers.models import Paper
from papers.ranking import Pick, Reason, Section
from papers.ranking.reasons import TRENDING_REASON, author_reason, keyword_reason
from tests.factories import active_subscriber

pytestmark = pytest.mark.django_db


@pytest.fixture
def digest_message(mailoutbox, settings):  # type: ignore[no-untyped-def]
    settings.NEWSLETTER_REPLY_TO = "editors@paperboy.example"
    settings.NEWSLETTER_POSTAL_ADDRESS = "Paperboy, 12 Rue des Papiers, Paris"
    Paper.objects.create(
        title="Graph neural networks at scale",
        title_key="gnn",
        arxiv_id="2511.00001",
        abstract="Graph neural networks learn on graphs. " * 20,
        authors=["Ada Lovelace"],
        upvotes=42,
        github_repo="https://github.com/example/gnn",
        listed_on=timezone.now().date(),
        source="hf-json",
    )
    active_subscriber("ada@example.org", ["graph neural networks"])
    send_queued(compose_chunk(claim_due_subscribers(timezone.now(), 10)))
    return mailoutbox[0]


def test_a_digest_carries_the_list_headers(digest_message) -> None:  # type: ignore[no-untyped-def]
    headers = digest_message.extra_headers
    assert headers["List-Unsubscribe"].startswith("<http://localhost:8000/unsubscribe/")
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert headers["List-Id"] == "Paperboy digest <digest.localhost>"
    assert digest_message.reply_to == ["editors@paperboy.example"]


def test_a_digest_is_multipart_with_inlined_css_and_the_postal_address(digest_message) -> None:  # type: ignore[no-untyped-def]
    parsed = email.message_from_bytes(
        digest_message.message().as_bytes(), policy=email.policy.default
    )
    text = parsed.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = parsed.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert 'style="' in html
    # Only what cannot be inlined stays in a <style>: the rules for narrow screens and dark mode.
    for style in re.findall(r"<style>(.*?)</style>", html, re.S):
        assert outside_at_rules(style).strip() == "", style
    assert (
        "Paperboy, 12 Rue des Papiers, Paris" in text
        and "Paperboy, 12 Rue des Papiers, Paris" in html
    )


def outside_at_rules(css: str) -> str:
    """The CSS outside ``@media { ... }`` blocks."""
    kept, depth, at_rule = [], 0, False
    for part in re.split(r"([{}])", css):
        if part == "{":
            depth += 1
        elif part == "}":
            depth -= 1
            at_rule = at_rule and depth > 0
        elif depth == 0 and part.strip().startswith("@"):
            at_rule = True
        elif depth == 0 or not at_rule:
            kept.append(part)
    return "".join(kept)


def test_each_message_has_a_boundary_of_its_own(digest_message) -> None:  # type: ignore[no-untyped-def]
    first, second = (
        email.message_from_bytes(digest_message.message().as_bytes(), policy=email.policy.default)
        for _ in range(2)
    )

    assert first.get_boundary() != second.get_boundary()
    for parsed in (first, second):
        assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]
    assert first.get_body(("html",)).get_content() == second.get_body(("html",)).get_content()  # type: ignore[union-attr]


def target(client, text: str, label: str) -> str:  # type: ignore[no-untyped-def]
    """Where the tracked link after ``label`` in the text part leads."""
    found = re.search(rf"{label}: http://localhost:8000(/digest/\S+/)", text)
    assert found, f"no tracked {label} link in:\n{text}"
    response = client.get(found.group(1), HTTP_USER_AGENT="Mozilla/5.0")
    assert response.status_code == 302
    return str(response["Location"])


def test_the_text_part_reads_well_on_its_own(client, digest_message) -> None:  # type: ignore[no-untyped-def]
    text = digest_message.body
    assert "1. Graph neural networks at scale" in text
    assert "Ada Lovelace" in text
    assert "Why: matches your keyword 'graph neural networks'" in text
    assert target(client, text, "Abstract") == "https://arxiv.org/abs/2511.00001"
    assert target(client, text, "PDF") == "https://arxiv.org/pdf/2511.00001"
    assert target(client, text, "Code") == "https://github.com/example/gnn"
    assert target(client, text, "Hugging Face") == "https://huggingface.co/papers/2511.00001"
    assert "More like this: http://localhost:8000/digest/" in text
    assert "Unsubscribe in one click: http://localhost:8000/unsubscribe/" in text
    assert "<" not in text.replace("<http", "")


def test_the_excerpt_is_two_or_three_lines(digest_message) -> None:  # type: ignore[no-untyped-def]
    html = digest_message.alternatives[0][0]
    assert "Graph neural networks learn on graphs." in html
    assert html.count("Graph neural networks learn on graphs.") < 10


def test_a_paper_known_only_by_title_still_links_somewhere_useful(client, mailoutbox) -> None:  # type: ignore[no-untyped-def]
    # The bundled text captures carry a title and an abstract, nothing else.
    Paper.objects.create(
        title="Forward Learning of Graph Neural Networks",
        title_key="forward learning of graph neural networks",
        abstract="Graph neural networks without backpropagation. " * 5,
        listed_on=timezone.now().date(),
        source="text",
    )
    active_subscriber("ada@example.org", ["graph neural networks"])
    send_queued(compose_chunk(claim_due_subscribers(timezone.now(), 10)))

    text = mailoutbox[0].body
    assert target(client, text, "Find it") == (
        "https://arxiv.org/search/?query=Forward+Learning+of+Graph+Neural+Networks&searchtype=title"
    )
    excerpt_lines = [line for line in text.splitlines() if "backpropagation" in line]
    assert excerpt_lines and all(line.startswith("   ") for line in excerpt_lines)


def test_a_subject_is_one_line_whatever_the_title() -> None:
    reader = active_subscriber("ada@example.org", ["x"])
    message = emails.build_email(
        "confirm", reader, {"confirm_url": "http://x/"}, transactional=True
    )
    assert "\n" not in message.subject and "List-Unsubscribe" not in message.extra_headers


def test_feedback_links_lead_to_a_thanks_page(client, digest_message) -> None:  # type: ignore[no-untyped-def]
    link = digest_message.body.split("More like this: ")[1].split()[0]
    browser = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36"
    response = client.get(link.removeprefix("http://localhost:8000"), HTTP_USER_AGENT=browser)
    assert response.status_code == 200 and b"more papers like" in response.content


def test_the_view_in_browser_link_shows_the_digest(client, digest_message) -> None:  # type: ignore[no-untyped-def]
    link = digest_message.body.split("View in your browser: ")[1].split()[0]
    response = client.get(link.removeprefix("http://localhost:8000"))
    assert response.status_code == 200 and b"Graph neural networks at scale" in response.content


def test_the_shareable_web_view_carries_none_of_the_readers_controls(
    client, digest_message
) -> None:  # type: ignore[no-untyped-def]
    # Whoever the reader forwards "view in your browser" to must not be able to change their
    # preferences, download their data, delete them or unsubscribe them.
    link = digest_message.body.split("View in your browser: ")[1].split()[0]
    page = client.get(link.removeprefix("http://localhost:8000")).content.decode()

    assert "Graph neural networks at scale" in page
    for control in ("/manage/", "/unsubscribe/", "/export/", "/delete/"):
        assert control not in page
    assert "Get your own Paperboy digest" in page
    for token in re.findall(r"/digest/([^/\"]+)/", page):
        with pytest.raises(signing.BadSignature):  # the page's one token names the digest only
            signing.loads(token, salt="newsletter.manage")


def test_the_shareable_web_view_links_papers_directly_and_records_nothing_for_the_reader(
    client, digest_message
) -> None:  # type: ignore[no-untyped-def]
    # Clicks on a forwarded page are not the reader's, and its visitors must not train the
    # reader's ranking: no click-counting links and no "more/less like this" on the page.
    link = digest_message.body.split("View in your browser: ")[1].split()[0]
    page = client.get(link.removeprefix("http://localhost:8000")).content.decode()
    paper = Paper.objects.get()
    email_html = digest_message.alternatives[0][0]
    tracked = rf"/digest/[^/\"]+/{paper.id}/\w+/"

    for direct in (paper.abs_url, paper.pdf_url, paper.github_repo):
        assert f'href="{direct}"' in page
    assert not re.search(tracked, page) and "like this" not in page
    # The email keeps them: the reader's own clicks and votes still count.
    assert re.search(tracked, email_html) and re.search(tracked, digest_message.body)
    assert "More like this" in email_html and f'href="{paper.abs_url}"' not in email_html


def test_the_forwarded_pages_token_opens_none_of_the_readers_links(client, digest_message) -> None:  # type: ignore[no-untyped-def]
    # Whoever is given the page could type its paper and feedback URLs by hand: its token must
    # not open them, while the email's own links keep working.
    page_link = digest_message.body.split("View in your browser: ")[1].split()[0]
    page_path = page_link.removeprefix("http://localhost:8000")
    paper = Paper.objects.get()
    more = digest_message.body.split("More like this: ")[1].split()[0]
    email_links = more.removeprefix("http://localhost:8000").removesuffix(f"{paper.id}/more/")
    assert email_links != page_path

    browser = {"HTTP_USER_AGENT": "Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0 Safari/537.36"}

    for tail in ("more/", "less/", "main/", "abstract/"):
        assert client.get(f"{page_path}{paper.id}/{tail}", **browser).status_code == 404
    assert not Feedback.objects.exists() and not Click.objects.exists()
    assert client.get(f"{email_links}{paper.id}/more/", **browser).status_code == 200
    assert client.get(f"{email_links}{paper.id}/main/", **browser).status_code == 302
    assert Feedback.objects.count() == 1 and Click.objects.count() == 1
    assert client.get(email_links).status_code == 200  # the view links of earlier emails


@pytest.mark.parametrize("upvotes", [0, 1, 2])
def test_a_papers_votes_are_said_once_and_in_the_right_number(mailoutbox, upvotes) -> None:  # type: ignore[no-untyped-def]
    Paper.objects.create(
        title="Graph neural networks at scale",
        title_key="gnn",
        abstract="Graph neural networks learn on graphs.",
        upvotes=upvotes,
        listed_on=timezone.now().date(),
        source="hf-json",
    )
    active_subscriber("ada@example.org", ["graph neural networks"])
    send_queued(compose_chunk(claim_due_subscribers(timezone.now(), 10)))

    why = next(line for line in mailoutbox[0].body.splitlines() if "Why:" in line)
    said = re.findall(r"\b(\d+) (upvotes?)\b", why)
    assert said == [(str(upvotes), "upvote" if upvotes == 1 else "upvotes")], why
    html = mailoutbox[0].alternatives[0][0]
    html_why = re.search(r"Why: [^<]*", html)
    assert html_why and len(re.findall(rf"\b{upvotes}\b", html_why.group())) == 1, html_why


def render_digest(*picks: tuple[str, str, int | None, Reason]) -> tuple[str, str]:
    """The text and HTML parts of a digest of these (title, section, upvotes, reason) items."""
    reader = active_subscriber("ada@example.org", ["graph neural networks"])
    digest = Digest.objects.create(subscriber=reader, period="2026-11-23", created=timezone.now())
    for rank, (title, section, upvotes, reason) in enumerate(picks, 1):
        paper = Paper.objects.create(
            title=title, title_key=title.lower(), upvotes=upvotes, source="hf-json"
        )
        pick = Pick(paper.pk, 0.5, 0.5, reason, section)
        DigestItem.of_pick(digest.pk, rank, pick).save()
    message = emails.digest_email(Digest.objects.prefetch_related(*TO_RENDER).get(pk=digest.pk))
    return str(message.body), str(message.alternatives[0][0])


def test_followed_authors_papers_have_a_section_of_their_own_before_the_matches() -> None:
    text, html = render_digest(
        ("Tiny training", Section.AUTHORS, 3, author_reason(["Song Han"])),
        ("Graph neural networks at scale", Section.MATCH, 9, keyword_reason("graph")),
    )

    authors, matches = text.index("== From authors you follow =="), text.index("== Picked for")
    assert authors < text.index("1. Tiny training") < matches
    assert matches < text.index("2. Graph neural networks at scale")
    assert "Why: by Song Han, whom you follow · 3 upvotes" in text
    assert "From authors you follow</h2>" in html and "Picked for your interests</h2>" in html


def test_a_digest_of_matches_only_has_no_section_headings() -> None:
    text, html = render_digest(("Graphs", Section.MATCH, 1, keyword_reason("graph")))

    assert "==" not in text and "<h2" not in html


def test_what_a_reason_says_comes_from_its_data_not_from_searching_its_words() -> None:
    # A keyword that itself says "upvotes" and "trending" hides neither the votes nor the
    # fact that the paper's votes led to it.
    words = keyword_reason("trending upvotes")._replace(trending=True)
    text, html = render_digest(("Predicting upvotes", Section.MATCH, 7, words))

    why = next(line for line in text.splitlines() if "Why:" in line)
    assert why.strip() == "Why: matches your keyword 'trending upvotes' · trending · 7 upvotes"
    assert "· trending · 7 upvotes</p>" in html


def test_the_trending_fallback_says_trending_once() -> None:
    text, _ = render_digest(("Viral", Section.TRENDING, 500, TRENDING_REASON))

    assert "Why: trending · 500 upvotes" in text


@pytest.mark.parametrize(
    ("before", "after", "trending"),
    [
        (
            "matches your keyword 'graph' · 212 upvotes, +40 today",
            "matches your keyword 'graph'",
            False,
        ),
        ("in your topic 'Robotics' · trending, 3 upvotes", "in your topic 'Robotics'", 1),
        ("trending, 3 upvotes", "trending", 1),
        ("like 'A · B' you liked", "like 'A · B' you liked", 0),
        ("like 'A · B' you liked · 4 upvotes", "like 'A · B' you liked", 0),
    ],
)
def test_digests_from_before_reasons_were_data_keep_their_words_without_the_votes(
    before: str, after: str, trending: int
) -> None:
    migration = importlib.import_module("newsletter.migrations.0004_digest_item_reason_as_data")
    reader = active_subscriber("ada@example.org", ["graph"])
    digest = Digest.objects.create(subscriber=reader, period="2026-11-23", created=timezone.now())
    paper = Paper.objects.create(title="Graphs", title_key="graphs", upvotes=212, source="hf-json")
    item = digest.items.create(paper=paper, rank=1, score=1.0, reason=before)

    migration.split_old_reasons(apps, None)

    item.refresh_from_db()
    assert (item.reason, item.reason_data.text, item.reason_data.trending) == (
        after,
        after,
        bool(trending),
    )


# Pictographs most systems draw only with an emoji font (else as empty boxes).
EMOJI = re.compile("[\U0001f000-\U0001faff\u2600-\u27bf\ufe0f]")


def test_a_digest_uses_no_emoji_a_mail_client_may_lack_a_font_for(digest_message) -> None:  # type: ignore[no-untyped-def]
    html = digest_message.alternatives[0][0]
    assert "More like this" in html and "Less like this" in html
    assert not EMOJI.findall(html + digest_message.body + digest_message.subject)
