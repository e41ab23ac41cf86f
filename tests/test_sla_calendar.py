"""Business-time arithmetic: around the clock, business hours, weekends, holidays, DST."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from domain.sla_calendar import Calendar, CalendarError

IST = ZoneInfo("Europe/Istanbul")  # UTC+3 all year, no DST
BERLIN = ZoneInfo("Europe/Berlin")
WEEK = frozenset(range(5))
OFFICE = Calendar("Europe/Istanbul", time(9), time(18), WEEK)


def local(
    year: int, month: int, day: int, hour: int, minute: int = 0, zone: ZoneInfo = IST
) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=zone).astimezone(UTC)


def test_around_the_clock_is_plain_addition() -> None:
    start = datetime(2026, 11, 23, 9, tzinfo=UTC)
    calendar = Calendar()
    assert calendar.add(start, timedelta(hours=48)) == start + timedelta(hours=48)
    assert calendar.elapsed(start, start + timedelta(hours=5)) == timedelta(hours=5)
    assert calendar.elapsed(start, start - timedelta(hours=5)) == timedelta(0)
    assert calendar.is_open(start)


def test_inside_hours_same_day() -> None:
    # Monday 2026-11-23 10:00 local + 3h = 13:00 local.
    assert OFFICE.add(local(2026, 11, 23, 10), timedelta(hours=3)) == local(2026, 11, 23, 13)


def test_spills_over_the_evening_into_the_next_morning() -> None:
    assert OFFICE.add(local(2026, 11, 23, 17), timedelta(hours=2)) == local(2026, 11, 24, 10)


def test_outside_hours_starts_counting_at_opening() -> None:
    assert OFFICE.add(local(2026, 11, 23, 22), timedelta(hours=1)) == local(2026, 11, 24, 10)
    assert OFFICE.add(local(2026, 11, 24, 6), timedelta(hours=1)) == local(2026, 11, 24, 10)
    assert not OFFICE.is_open(local(2026, 11, 23, 22))
    assert OFFICE.is_open(local(2026, 11, 23, 9))


def test_weekend_is_skipped() -> None:
    friday = local(2026, 11, 27, 17)
    assert OFFICE.add(friday, timedelta(hours=2)) == local(2026, 11, 30, 10)
    assert OFFICE.elapsed(friday, local(2026, 11, 30, 10)) == timedelta(hours=2)
    assert not OFFICE.is_open(local(2026, 11, 28, 12))


def test_a_holiday_is_skipped() -> None:
    calendar = Calendar("Europe/Istanbul", time(9), time(18), WEEK, frozenset({date(2026, 11, 24)}))
    assert calendar.add(local(2026, 11, 23, 17), timedelta(hours=2)) == local(2026, 11, 25, 10)
    assert calendar.elapsed(local(2026, 11, 23, 9), local(2026, 11, 25, 9)) == timedelta(hours=9)


def test_48_business_hours_over_a_week() -> None:
    # 9 hours a day: 48 hours is five days and three hours.
    start = local(2026, 11, 23, 9)
    due = OFFICE.add(start, timedelta(hours=48))
    assert due == local(2026, 11, 30, 12)
    assert OFFICE.elapsed(start, due) == timedelta(hours=48)


def test_whole_days_with_holidays_but_around_the_clock_hours() -> None:
    calendar = Calendar("Europe/Istanbul", holidays=frozenset({date(2026, 11, 24)}))
    start = local(2026, 11, 23, 12)
    assert calendar.add(start, timedelta(hours=24)) == local(2026, 11, 25, 12)


def test_dst_spring_forward_day_is_one_hour_shorter() -> None:
    # Berlin, Sunday 2026-03-29: 02:00 becomes 03:00; the whole local day holds 23 hours.
    calendar = Calendar("Europe/Berlin", days=frozenset({6}))
    sunday = datetime(2026, 3, 29, 0, tzinfo=BERLIN).astimezone(UTC)
    assert calendar.elapsed(sunday, sunday + timedelta(hours=30)) == timedelta(hours=23)
    # Office hours across the change keep their local opening time.
    office = Calendar("Europe/Berlin", time(9), time(17))
    saturday = local(2026, 3, 28, 16, zone=BERLIN)
    assert office.add(saturday, timedelta(hours=2)) == local(2026, 3, 29, 10, zone=BERLIN)
    assert local(2026, 3, 29, 10, zone=BERLIN).hour == 8  # UTC+2 after the change


def test_dst_fall_back_day_is_one_hour_longer() -> None:
    calendar = Calendar("Europe/Berlin", days=frozenset({6}))
    sunday = datetime(2026, 10, 25, 0, tzinfo=BERLIN).astimezone(UTC)
    assert calendar.elapsed(sunday, sunday + timedelta(hours=40)) == timedelta(hours=25)


def test_add_and_elapsed_agree() -> None:
    start = local(2026, 11, 26, 15, 30)
    for hours in (0.5, 3, 9, 20, 100):
        due = OFFICE.add(start, timedelta(hours=hours))
        assert OFFICE.elapsed(start, due) == timedelta(hours=hours)


def test_naive_datetimes_and_calendars_without_working_time_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        OFFICE.add(datetime(2026, 11, 23, 9), timedelta(hours=1))
    never = Calendar(days=frozenset())
    with pytest.raises(CalendarError):
        never.add(datetime(2026, 11, 23, 9, tzinfo=UTC), timedelta(hours=1))
