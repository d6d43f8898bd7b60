"""The "more like this" page in headless Chromium: counted, undone, and counted by its button
when a burst of link checks (a mail scanner's pace) left it uncounted."""

import re
import urllib.request

import pytest
from django.core import mail
from django.utils import timezone

from newsletter.digests import claim_due_subscribers, compose_chunk, send_queued
from newsletter.models import Feedback
from papers.models import Paper
from tests.conftest import ARTIFACTS
from tests.factories import active_subscriber

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("eager_tasks")]
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36"


@pytest.fixture
def more_links(live_server) -> list[str]:  # type: ignore[no-untyped-def]
    for n in range(5):
        Paper.objects.create(
            title=f"Graph neural networks for molecules, part {n}",
            title_key=f"gnn molecules {n}",
            abstract="Graph neural networks pass messages over the atoms and bonds of molecules.",
            listed_on=timezone.now().date(),
            source="text",
        )
    active_subscriber("ada@example.org", ["graph neural networks"], digest_size=5)
    send_queued(compose_chunk(claim_due_subscribers(timezone.now(), 10)))
    paths = re.findall(r"More like this: \S+?(/digest/\S+/more/)", str(mail.outbox[-1].body))
    assert len(paths) == 5
    return [live_server.url + path for path in paths]


def test_a_vote_is_counted_and_undone_in_a_real_browser(browser, more_links) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page()
    page.goto(more_links[0])
    page.wait_for_selector("text=Thanks!")
    assert Feedback.objects.get().value == 1

    page.click("button:has-text('Undo')")
    page.wait_for_selector("text=Undone")
    assert not Feedback.objects.exists()


def test_a_vote_left_uncounted_by_a_burst_is_counted_by_its_button(browser, more_links) -> None:  # type: ignore[no-untyped-def]
    for url in more_links[:3]:  # a scanner's pace: three links in a second or so
        urllib.request.urlopen(urllib.request.Request(url, headers={"User-Agent": BROWSER}))
    page = browser.new_page()
    page.goto(more_links[3])
    page.wait_for_selector("text=Not counted yet")
    page.screenshot(path=ARTIFACTS / "vote-not-counted.png")
    assert not Feedback.objects.exists()

    page.click("button:has-text('More like')")
    page.wait_for_selector("text=Thanks!")
    vote = Feedback.objects.get()
    assert (vote.value, vote.paper_id) == (1, int(more_links[3].split("/")[-3]))
