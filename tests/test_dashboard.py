"""The staff dashboard and tools: each figure against data built here, a constant number of
queries, the preview and test send, the import tool, and who may use them."""

import re
import threading
from datetime import timedelta

import pytest
import redis
from bs4 import BeautifulSoup
from django.conf import settings
from django.contrib.auth.models import Permission, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from config.celery import app as celery_app
from newsletter import dashboard, digests
from newsletter.models import Click, DeliveryEvent, Digest, InterestProfile, Subscriber
from papers.models import ImportRun, Paper, Topic
from tests.factories import active_subscriber, add_profile, hf_item, hf_json

pytestmark = pytest.mark.django_db
Status = Subscriber.Status


@pytest.fixture
def staff(admin_user):  # type: ignore[no-untyped-def]
    admin_user.email = "editor@paperboy.example"
    admin_user.save()
    return admin_user


def build_month(now, readers: int = 4):  # type: ignore[no-untyped-def]
    """Subscribers in every state, digests today, this week and long ago, and their events."""
    gnn = Topic.objects.get(slug="graph-neural-networks")
    papers = [
        Paper.objects.create(title=f"Paper {n}", title_key=f"paper {n}", source="hf-json")
        for n in range(3)
    ]
    active = []
    for n in range(readers):
        reader = active_subscriber(f"r{n}@example.org", ["graph neural networks", "GNN"])
        reader.profiles.get().topics.add(gnn)
        active.append(reader)
    pending = Subscriber.objects.create(email="p@example.org", status=Status.PENDING)
    add_profile(pending, keywords=["gnn"])
    Subscriber.objects.create(email="z@example.org", status=Status.PAUSED)
    Subscriber.objects.create(
        email="u1@example.org", status=Status.UNSUBSCRIBED, unsubscribed_at=now - timedelta(days=3)
    )
    Subscriber.objects.create(
        email="u2@example.org", status=Status.UNSUBSCRIBED, unsubscribed_at=now - timedelta(days=60)
    )
    digests = []
    for n, reader in enumerate(active):
        digests.append(
            Digest.objects.create(
                subscriber=reader, period=f"d{n}", status="sent", sent_at=now - timedelta(minutes=5)
            )
        )
    old = Digest.objects.create(
        subscriber=active[0], period="old", status="sent", sent_at=now - timedelta(days=45)
    )
    kinds = [("delivered", False)] * 4 + [("opened", False)] * 2 + [("bounced", False)]
    kinds += [("bounced", True), ("complained", False)]
    targets = digests[:4] + digests[:2] + [digests[3], digests[2], digests[1]]
    for n, ((kind, soft), digest) in enumerate(zip(kinds, targets, strict=True)):
        DeliveryEvent.objects.create(
            provider="Postmark", event_type=kind, soft=soft, event_key=f"e{n}", digest=digest
        )
    DeliveryEvent.objects.create(
        provider="Postmark",
        event_type="opened",
        event_key="old",
        digest=old,
        received=now - timedelta(days=40),
    )
    for paper, digest in (
        (papers[0], digests[0]),
        (papers[0], digests[1]),
        (papers[1], digests[0]),
    ):
        Click.objects.create(
            digest=digest, subscriber_id=digest.subscriber_id or 0, paper=paper, url="https://x.org"
        )
    ImportRun.objects.create(
        sources=["a.json"], new=7, updated=2, errors=["a.json: item 3: no title"]
    )
    return papers


def test_each_figure_matches_the_data(staff) -> None:  # type: ignore[no-untyped-def]
    now = timezone.now()
    papers = build_month(now)

    figures = dashboard.figures(now)

    assert figures["subscribers"] == {
        "pending": 1,
        "active": 4,
        "paused": 1,
        "unsubscribed": 2,
        "bounced": 0,
        "complained": 0,
    }
    assert figures["last_30_days"] == {"unsubscribes": 1, "bounces": 1, "complaints": 1}
    assert figures["digests_sent"] == {"today": 4, "this_week": 4}
    # 4 digests sent in the window: delivered 4, opened 2, bounced 2 (one soft), complained 1,
    # clicked 2 (two clicks in one digest count once).
    assert figures["rates"] == {
        "delivered": 100.0,
        "bounced": 50.0,
        "complained": 25.0,
        "opened": 50.0,
        "clicked": 50.0,
    }
    assert [(r["paper__title"], r["clicks"]) for r in figures["most_clicked"]] == [
        (papers[0].title, 2),
        (papers[1].title, 1),
    ]
    assert figures["top_topics"] == [{"name": "Graph neural networks", "followers": 4}]
    assert figures["top_keywords"] == [("gnn", 4), ("graph neural networks", 4)]
    assert figures["last_import"].new == 7

    days = dashboard.series(now)
    today = timezone.localdate(now)
    assert days["digests"][today] == 4 and days["open_rate"][today] == 50.0
    assert days["click_rate"][today] == 50.0
    assert days["unsubscribes"][today - timedelta(days=3)] == 1
    assert days["signups"][today] == 8  # every row created here today


