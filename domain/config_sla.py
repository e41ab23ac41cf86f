"""The `[sla]` section: what the desk promises, per category and priority, and its calendar.

Defaults follow the promises such desks make: a first answer within 48 hours, the next answer
within 48 hours of a customer's message, resolution within 14 days (7 for complaints), identity
documents (kyc) looked at within 24 hours. Overrides merge key by key: defaults, then the
category's table, then the priority's (a high-priority complaint takes the priority's values
where both set one). Declared as tables (domain/config_schema.py): `SlaTable` and the tables
inside it, `[sla.categories.NAME]`, `[sla.priorities.NAME]` and `[sla.calendar]`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date, time, timedelta
from pathlib import Path
from typing import Annotated, Any

from domain.config_kinds import (
    Custom,
    Flag,
    Invalid,
    ListOf,
    Number,
    OneOf,
    Whole,
    Zone,
    date_value,
    toml_value,
)
from domain.config_schema import Table, key
from domain.config_team import CATEGORIES
from domain.sla_calendar import ALL_DAYS, Calendar

PRIORITIES = ("high", "normal", "low")
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")


@dataclass(frozen=True)
class SlaPolicy:
    """Business hours per target; None: no deadline of that kind."""

    first_answer_hours: float | None = 48
    next_answer_hours: float | None = 48
    resolution_hours: float | None = 14 * 24

    def span(self, target: str) -> timedelta | None:
        hours: float | None = getattr(self, f"{target}_hours")
        return None if hours is None else timedelta(hours=hours)


DEFAULT_CATEGORY_POLICIES: dict[str, dict[str, float | None]] = {
    "kyc": {"first_answer_hours": 24},
    "complaint": {"resolution_hours": 7 * 24},
}


@dataclass(frozen=True)
class SlaConfig:
    enabled: bool = True
    default: SlaPolicy = field(default_factory=SlaPolicy)
    categories: dict[str, dict[str, float | None]] = field(
        default_factory=lambda: {k: dict(v) for k, v in DEFAULT_CATEGORY_POLICIES.items()}
    )
    priorities: dict[str, dict[str, float | None]] = field(default_factory=dict)
    # Fractions of a deadline's span at which the assignee (or the queue) is reminded.
    reminders: tuple[float, ...] = (0.75,)
    # "Still working on it" to the customer after this much waiting on our side; opt-in per
    # category, since some desks would rather answer than apologise.
    followup_hours: float = 72
    followup_categories: tuple[str, ...] = ()
    # A ticket left waiting for the customer this long (wall time) is closed, with a reminder
    # to the customer half-way; None: never.
    auto_close_hours: float | None = None
    # The satisfaction survey to the customer after a close, this long after it (wall time).
    survey: bool = True
    survey_delay_hours: float = 0
    # The local hour (calendar time zone) from which each queue's daily digest goes out.
    digest_hour: int = 8
    calendar: Calendar = field(default_factory=Calendar)

    def policy_for(self, category: str, priority: str) -> SlaPolicy:
        policy = self.default
        for override in (self.categories.get(category, {}), self.priorities.get(priority, {})):
            policy = replace(policy, **override)
        return policy


_TARGET = Number("a number of hours, 0 or more")


class SlaTargetsTable(Table):
    """The deadlines of one kind: business hours; 0 switches a target off (no deadline)."""

    first_answer_hours: Annotated[float | None, _TARGET] = key(
        None, live=True, shown="the one above", doc="the first answer to a new ticket"
    )
    next_answer_hours: Annotated[float | None, _TARGET] = key(
        None, live=True, shown="the one above", doc="the next answer after a customer's message"
    )
    resolution_hours: Annotated[float | None, _TARGET] = key(
        None, live=True, shown="the one above", doc="the ticket resolved"
    )

    def overrides(self) -> dict[str, float | None]:
        return _overrides(self)


_TARGETS = tuple(SlaTargetsTable.model_fields)


def _overrides(table: Table) -> dict[str, float | None]:
    """The targets a table sets; 0 is None (no deadline)."""
    values = {name: getattr(table, name) for name in _TARGETS}
    return {name: value or None for name, value in values.items() if value is not None}


_NOT_A_CATEGORY = f"name (not one of {', '.join(CATEGORIES)})"


class SlaCategoriesTable(Table):
    unknown = _NOT_A_CATEGORY
    account: SlaTargetsTable | None = key(None, live=True)
    payment: SlaTargetsTable | None = key(None, live=True)
    bonus: SlaTargetsTable | None = key(None, live=True)
    technical: SlaTargetsTable | None = key(None, live=True)
    kyc: SlaTargetsTable | None = key(None, live=True)
    complaint: SlaTargetsTable | None = key(None, live=True)
    other: SlaTargetsTable | None = key(None, live=True)


class SlaPrioritiesTable(Table):
    unknown = f"name (not one of {', '.join(PRIORITIES)})"
    high: SlaTargetsTable | None = key(None, live=True)
    normal: SlaTargetsTable | None = key(None, live=True)
    low: SlaTargetsTable | None = key(None, live=True)


def _business_hours(value: Any, base: Path) -> tuple[time, time | None]:
    match = _HOURS.match(value) if isinstance(value, str) else None
    try:
        if match is None:
            raise ValueError("not two times")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        start = time(h1, m1)
        end = None if (h2, m2) == (24, 0) else time(h2, m2)
        if end is not None and end <= start:
            raise ValueError("the end is not after the start")
    except ValueError as error:
        raise Invalid(f"{toml_value(value)} is not HH:MM-HH:MM ({error})") from None
    return start, end


def _days(value: Any, base: Path) -> frozenset[int]:
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(d, str) and d.lower()[:3] in DAY_NAMES for d in value)
    ):
        raise Invalid(f"must be a non-empty list of {DAY_NAMES}")
    return frozenset(DAY_NAMES.index(d.lower()[:3]) for d in value)


class SlaCalendarTable(Table):
    timezone: Annotated[str, Zone()] = key("UTC", live=True, doc="the zone of the hours")
    hours: Annotated[tuple[time, time | None] | None, Custom("HH:MM-HH:MM", _business_hours)] = key(
        None, live=True, shown="around the clock", doc="business hours, 24:00 for midnight"
    )
    days: Annotated[frozenset[int] | None, Custom("a list of mon..sun", _days)] = key(
        None, live=True, shown="every day", doc="business days"
    )
    holidays: Annotated[
        tuple[date, ...], ListOf(Custom("a date", date_value), "dates", indexed=True)
    ] = key((), live=True, doc="dates (2026-10-29) that are no business days")

    def calendar(self) -> Calendar:
        start, end = self.hours or (time(0), None)
        days = ALL_DAYS if self.days is None else self.days
        return Calendar(self.timezone, start, end, days, frozenset(self.holidays))


def _fraction(value: Any, base: Path) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise Invalid("must be a fraction between 0 and 1", generic=True)
    return float(value)


class SlaTable(Table):
    first_answer_hours: Annotated[float | None, _TARGET] = key(
        None,
        live=True,
        record="sla.default.first_answer_hours",
        shown="48",
        doc="business hours to the first answer (0: no deadline)",
    )
    next_answer_hours: Annotated[float | None, _TARGET] = key(
        None,
        live=True,
        record="sla.default.next_answer_hours",
        shown="48",
        doc="to the next answer after a customer's message",
    )
    resolution_hours: Annotated[float | None, _TARGET] = key(
        None,
        live=True,
        record="sla.default.resolution_hours",
        shown="336",
        doc="to the ticket resolved",
    )
    enabled: Annotated[bool, Flag()] = key(True, doc="the SLA clock runs")
    reminders: Annotated[
        tuple[float, ...], ListOf(Custom("a fraction", _fraction), "fractions between 0 and 1")
    ] = key((0.75,), live=True, doc="fractions of a deadline's span at which people are reminded")
    categories: SlaCategoriesTable = key(
        SlaCategoriesTable(),
        live=True,
        doc="a category's targets over [sla]'s (built in: kyc 24 h to the first answer, "
        "complaint 168 h to resolution)",
    )
    priorities: SlaPrioritiesTable = key(
        SlaPrioritiesTable(), live=True, doc="a priority's targets over the category's"
    )
    calendar: SlaCalendarTable = key(SlaCalendarTable(), live=True, doc="business hours")
    followup_hours: Annotated[float, Number("a number of hours above 0", above=True)] = key(
        72, live=True, doc="'still working on it' after this much waiting on our side"
    )
    followup_categories: Annotated[
        tuple[str, ...], ListOf(OneOf(CATEGORIES), ", ".join(CATEGORIES))
    ] = key((), live=True, doc="the categories that get that follow-up")
    auto_close_hours: Annotated[float, Number("a number of hours, 0 (never) or more")] = key(
        0, live=True, doc="a ticket waiting for the customer this long is closed (0: never)"
    )
    survey: Annotated[bool, Flag()] = key(True, live=True, doc="the survey after a close")
    survey_delay_hours: Annotated[float, Number("a number of hours, 0 or more")] = key(
        0, live=True, doc="how long after the close"
    )
    digest_hour: Annotated[int, Whole(0, 23, "an hour from 0 to 23")] = key(
        8, live=True, doc="the local hour of each queue's daily digest"
    )


def build_sla(table: SlaTable) -> SlaConfig:
    categories: dict[str, dict[str, float | None]] = {
        k: dict(v) for k, v in DEFAULT_CATEGORY_POLICIES.items()
    }
    for name, targets in dict(table.categories).items():
        if targets is not None:
            categories[name] = {**categories.get(name, {}), **targets.overrides()}
    priorities = {
        name: targets.overrides()
        for name, targets in dict(table.priorities).items()
        if targets is not None
    }
    return SlaConfig(
        enabled=table.enabled,
        default=replace(SlaPolicy(), **_overrides(table)),
        categories=categories,
        priorities=priorities,
        reminders=tuple(sorted(set(table.reminders))),
        followup_hours=table.followup_hours,
        followup_categories=table.followup_categories,
        auto_close_hours=table.auto_close_hours or None,
        survey=table.survey,
        survey_delay_hours=table.survey_delay_hours,
        digest_hour=table.digest_hour,
        calendar=table.calendar.calendar(),
    )
