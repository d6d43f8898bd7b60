"""The reader-control journey in headless Chromium: sign up with a .bib upload, confirm, add a
second profile, move the balance and see the preview change, and receive a digest with two
sections; the "nothing matched" email and the feed; and the digest's HTML part as mail clients
show it, at 800 and 390 px, light and dark. Screenshots land in test-artifacts/."""

import re
from datetime import timedelta
from importlib import import_module
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from django.apps import apps
from django.core import mail
from django.utils import timezone

from newsletter.digests import claim_due_subscribers, compose_chunk, send_queued
from newsletter.models import Digest, Subscriber
from papers.models import Paper
from tests.conftest import ARTIFACTS

add_topics = import_module("papers.migrations.0003_seed_topics").add_topics
pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("eager_tasks")]
LIBRARY = Path(__file__).parent / "fixtures" / "library" / "zotero.bib"


def catalogue() -> None:
    """Today's papers: reasoning ones (the uploaded library's subject), diffusion ones, and
    a much-voted robotics paper that matches neither."""
    today = timezone.now().date()
    rows = [
        (
            "2403.09629",
            "Quiet-STaR: Language Models Can Teach Themselves to Think Before Speaking",
            "Language models learn to generate rationales at each token to improve reasoning.",
            40,
        ),
        (
            "2404.00001",
            "Chain-of-thought reasoning without prompting",
            "We show that language models reason step by step when decoding is changed.",
            5,
        ),
        (
            "2404.00002",
            "Self-taught reasoners bootstrap rationales",
            "We present a method where language models learn reasoning from their own rationales.",
            8,
        ),
        (
            "2404.00003",
            "Latent diffusion models for video generation",
            "We introduce a diffusion model that generates long videos by denoising latents.",
            12,
        ),
        (
            "2404.00004",
            "Consistency distillation of diffusion models",
            "We propose distilling diffusion models into few-step image generators.",
            3,
        ),
        (
            "2404.00005",
            "Humanoid robots learn to walk on ice",
            "We train a humanoid robot to walk on slippery surfaces with reinforcement learning.",
            900,
        ),
    ]
    # The library's other arXiv papers, listed long ago: nothing is left to fetch from arXiv.
    for arxiv_id, title in [
        ("1706.03762", "Attention Is All You Need"),
        ("2203.14465", "STaR: Bootstrapping Reasoning With Reasoning"),
    ]:
        Paper.objects.create(
            arxiv_id=arxiv_id,
            title=title,
            title_key=title.lower(),
            abstract="Language models learn reasoning from rationales.",
            listed_on=today - timedelta(days=400),
            source="arxiv",
        )
    for n, (arxiv_id, title, abstract, votes) in enumerate(rows):
        Paper.objects.create(
            arxiv_id=arxiv_id,
            title=title,
            title_key=title.lower(),
            abstract=abstract,
            authors=["Eric Zelikman", "Noah D. Goodman", "Ada Lovelace", "Alan Turing"][
                : n % 4 + 1
            ],
            upvotes=votes,
            comments=n,
            github_repo="https://github.com/example/repo" if n % 2 else "",
            github_stars=1234 if n % 2 else None,
            listed_on=today,
            source="hf-json",
        )


def link_in_last_email(kind: str, live_server) -> str:  # type: ignore[no-untyped-def]
    found = re.search(rf"{live_server.url}/{kind}/[^\s]+/", str(mail.outbox[-1].body))
    assert found, mail.outbox[-1].body
    return found.group(0)


def preview_titles(page) -> list[str]:  # type: ignore[no-untyped-def]
    return page.locator("#preview li a").all_inner_texts()


