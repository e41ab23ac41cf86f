"""Deadline arithmetic in business time: a pure function of the calendar and two instants.

A calendar is around the clock by default. With business hours, working days, a time zone and
holidays, only the time inside the day's window counts: 2 business hours asked at 17:00 on a
Friday of a 09:00-18:00 week end at 10:00 on Monday. Windows are built in local time and then
converted to UTC, so a DST change shortens or lengthens the local day the way a clock on the
wall does (a 02:00-04:00 window on the spring-forward night holds one hour, not two).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from domain.errors import Permanent

ALL_DAYS = frozenset(range(7))  # date.weekday(): Monday is 0
# Far enough for any sane policy; a calendar whose holidays cover years is a configuration bug,
# and a loop without a bound would hang the tick.
_MAX_DAYS = 3 * 366


class CalendarError(Permanent, ValueError):
    """The calendar has no working time within _MAX_DAYS of the instant asked about."""


@dataclass(frozen=True)
class Calendar:
    timezone: str = "UTC"
    start: time = time(0)
    end: time | None = None  # None: midnight at the end of the day (a whole day)
    days: frozenset[int] = ALL_DAYS
    holidays: frozenset[date] = field(default_factory=frozenset)

    @property
    def around_the_clock(self) -> bool:
        return (
            self.start == time(0)
            and self.end is None
            and self.days == ALL_DAYS
            and not self.holidays
        )

    def _window(self, day: date) -> tuple[datetime, datetime] | None:
        """The working window of a local date in UTC, or None on a day off."""
        if day.weekday() not in self.days or day in self.holidays:
            return None
        zone = ZoneInfo(self.timezone)
        opens = datetime.combine(day, self.start, tzinfo=zone)
        closes = (
            datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
            if self.end is None
            else datetime.combine(day, self.end, tzinfo=zone)
        )
        return opens.astimezone(UTC), closes.astimezone(UTC)

    def _windows(self, since: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Working windows that end after `since`, in order, clipped to start at `since`."""
        day = since.astimezone(ZoneInfo(self.timezone)).date() - timedelta(days=1)
        for offset in range(_MAX_DAYS):
            window = self._window(day + timedelta(days=offset))
            if window is None or window[1] <= since:
                continue
            yield max(window[0], since), window[1]
        raise CalendarError(f"no working time within {_MAX_DAYS} days of {since.isoformat()}")

    def add(self, start: datetime, business: timedelta) -> datetime:
        """The instant when `business` working time has passed since `start`."""
        _aware(start)
        if self.around_the_clock:
            return start + business
        remaining = business
        for opens, closes in self._windows(start):
            if remaining <= closes - opens:
                return opens + remaining
            remaining -= closes - opens
        raise AssertionError("unreachable: _windows raises when it runs out")  # pragma: no cover

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        """Working time between two instants; zero when `end` is not after `start`."""
        _aware(start)
        _aware(end)
        if end <= start:
            return timedelta(0)
        if self.around_the_clock:
            return end - start
        total = timedelta(0)
        for opens, closes in self._windows(start):
            if opens >= end:
                break
            total += min(closes, end) - opens
        return total

    def is_open(self, instant: datetime) -> bool:
        """Working time now: reminders wait for it (nobody is nudged at night)."""
        _aware(instant)
        if self.around_the_clock:
            return True
        opens, _closes = next(self._windows(instant))
        return opens <= instant


def _aware(instant: datetime) -> None:
    if instant.tzinfo is None:
        raise ValueError("naive datetime: the SLA calendar works on aware instants only")
