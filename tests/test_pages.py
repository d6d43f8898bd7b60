import re
from datetime import UTC, date, datetime

import pytest
import time_machine
from django.db import connection
from django.test import Client

from papers.models import Paper

pytestmark = pytest.mark.django_db


def add(title: str, listed_on: date, upvotes: int | None = None, **extra: object) -> Paper:
    return Paper.objects.create(
        title=title,
        title_key=title.lower(),
        listed_on=listed_on,
        upvotes=upvotes,
        source="hf-json",
        **extra,
    )


def test_the_home_page_lists_the_latest_days_papers_best_first(client: Client) -> None:
    add("Yesterday's hit", date(2026, 11, 22), upvotes=500)
    add("Quiet paper", date(2026, 11, 23), upvotes=2)
    add(
        "Today's hit",
        date(2026, 11, 23),
        upvotes=90,
        arxiv_id="2511.00001",
        authors=["Ada Lovelace", "Alan Turing"],
    )

    page = client.get("/").content.decode()

    assert "Yesterday&#x27;s hit" not in page
    assert page.index("Today&#x27;s hit") < page.index("Quiet paper")
    assert 'href="https://arxiv.org/abs/2511.00001"' in page
    assert "Ada Lovelace, Alan Turing" in page
    assert "▲ 90" in page


def test_the_home_page_is_paginated(client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.PAPERS_PER_PAGE = 2
    for n in range(5):
        add(f"Paper number {n}", date(2026, 11, 23), upvotes=n)

    first, last = client.get("/").content.decode(), client.get("/?page=3").content.decode()

    assert "Paper number 4" in first and "Paper number 0" not in first
    assert "Page 1 of 3" in first
    assert "Paper number 0" in last
    assert client.get("/?page=junk").status_code == 200


def test_the_home_page_works_with_an_empty_catalogue(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert b"No papers yet" in response.content


def test_the_home_page_fits_a_phone(client: Client) -> None:
    assert b'name="viewport" content="width=device-width' in client.get("/").content


def test_healthz_reports_database_and_broker(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}


def test_healthz_is_503_when_the_broker_is_down(client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["broker"] == "down"


def test_healthz_is_503_when_the_database_is_down(client: Client, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from django.db.utils import OperationalError

    def refuse() -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr(connection, "cursor", refuse)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["database"] == "down"


@pytest.mark.django_db
def test_pages_carry_a_content_security_policy_and_refuse_framing(client) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/")
    policy = response["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    nonce = re.search(r"'nonce-([^']+)'", policy)
    assert nonce and f'<script nonce="{nonce.group(1)}">' in response.content.decode()
    assert response["X-Frame-Options"] == "DENY"


def test_the_home_page_is_built_once_an_hour_and_a_new_import_shows_within_the_hour(
    client: Client, django_assert_num_queries
) -> None:  # type: ignore[no-untyped-def]
    # Under load (BENCHMARKS.md, "The home page"), only the CSRF token and the script's nonce
    # are made per visitor; the list and the form come from the cache.
    with time_machine.travel(datetime(2026, 11, 23, 9, 5, tzinfo=UTC), tick=False):
        add("Morning paper", date(2026, 11, 23), upvotes=5)
        assert "Morning paper" in client.get("/").content.decode()
        add("Imported later", date(2026, 11, 23), upvotes=50)
        with django_assert_num_queries(0):
            page = client.get("/").content.decode()
        assert "Morning paper" in page and "Imported later" not in page
    with time_machine.travel(datetime(2026, 11, 23, 10, 0, tzinfo=UTC), tick=False):
        assert "Imported later" in client.get("/").content.decode()


def test_any_page_number_a_visitor_types_is_served_from_the_cache_of_a_page_there_is(
    client: Client, settings, django_assert_num_queries
) -> None:  # type: ignore[no-untyped-def]
    # The cache holds one entry per page of the list: numbers past the end are the last page,
    # anything else is the first, so typed numbers cannot fill the cache with renders.
    settings.PAPERS_PER_PAGE = 2
    for n in range(5):
        add(f"Paper number {n}", date(2026, 11, 23), upvotes=n)
    with time_machine.travel(datetime(2026, 11, 23, 9, 5, tzinfo=UTC), tick=False):
        first, last = (listing(client.get(url).text) for url in ("/", "/?page=3"))
        with django_assert_num_queries(0):
            for number in ("9999", "4", "123456789012", "junk", "0", "-1", "%00", "1"):
                assert listing(client.get(f"/?page={number}").text) in (first, last), number
        assert "Page 3 of 3" in client.get("/?page=9999").content.decode()
        assert "Page 1 of 3" in client.get("/?page=junk").content.decode()


def listing(page: str) -> str:
    """The page without what is made per visitor (the CSRF token, the script's nonce)."""
    page = re.sub(r'value="[^"]+"', "", page)
    return re.sub(r'nonce="[^"]+"', "", page)


def test_each_visitor_of_the_cached_home_page_gets_a_working_csrf_token_and_nonce(
    client: Client,
) -> None:
    pages = [Client(enforce_csrf_checks=True).get("/") for _ in range(2)]

    tokens = [re.findall(r'name="csrfmiddlewaretoken" value="([^"]+)"', p.text) for p in pages]
    nonces = [re.findall(r'<script nonce="([^"]+)">', p.text) for p in pages]
    assert len({t[0] for t in tokens}) == len({n[0] for n in nonces}) == 2  # one per visitor
    for page, [nonce] in zip(pages, nonces, strict=True):
        assert f"'nonce-{nonce}'" in page["Content-Security-Policy"]
    visitor = Client(enforce_csrf_checks=True)
    token = re.findall(r'name="csrfmiddlewaretoken" value="([^"]+)"', visitor.get("/").text)[0]
    posted = visitor.post("/", {"csrfmiddlewaretoken": token, "email": "not an address"})
    assert posted.status_code == 400  # past the CSRF check (403), to the form's own answer


def test_the_site_uses_no_emoji_a_browser_may_lack_a_font_for(client: Client) -> None:
    add("A discussed paper", date(2026, 11, 23), upvotes=3, comments=4)
    page = client.get("/").content.decode()
    assert "4 comments" in page
    assert not re.findall("[\U0001f000-\U0001faff\u2600-\u27bf\ufe0f]", page)


def test_the_site_has_an_icon_and_answers_for_favicon_ico(client: Client) -> None:
    page = client.get("/").content.decode()
    icon = re.search(r'<link rel="icon" href="([^"]+)"', page)
    assert icon and icon.group(1).endswith("favicon.svg")
    answer = client.get("/favicon.ico")
    assert answer.status_code in (301, 302) and answer["Location"] == icon.group(1)