def test_the_page_shows_the_figures_charts_and_operations(client: Client, staff) -> None:
    build_month(timezone.now())
    client.force_login(staff)
    page = client.get("/admin/dashboard/")
    html = page.content.decode()
    assert page.status_code == 200
    assert 'data-figure="subscribers-active"><span class="n">4</span>' in html
    assert 'data-figure="rate-opened"><span class="n">50.0%</span>' in html
    charts = re.findall(r'<iframe class="pb-chart" src="([^"]+)"', html)
    assert len(charts) == 3
    for url in charts:
        svg = client.get(url)
        assert svg["Content-Type"] == "image/svg+xml" and b'class="pygal-chart' in svg.content
        assert svg["X-Frame-Options"] == "SAMEORIGIN"
        assert "frame-ancestors 'self'" in svg["Content-Security-Policy"]
    assert "7 new, 2 updated" in html and "a.json: item 3: no title" in html
    assert re.search(r'id="broker">\s*reachable;', html)  # file system broker here, Redis in CI


def test_without_provider_events_the_rates_say_so_instead_of_zero_percent(
    client: Client, staff
) -> None:
    build_month(timezone.now())
    DeliveryEvent.objects.all().delete()  # plain SMTP: the backend reports nothing
    client.force_login(staff)
    html = client.get("/admin/dashboard/").content.decode()

    assert not re.search(r"\b0\.0%", html)
    for kind in ("delivered", "bounced", "complained", "opened"):
        assert f'data-figure="rate-{kind}"><span class="n">\u2013</span>' in html
        assert f"{kind}: no provider events" in html
    assert 'data-figure="rate-clicked"><span class="n">50.0%</span>' in html  # our own redirects


def test_the_dashboard_makes_the_same_queries_for_ten_or_thousands_of_rows(client, staff) -> None:  # type: ignore[no-untyped-def]
    now = timezone.now()
    build_month(now)
    client.force_login(staff)
    with CaptureQueriesContext(connection) as small:
        assert client.get("/admin/dashboard/").status_code == 200

    gnn = Topic.objects.get(slug="graph-neural-networks")
    readers = Subscriber.objects.bulk_create(
        Subscriber(email=f"bulk{n}@example.org", status=Status.ACTIVE) for n in range(3000)
    )
    profiles = InterestProfile.objects.bulk_create(
        InterestProfile(subscriber=r, keywords=[f"k{n % 50}"]) for n, r in enumerate(readers)
    )
    gnn.profiles.add(*profiles[:1000])
    digests = Digest.objects.bulk_create(
        Digest(subscriber=r, period="bulk", status="sent", sent_at=now - timedelta(days=n % 20))
        for n, r in enumerate(readers)
    )
    DeliveryEvent.objects.bulk_create(
        DeliveryEvent(provider="Mailgun", event_type=kind, event_key=f"b{kind}{n}", digest=d)
        for n, d in enumerate(digests)
        for kind in ("delivered", "opened")
    )
    paper = Paper.objects.first()
    Click.objects.bulk_create(
        Click(digest=d, subscriber=r, paper=paper, url="https://x.org")
        for d, r in zip(digests[:500], readers, strict=False)
    )
    with CaptureQueriesContext(connection) as large:
        assert client.get("/admin/dashboard/").status_code == 200

    assert len(large.captured_queries) == len(small.captured_queries)


@pytest.fixture
def reader_with_papers():  # type: ignore[no-untyped-def]
    for n, title in enumerate(["Graph neural networks for molecules", "Message passing at scale"]):
        Paper.objects.create(
            title=title,
            title_key=title.lower(),
            arxiv_id=f"2511.0000{n}",
            abstract=f"{title}: graph neural networks and message passing on graphs.",
            listed_on=timezone.now().date(),
            upvotes=5,
            source="hf-json",
        )
    return active_subscriber("ada@example.org", ["graph neural networks"])


def test_the_preview_shows_the_next_digest_and_sends_or_records_nothing(  # type: ignore[no-untyped-def]
    client, staff, reader_with_papers, mailoutbox
) -> None:
    client.force_login(staff)
    page = client.get(f"/admin/newsletter/subscriber/{reader_with_papers.pk}/preview/")

    assert page.status_code == 200
    assert b"Graph neural networks for molecules" in page.content
    assert b"matches your keyword" in page.content
    assert mailoutbox == [] and not Digest.objects.exists()
    reader_with_papers.refresh_from_db()
    assert reader_with_papers.next_digest_at is not None and reader_with_papers.claimed_at is None


