from datetime import UTC, datetime

import pytest

from newsletter.digests import claim_due_subscribers, period_of
from newsletter.models import Subscriber


def subscriber(**fields: object) -> Subscriber:
    defaults: dict[str, object] = {"email": "ada@example.org", "send_hour": 8, "timezone": "UTC"}
    return Subscriber(**(defaults | fields))


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_a_daily_digest_goes_out_at_the_local_hour() -> None:
    tokyo = subscriber(timezone="Asia/Tokyo")  # UTC+9, no daylight saving
    assert tokyo.next_send_after(utc(2026, 11, 23, 12, 0)) == utc(2026, 11, 23, 23, 0)


def test_the_send_hour_itself_is_not_due_twice() -> None:
    ada = subscriber()
    assert ada.next_send_after(utc(2026, 11, 23, 8, 0)) == utc(2026, 11, 24, 8, 0)


def test_a_weekly_digest_goes_out_on_the_chosen_weekday() -> None:
    weekly = subscriber(
        frequency="weekly", weekday=Subscriber.Weekday.FRIDAY, timezone="Europe/Paris"
    )
    # Monday 23 Nov 2026 -> Friday 27 Nov, 08:00 in Paris (UTC+1)
    assert weekly.next_send_after(utc(2026, 11, 23, 12)) == utc(2026, 11, 27, 7, 0)


def test_the_local_hour_holds_across_the_spring_daylight_saving_change() -> None:
    ny = subscriber(timezone="America/New_York")
    before = ny.next_send_after(utc(2026, 3, 6, 14))  # Sat 7 Mar, 08:00 EST (UTC-5)
    after = ny.next_send_after(before)  # Sun 8 Mar: clocks went forward; 08:00 EDT (UTC-4)
    assert before == utc(2026, 3, 7, 13, 0)
    assert after == utc(2026, 3, 8, 12, 0)


def test_an_hour_skipped_by_daylight_saving_falls_on_the_next_hour() -> None:
    two_am = subscriber(timezone="Europe/Berlin", send_hour=2)  # 29 Mar 2026: 02:00 -> 03:00
    sent = two_am.next_send_after(utc(2026, 3, 28, 12))
    assert sent == utc(2026, 3, 29, 1, 0)  # 03:00 CEST, the first hour that exists


def test_the_period_is_the_local_day_or_the_iso_week() -> None:
    late = utc(2026, 11, 23, 23, 30)  # already the 24th in Tokyo
    assert period_of(subscriber(timezone="Asia/Tokyo"), late) == "2026-11-24"
    assert period_of(subscriber(frequency="weekly"), late) == "2026-W48"


@pytest.mark.django_db
def test_only_active_subscribers_whose_time_has_come_are_claimed() -> None:
    now = utc(2026, 11, 23, 9)
    due = Subscriber.objects.create(
        email="due@example.org", status="active", next_digest_at=utc(2026, 11, 23, 8)
    )
    Subscriber.objects.create(
        email="later@example.org", status="active", next_digest_at=utc(2026, 11, 23, 10)
    )
    Subscriber.objects.create(
        email="pending@example.org", status="pending", next_digest_at=utc(2026, 11, 23, 8)
    )
    Subscriber.objects.create(
        email="paused@example.org", status="paused", next_digest_at=utc(2026, 11, 23, 8)
    )

    assert claim_due_subscribers(now, limit=100) == [due.id]
    assert claim_due_subscribers(now, limit=100) == []  # leased


@pytest.mark.django_db
def test_a_claim_nobody_finished_is_claimed_again_after_the_lease(settings) -> None:  # type: ignore[no-untyped-def]
    settings.DIGEST_CLAIM_LEASE_MINUTES = 15
    due = Subscriber.objects.create(
        email="due@example.org", status="active", next_digest_at=utc(2026, 11, 23, 8)
    )
    assert claim_due_subscribers(utc(2026, 11, 23, 9), 10) == [due.id]
    assert claim_due_subscribers(utc(2026, 11, 23, 9, 10), 10) == []
    assert claim_due_subscribers(utc(2026, 11, 23, 9, 16), 10) == [due.id]