def test_sign_up_with_a_library_add_a_profile_move_the_balance_and_get_two_sections(  # type: ignore[no-untyped-def]
    browser, live_server
) -> None:
    add_topics(apps, None)
    catalogue()
    page = browser.new_context(
        timezone_id="Europe/Berlin", viewport={"width": 420, "height": 900}
    ).new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    page.goto(live_server.url + "/")
    page.fill("#id_email", "ada@example.org")
    page.set_input_files("#id_library", str(LIBRARY))
    page.select_option("#id_trending_weight", "0.0")  # the balance, at signup
    page.check("#id_consent")
    page.click("button:has-text('Subscribe')")
    page.wait_for_selector("text=Check your inbox")
    page.goto(link_in_last_email("confirm", live_server))
    page.click("text=Yes, confirm")
    page.wait_for_selector("text=You're subscribed")
    reader = Subscriber.objects.get()
    assert reader.status == "active" and reader.profiles.get().library.filename == "zotero.bib"

    page.click("text=Change your interests or schedule")
    page.wait_for_selector("#preview")
    assert "became liked papers" not in page.content()  # said on the manage page's upload only
    assert page.locator("#suggested-authors").is_visible()  # frequent authors offered
    first = preview_titles(page)
    assert first and all("diffusion" not in t.lower() for t in first)

    page.fill("#id_new_profile", "Diffusion")
    page.click("button:has-text('Add profile')")
    page.wait_for_selector("text=Added “Diffusion”")
    page.fill("#id_keywords", "diffusion models")
    page.click("text=Save preferences")
    page.wait_for_selector("text=Saved")
    with_two = preview_titles(page)
    assert any("diffusion" in t.lower() for t in with_two) and with_two != first
    assert page.locator("#preview h3").all_inner_texts() == ["MY INTERESTS", "DIFFUSION"]

    page.select_option("#id_trending_weight", "0.8")  # the Diffusion profile: trending first
    page.click("text=Save preferences")
    page.wait_for_selector("text=Saved")
    moved = preview_titles(page)
    assert moved != with_two  # the preview follows the balance at once
    page.screenshot(path=ARTIFACTS / "manage-two-profiles.png", full_page=True)

    Subscriber.objects.update(next_digest_at=timezone.now())  # its send time has come
    send_queued(compose_chunk(claim_due_subscribers(timezone.now(), 10)))
    digest = mail.outbox[-1]
    assert re.fullmatch(r"\d+ papers for you: .+", str(digest.subject)), digest.subject
    text = str(digest.body)
    assert "== My interests ==" in text and "== Diffusion ==" in text
    html = str(digest.alternatives[0][0])  # type: ignore[union-attr]
    sections = [h.get_text() for h in BeautifulSoup(html, "html.parser").find_all("h2")]
    assert sections == ["My interests", "Diffusion"]
    assert errors == []


def screenshots(browser, html: str, name: str) -> list[Path]:  # type: ignore[no-untyped-def]
    """The HTML part at 800 and 390 px, light and dark; each must fit its width."""
    shots = []
    for width in (800, 390):
        for scheme in ("light", "dark"):
            page = browser.new_context(
                viewport={"width": width, "height": 900}, color_scheme=scheme
            ).new_page()
            page.set_content(html, wait_until="load")
            overflow = page.evaluate("document.documentElement.scrollWidth")
            assert overflow <= width, f"{name} is {overflow} px wide at {width} px"
            path = ARTIFACTS / f"email-{name}-{width}-{scheme}.png"
            page.screenshot(path=path, full_page=True)
            shots.append(path)
            page.context.close()
    return shots


def test_the_digest_and_the_nothing_matched_email_read_well_at_800_and_390_px_light_and_dark(  # type: ignore[no-untyped-def]
    browser, live_server
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    catalogue()
    Paper.objects.update(thumbnail="")  # no remote images in a test
    from tests.factories import active_subscriber, add_profile

    reader = active_subscriber("ada@example.org", ["reasoning"], name="Thesis", digest_size=6)
    add_profile(reader, name="Diffusion", keywords=["diffusion models"], authors=["Alan Turing"])
    active_subscriber("bees@example.org", ["beekeeping"])
    send_queued(compose_chunk(claim_due_subscribers(timezone.now(), 10)))

    by_reader = {m.to[0]: m for m in mail.outbox}
    digest_html = str(by_reader["ada@example.org"].alternatives[0][0])  # type: ignore[attr-defined]
    nothing_html = str(by_reader["bees@example.org"].alternatives[0][0])  # type: ignore[attr-defined]
    assert "matched your interests" in digest_html
    assert "Nothing new matched your interests" in nothing_html
    assert Digest.objects.filter(note__startswith="Nothing matched").count() == 1
    for html, name in ((digest_html, "digest"), (nothing_html, "nothing-matched")):
        assert len(screenshots(browser, html, name)) == 4