def test_a_test_send_reaches_only_the_staff_address(
    client, staff, reader_with_papers, mailoutbox
) -> None:  # type: ignore[no-untyped-def]
    client.force_login(staff)
    response = client.post(f"/admin/newsletter/subscriber/{reader_with_papers.pk}/send-test/")

    assert response.status_code == 302
    assert len(mailoutbox) == 1
    message = mailoutbox[0]
    assert message.recipients() == ["editor@paperboy.example"]
    assert message.subject.startswith("[Test for ada@example.org]")
    assert "List-Unsubscribe" not in message.extra_headers
    assert not Digest.objects.exists()  # nothing recorded for the reader


def links_of(message) -> set[str]:  # type: ignore[no-untyped-def]
    """Every link in an email: the HTML part's hrefs and the text part's URLs."""
    html = message.alternatives[0][0]
    hrefs = {str(a["href"]) for a in BeautifulSoup(html, "html.parser").find_all("a")}
    return hrefs | set(re.findall(r"https?://\S+", message.body))


def test_a_preview_and_a_test_send_carry_no_working_link_of_any_readers(  # type: ignore[no-untyped-def]
    client, staff, reader_with_papers, mailoutbox
) -> None:
    # A preview's digest is rolled back, so a signed id of it may later name another reader's
    # digest (SQLite reuses it); and a staff member's test must not unsubscribe the reader.
    client.force_login(staff)
    preview = client.get(f"/admin/newsletter/subscriber/{reader_with_papers.pk}/preview/")
    client.post(f"/admin/newsletter/subscriber/{reader_with_papers.pk}/send-test/")
    [message] = mailoutbox

    page = BeautifulSoup(preview.content, "html.parser")
    email = BeautifulSoup(str(page.find("iframe")["srcdoc"]), "html.parser")  # type: ignore[index]
    preview_links = {str(a["href"]) for a in page.find_all("a") + email.find_all("a")}
    for link in links_of(message) | preview_links:
        assert not link.startswith(settings.SITE_URL), link  # no page of the site, no token
    assert "https://arxiv.org/abs/2511.00000" in links_of(message)  # papers link to themselves
    assert "List-Unsubscribe" not in message.extra_headers


def test_tools_are_for_staff_only_and_actions_need_csrf(reader_with_papers, mailoutbox) -> None:  # type: ignore[no-untyped-def]
    reader = User.objects.create_user("reader", "reader@example.org", "pw-123456789")
    anonymous, not_staff = Client(), Client()
    not_staff.force_login(reader)
    for client in (anonymous, not_staff):
        for url in (
            "/admin/dashboard/",
            "/admin/import-papers/",
            f"/admin/newsletter/subscriber/{reader_with_papers.pk}/preview/",
        ):
            response = client.get(url)
            assert response.status_code == 302 and "/admin/login/" in response["Location"]

    staff_user = User.objects.create_user("ed", "ed@example.org", "pw-123456789", is_staff=True)
    staff_user.is_superuser = True
    staff_user.save()
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(staff_user)
    url = f"/admin/newsletter/subscriber/{reader_with_papers.pk}/send-test/"
    assert strict.post(url).status_code == 403
    assert mailoutbox == []


def test_staff_reach_a_readers_digest_and_the_tools_only_with_the_permissions_for_them(  # type: ignore[no-untyped-def]
    reader_with_papers, mailoutbox
) -> None:
    # is_staff opens the admin, not every reader's data: each tool asks for its permission.
    viewer = User.objects.create_user("vi", "vi@example.org", "pw-123456789", is_staff=True)
    client = Client()
    client.force_login(viewer)
    base = f"/admin/newsletter/subscriber/{reader_with_papers.pk}"
    assert client.get(f"{base}/preview/").status_code == 403
    assert client.get("/admin/import-papers/").status_code == 403

    viewer.user_permissions.add(Permission.objects.get(codename="view_subscriber"))
    client.force_login(User.objects.get(pk=viewer.pk))  # permissions are cached per object
    assert client.get(f"{base}/preview/").status_code == 200
    assert client.post(f"{base}/send-test/").status_code == 403
    client.post(  # not an action they are offered: nothing happens
        "/admin/newsletter/subscriber/",
        {"action": "pause", "_selected_action": [reader_with_papers.pk]},
    )
    assert mailoutbox == []
    reader_with_papers.refresh_from_db()
    assert reader_with_papers.status == Subscriber.Status.ACTIVE


