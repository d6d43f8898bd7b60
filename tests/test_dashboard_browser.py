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


def log_in(page, live_server) -> None:  # type: ignore[no-untyped-def]
    page.goto(live_server.url + "/admin/")
    page.fill("#id_username", "editor")
    page.fill("#id_password", "a-long-password-42")
    page.click("input[type=submit]")


def console_errors(page) -> list[str]:  # type: ignore[no-untyped-def]
    """Errors the page and its frames log (a refused script or a 404 included), as they come."""
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def test_staff_log_in_read_the_dashboard_and_preview_a_digest(reader, page, live_server) -> None:  # type: ignore[no-untyped-def]
    errors = console_errors(page)
    log_in(page, live_server)
    page.click("text=Dashboard")
    assert page.inner_text('[data-figure="subscribers-active"] .n') == "1"
    assert page.inner_text('[data-figure="subscribers-pending"] .n') == "1"

    # A chart's tooltip: the day and the count of the dot under the pointer.
    chart = page.frame_locator("iframe.pb-chart").first
    dots = chart.locator(".serie-0 .tooltip-trigger")  # signups, day by day
    dots.last.hover()
    tooltip = chart.locator(".pb-tooltip")
    tooltip.wait_for(state="visible")
    today = timezone.localdate().strftime("%d %b")
    assert tooltip.text_content() == f"{today} · signups · 2"  # the reader and the pending one
    page.screenshot(path=ARTIFACTS / "admin-dashboard.png", full_page=True)

    page.goto(f"{live_server.url}/admin/newsletter/subscriber/{reader.pk}/change/")
    page.click("text=Preview next digest")
    digest = page.frame_locator("iframe.pb-preview")
    digest.locator("text=Message passing for molecules").wait_for()
    assert page.locator("#site-name").is_visible()  # the admin's own header around it
    page.screenshot(path=ARTIFACTS / "admin-preview.png", full_page=True)
    page.click("text=Back to ada@example.org")
    assert page.url.endswith(f"/admin/newsletter/subscriber/{reader.pk}/change/")
    assert errors == []
