"""What a visitor typed reaches a page only through an autoescaping template (issue 22): no
markup is built by hand anywhere in the project, so an address or a keyword holding tags is
shown as text, in the admin too."""

import re
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from newsletter.models import Subscriber
from tests.factories import active_subscriber, add_profile

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent
# Accepted by Django's EmailValidator (a quoted local part may hold <, >, = and a form feed),
# and stored by the signup form before issue 22.
META_REFRESH = '"<meta\x0chttp-equiv=refresh\x0ccontent=0;url=https://evil.example/>"@x.com'


def test_a_preview_with_nothing_to_send_shows_a_hostile_address_as_text(admin_client) -> None:  # type: ignore[no-untyped-def]
    reader = active_subscriber(META_REFRESH, ["a keyword that matches nothing at all"])

    page = admin_client.get(f"/admin/newsletter/subscriber/{reader.pk}/preview/")

    assert page.status_code == 200
    soup = BeautifulSoup(page.content, "html.parser")
    assert soup.find("meta", attrs={"http-equiv": True}) is None
    assert "passes the relevance floor" in soup.get_text()
    assert META_REFRESH.replace("\x0c", " ") in soup.get_text().replace("\x0c", " ")


def test_the_admin_pages_of_a_hostile_address_hold_no_markup_of_it(admin_client) -> None:  # type: ignore[no-untyped-def]
    reader = Subscriber.objects.create(email=META_REFRESH)
    add_profile(reader, keywords=["<b>bold</b>"], authors=["<b>bold</b>"], about="<b>bold</b>")
    for url in (
        "/admin/newsletter/subscriber/",
        f"/admin/newsletter/subscriber/{reader.pk}/change/",
        "/admin/dashboard/",
    ):
        soup = BeautifulSoup(admin_client.get(url).content, "html.parser")
        assert soup.find("meta", attrs={"http-equiv": True}) is None, url
        assert soup.find("b", string="bold") is None, url


# Ways to put markup into a page without the template engine escaping it.
UNESCAPED_TEMPLATE = re.compile(r"\|\s*safe\b|autoescape\s+(off|false)|\bsafeseq\b")
UNESCAPED_PYTHON = re.compile(
    r"\bmark_safe\b|\bformat_html\b|\bSafeString\b|\bMarkup\(|HttpResponse\(\s*f?[\"']<"
    r"|f[\"']<[a-zA-Z/]"
)


def test_no_template_or_module_builds_markup_by_hand() -> None:
    found = []
    for path in (ROOT / "templates").rglob("*.html"):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if UNESCAPED_TEMPLATE.search(line):
                found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    for app in ("config", "papers", "newsletter"):
        for path in (ROOT / app).rglob("*.py"):
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if UNESCAPED_PYTHON.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert found == []