def test_the_admin_login_locks_out_after_repeated_failures(client: Client, settings) -> None:
    User.objects.create_superuser("boss", "boss@example.org", "right-password-123")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post("/admin/login/", {"username": "boss", "password": "wrong"})
    locked = client.post("/admin/login/", {"username": "boss", "password": "right-password-123"})
    assert locked.status_code == 429
    assert client.get("/admin/dashboard/").status_code == 302  # still not logged in


def test_the_import_tool_imports_a_good_file_and_reports_a_broken_one(
    client, staff, eager_tasks
) -> None:  # type: ignore[no-untyped-def]
    client.force_login(staff)
    good = hf_json(hf_item("2511.11111", "Good paper"), hf_item("2511.22222", "Another one"))
    response = client.post(
        "/admin/import-papers/",
        {"file": SimpleUploadedFile("daily.json", good.encode()), "format": "auto"},
    )
    assert response.status_code == 302
    assert set(Paper.objects.values_list("arxiv_id", flat=True)) == {"2511.11111", "2511.22222"}

    broken = SimpleUploadedFile("broken.json", b'[{"paper": {"id": "2511.3"')
    client.post("/admin/import-papers/", {"file": broken, "format": "hf-json"})
    page = client.get("/admin/import-papers/").content.decode()
    assert "broken.json" in page and "2 " in page
    assert ImportRun.objects.latest().errors  # the broken file's error is recorded and shown
    assert "broken.json: not valid JSON" in page
    assert Paper.objects.count() == 2

    form = client.post("/admin/import-papers/", {"format": "auto"})
    assert form.status_code == 200 and b"Give either a file or an URL." in form.content
    binary = SimpleUploadedFile("x.json", b"\xff\xfe\x00garbage")
    form = client.post("/admin/import-papers/", {"file": binary, "format": "auto"})
    assert b"The file is not UTF-8 text." in form.content


def test_the_broker_line_counts_the_tasks_waiting_in_each_queue(redis_url, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    url = redis_url.rsplit("/", 1)[0] + "/9"  # a Redis database of its own, emptied
    redis.Redis.from_url(url).flushdb()
    monkeypatch.setenv("CELERY_BROKER_URL", url)  # Celery reads it before app.conf
    try:
        empty = dashboard.broker_state()
        assert empty == dashboard.Broker(True, {"celery": 0, "ingest": 0, "compose": 0, "send": 0})
        with celery_app.connection_for_write(url) as conn:
            celery_app.send_task("newsletter.tasks.send_queued_digests", [[1]], connection=conn)
        assert dashboard.broker_state().waiting == {
            "celery": 0,
            "ingest": 0,
            "compose": 0,
            "send": 1,
        }
    finally:
        redis.Redis.from_url(url).flushdb()


def test_an_unreachable_broker_is_shown_not_raised(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:1/0")  # nothing listens there
    state = dashboard.broker_state()
    assert not state.reachable and state.waiting == {}
    assert "Error" in state.error


def test_a_preview_while_the_periods_digest_exists_shows_the_period_and_keeps_that_digest() -> None:
    reader = active_subscriber("ada@example.org", ["graph neural networks"])
    period = digests.period_of(reader, reader.next_digest_at)
    sent = Digest.objects.create(subscriber=reader, period=period, status="sent")

    shown = digests.preview(reader, lambda digest: (digest.period, digest.pk))

    assert shown[0] == period and shown[1] != sent.pk
    assert list(Digest.objects.values_list("pk", flat=True)) == [sent.pk]


@pytest.mark.django_db(transaction=True)
def test_a_preview_while_a_worker_composes_that_periods_digest_does_not_fail(postgres) -> None:  # type: ignore[no-untyped-def]
    # The worker's insert is not committed yet: no check can see it, and a preview inserting
    # the same (subscriber, period) would wait for it, then fail with an IntegrityError.
    reader = active_subscriber("ada@example.org", ["graph neural networks"])
    period = digests.period_of(reader, reader.next_digest_at)
    inserted, previewed = threading.Event(), threading.Event()

    def worker_composing() -> None:
        try:
            with transaction.atomic():
                Digest.objects.create(subscriber=reader, period=period, status="queued")
                inserted.set()
                previewed.wait(timeout=5)  # commits then, whatever the preview did
        finally:
            connection.close()

    worker = threading.Thread(target=worker_composing)
    worker.start()
    try:
        assert inserted.wait(timeout=5)
        shown = digests.preview(reader, lambda digest: digest.period)
    finally:
        previewed.set()
        worker.join()

    assert shown == period
    assert list(Digest.objects.values_list("period", "status")) == [(period, "queued")]
