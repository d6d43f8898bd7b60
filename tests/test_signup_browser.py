"""A person's whole journey in headless Chromium: sign up, confirm, manage, unsubscribe, erase.
Screenshots land in test-artifacts/ (not committed)."""

import re
from importlib import import_module

import pytest
from django.apps import apps
from django.core import mail

from newsletter import emails
from newsletter.models import Subscriber
from papers.models import Paper
from tests.conftest import ARTIFACTS
from tests.factories import active_subscriber

add_topics = import_module("papers.migrations.0003_seed_topics").add_topics

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("eager_tasks")]


@pytest.fixture
def page(browser):  # type: ignore[no-untyped-def]
    # live_server's database is flushed between tests, which removes the topics the data
    # migration seeded; seed them again with the migration's own function.
    add_topics(apps, None)
    context = browser.new_context(
        timezone_id="Europe/Berlin", viewport={"width": 420, "height": 900}
    )
    return context.new_page()


def link_in_last_email(kind: str, live_server) -> str:  # type: ignore[no-untyped-def]
    found = re.search(rf"{live_server.url}/{kind}/[^\s]+/", str(mail.outbox[-1].body))
    assert found, mail.outbox[-1].body
    return found.group(0)


def test_signup_confirm_manage_unsubscribe_and_erase_in_a_real_browser(page, live_server) -> None:  # type: ignore[no-untyped-def]
    page.goto(live_server.url + "/")
    assert page.input_value("#id_timezone") == "Europe/Berlin"  # pre-filled by the browser
    page.fill("#id_email", "not an address")
    page.click("button:has-text('Subscribe')")
    page.locator(".errorlist").first.wait_for()  # the error sits next to the field
    assert page.input_value("#id_email") == "not an address"  # what was typed is kept

    page.fill("#id_email", "ada@example.org")
    page.check("text=Graph neural networks")
    page.fill("#id_keywords", '"message passing", molecules')
    page.check("#id_consent")
    page.screenshot(path=ARTIFACTS / "signup-form.png", full_page=True)
    page.click("button:has-text('Subscribe')")
    page.wait_for_selector("text=Check your inbox")
    page.screenshot(path=ARTIFACTS / "check-inbox.png")

    page.goto(link_in_last_email("confirm", live_server))
    page.click("text=Yes, confirm")
    page.wait_for_selector("text=You're subscribed")
    assert Subscriber.objects.get().status == "active"

    page.click("text=Change your interests or schedule")
    page.fill("#id_keywords", "protein folding")
    page.select_option("#id_frequency", "weekly")
    page.click("text=Save preferences")
    page.wait_for_selector("text=Saved")
    page.screenshot(path=ARTIFACTS / "manage.png", full_page=True)
    reader = Subscriber.objects.get()
    assert reader.profiles.get().keywords == ["protein folding"] and reader.frequency == "weekly"

    page.click("button:has-text('Unsubscribe')")
    page.wait_for_selector("text=Unsubscribed. You won't get any more digests.")
    assert Subscriber.objects.get().status == "unsubscribed"
    assert page.locator("text=Save preferences").count() == 0
    page.check("#resubscribe input[name=consent]")
    page.click("button:has-text('Resubscribe')")
    page.wait_for_selector("text=Welcome back")
    assert Subscriber.objects.get().status == "active"

    page.click("text=Delete my data")
    page.click("text=Delete everything")
    page.wait_for_selector("text=Your data is gone")
    page.screenshot(path=ARTIFACTS / "erased.png")
    assert not Subscriber.objects.exists()


def test_signup_with_a_description_a_liked_paper_link_and_a_followed_author(
    page, live_server
) -> None:  # type: ignore[no-untyped-def]
    Paper.objects.create(
        arxiv_id="2110.15352",
        title="MCUNetV2: Memory-Efficient Patch-based Inference for Tiny Deep Learning",
        title_key="mcunetv2",
        source="arxiv",
    )
    page.goto(live_server.url + "/")
    page.fill("#id_email", "ada@example.org")
    page.fill("#id_about", "Networks on microcontrollers with a few hundred kilobytes.")
    page.fill("#id_liked", "https://example.com/papers/2110.15352")
    page.fill("#id_authors", "Song Han")
    page.check("#id_consent")
    page.click("button:has-text('Subscribe')")
    error = page.locator(".field:has(#id_liked) .errorlist")
    assert "links to example.com" in error.inner_text()  # next to the field
    assert page.input_value("#id_about").startswith("Networks on microcontrollers")  # kept
    assert not Subscriber.objects.exists()

    page.fill("#id_liked", "https://huggingface.co/papers/2110.15352")
    page.click("button:has-text('Subscribe')")
    page.wait_for_selector("text=Check your inbox")
    page.goto(link_in_last_email("confirm", live_server))
    page.click("text=Yes, confirm")
    page.wait_for_selector("text=You're subscribed")

    profile = Subscriber.objects.get().profiles.get()
    assert profile.about == "Networks on microcontrollers with a few hundred kilobytes."
    assert profile.authors == ["Song Han"]
    liked = profile.papers.get()
    assert liked.paper and liked.paper.title.startswith("MCUNetV2")
    page.click("text=Change your interests or schedule")
    assert page.input_value("#id_liked") == "https://huggingface.co/papers/2110.15352"
    assert page.input_value("#id_authors") == "Song Han"
    page.screenshot(path=ARTIFACTS / "manage-profile.png", full_page=True)


LONGEST_OPTION_FITS = """(id) => {
  const select = document.getElementById(id);
  const probe = document.createElement("span");
  probe.style.font = getComputedStyle(select).font;
  probe.style.whiteSpace = "pre";
  probe.style.position = "absolute";
  probe.textContent = [...select.options].map((o) => o.text).sort((a, b) => b.length - a.length)[0];
  document.body.appendChild(probe);
  const needed = probe.getBoundingClientRect().width;
  probe.remove();
  return select.clientWidth >= needed + 30;  // the arrow and the padding beside the text
}"""


def test_the_manage_page_asks_the_day_only_for_weekly_and_shows_its_choices_whole(  # type: ignore[no-untyped-def]
    browser, live_server
) -> None:
    reader = active_subscriber("ada@example.org", ["graph neural networks"])
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(emails.manage_url(reader))

    assert page.is_hidden("#id_weekday")  # a daily reader has no day to choose
    page.select_option("#id_frequency", "weekly")
    assert page.is_visible("#id_weekday")
    assert page.evaluate(LONGEST_OPTION_FITS, "id_trending_weight")
    page.screenshot(path=ARTIFACTS / "manage-wide.png", full_page=True)

    page.goto(live_server.url + "/")
    assert page.is_hidden("#id_weekday")
    assert errors == []  # no refused script, no missing icon
