"""A staff member in headless Chromium: log in, read the dashboard, preview a reader's next
digest. Screenshots land in test-artifacts/ (not committed)."""

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from newsletter.models import Subscriber
from papers.models import Paper
from tests.conftest import ARTIFACTS
from tests.factories import active_subscriber

pytestmark = pytest.mark.browser


@pytest.fixture
def reader() -> Subscriber:
    """A staff account, a paper, an active reader (returned) and a pending one."""
    User.objects.create_superuser("editor", "editor@paperboy.example", "a-long-password-42")
    Paper.objects.create(
        title="Message passing for molecules",
        title_key="message passing for molecules",
        arxiv_id="2511.00042",
        abstract="Graph neural networks pass messages between atoms of molecules.",
        listed_on=timezone.now().date(),
        upvotes=12,
        source="hf-json",
    )
    Subscriber.objects.create(email="pending@example.org")
    return active_subscriber("ada@example.org", ["graph neural networks"])


@pytest.fixture
def page(browser):  # type: ignore[no-untyped-def]
    return browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()


def test_staff_log_in_read_the_dashboard_and_preview_a_digest(reader, page, live_server) -> None:  # type: ignore[no-untyped-def]
    page.goto(live_server.url + "/admin/")
    page.fill("#id_username", "editor")
    page.fill("#id_password", "a-long-password-42")
    page.click("input[type=submit]")
    page.click("text=Dashboard")
    page.wait_for_selector(".pygal-chart")
    assert page.inner_text('[data-figure="subscribers-active"] .n') == "1"
    assert page.inner_text('[data-figure="subscribers-pending"] .n') == "1"
    page.screenshot(path=ARTIFACTS / "admin-dashboard.png", full_page=True)

    page.goto(f"{live_server.url}/admin/newsletter/subscriber/{reader.pk}/change/")
    with page.expect_popup() as popup:
        page.click("text=Preview next digest")
    preview = popup.value
    preview.wait_for_selector("text=Message passing for molecules")
    preview.screenshot(path=ARTIFACTS / "admin-preview.png", full_page=True)
