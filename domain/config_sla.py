"""The `[sla]` section: what the desk promises, per category and priority, and its calendar.

Defaults follow the promises such desks make: a first answer within 48 hours, the next answer
within 48 hours of a customer's message, resolution within 14 days (7 for complaints), identity
documents (kyc) looked at within 24 hours. Overrides merge key by key: defaults, then the
category's table, then the priority's (a high-priority complaint takes the priority's values
where both set one). Problems are appended to the caller's list as (key, reason).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from domain.config_keys import check_keys, one_list
from domain.config_team import CATEGORIES
from domain.sla_calendar import Calendar

Problems = list[tuple[str, str]]
PRIORITIES = ("high", "normal", "low")
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TARGETS = ("first_answer_hours", "next_answer_hours", "resolution_hours")
_OTHER_KEYS = (
    "enabled",
    "reminders",
    "categories",
    "priorities",
    "calendar",
    "followup_hours",
    "followup_categories",
    "auto_close_hours",
    "survey",
    "survey_delay_hours",
    "digest_hour",
)
CALENDAR_KEYS = ("timezone", "hours", "days", "holidays")
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


def _hours(problems: Problems, table: dict[str, Any], at: str) -> dict[str, float | None]:
    """The *_hours keys of one table; 0 switches a target off (no deadline)."""
    found: dict[str, float | None] = {}
    for key, value in table.items():
        if key not in _TARGETS:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            problems.append((f"{at}.{key}", "must be a number of hours, 0 or more"))
            continue
        found[key] = float(value) if value else None
    return found


def _overrides(
    problems: Problems, raw: Any, at: str, allowed: tuple[str, ...]
) -> dict[str, dict[str, float | None]]:
    if not isinstance(raw, dict):
        problems.append((at, "must be a table of tables"))
        return {}
    result: dict[str, dict[str, float | None]] = {}
    check_keys(problems, raw, at, allowed, f"name (not one of {', '.join(allowed)})")
    for name, table in raw.items():
        if name not in allowed:
            continue
        if not isinstance(table, dict):
            problems.append((f"{at}.{name}", "must be a table"))
        else:
            check_keys(problems, table, f"{at}.{name}", _TARGETS)
            result[name] = _hours(problems, table, f"{at}.{name}")
    return result


def _calendar(problems: Problems, raw: Any) -> Calendar:
    if not isinstance(raw, dict):
        problems.append(("sla.calendar", "must be a table"))
        return Calendar()
    check_keys(problems, raw, "sla.calendar", CALENDAR_KEYS)
    calendar = Calendar()
    zone = raw.get("timezone", "UTC")
    try:
        ZoneInfo(zone)
        calendar = replace(calendar, timezone=zone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        problems.append(("sla.calendar.timezone", f"{zone!r} is not a known time zone"))
    hours = raw.get("hours")
    if hours is not None:
        match = _HOURS.match(hours) if isinstance(hours, str) else None
        try:
            assert match is not None
            h1, m1, h2, m2 = (int(g) for g in match.groups())
            start = time(h1, m1)
            end = None if (h2, m2) == (24, 0) else time(h2, m2)
            if end is not None and end <= start:
                raise ValueError("the end is not after the start")
            calendar = replace(calendar, start=start, end=end)
        except (AssertionError, ValueError) as error:
            problems.append(("sla.calendar.hours", f"{hours!r} is not HH:MM-HH:MM ({error})"))
    days = raw.get("days")
    if days is not None:
        if (
            not isinstance(days, list)
            or not days
            or not all(isinstance(d, str) and d.lower()[:3] in DAY_NAMES for d in days)
        ):
            problems.append(("sla.calendar.days", f"must be a non-empty list of {DAY_NAMES}"))
        else:
            calendar = replace(
                calendar, days=frozenset(DAY_NAMES.index(d.lower()[:3]) for d in days)
            )
    holidays: set[date] = set()
    listed = one_list(problems, raw.get("holidays", []), "sla.calendar.holidays", "dates")
    for index, value in enumerate(listed):
        try:
            # TOML has a date type; a quoted "2026-01-01" is accepted too.
            holidays.add(value if isinstance(value, date) else date.fromisoformat(value))
        except (TypeError, ValueError):
            problems.append((f"sla.calendar.holidays[{index}]", f"{value!r} is not a date"))
    return replace(calendar, holidays=frozenset(holidays))


def _strings(problems: Problems, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(v in CATEGORIES for v in value):
        problems.append(("sla.followup_categories", f"must be a list of {', '.join(CATEGORIES)}"))
        return ()
    return tuple(value)


def _survey_and_digest(problems: Problems, raw: dict[str, Any]) -> tuple[bool, float, int]:
    survey = raw.get("survey", True)
    if not isinstance(survey, bool):
        problems.append(("sla.survey", "must be true or false"))
        survey = True
    delay = raw.get("survey_delay_hours", 0)
    if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
        problems.append(("sla.survey_delay_hours", "must be a number of hours, 0 or more"))
        delay = 0
    hour = raw.get("digest_hour", 8)
    if isinstance(hour, bool) or not isinstance(hour, int) or not 0 <= hour <= 23:
        problems.append(("sla.digest_hour", "must be an hour from 0 to 23"))
        hour = 8
    return survey, float(delay), hour


def parse_sla(problems: Problems, data: dict[str, Any]) -> SlaConfig:
    raw = data.get("sla", {})
    if not isinstance(raw, dict):
        problems.append(("sla", "must be a table ([sla])"))
        return SlaConfig()
    check_keys(problems, raw, "sla", (*_TARGETS, *_OTHER_KEYS))
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        problems.append(("sla.enabled", "must be true or false"))
        enabled = True
    default = replace(SlaPolicy(), **_hours(problems, raw, "sla"))
    categories: dict[str, dict[str, float | None]] = {
        k: dict(v) for k, v in DEFAULT_CATEGORY_POLICIES.items()
    }
    for name, table in _overrides(
        problems, raw.get("categories", {}), "sla.categories", CATEGORIES
    ).items():
        categories[name] = {**categories.get(name, {}), **table}
    priorities = _overrides(problems, raw.get("priorities", {}), "sla.priorities", PRIORITIES)
    reminders_raw = raw.get("reminders", [0.75])
    reminders: tuple[float, ...] = (0.75,)
    if not isinstance(reminders_raw, list) or not all(
        not isinstance(r, bool) and isinstance(r, int | float) and 0 < r < 1 for r in reminders_raw
    ):
        problems.append(("sla.reminders", "must be a list of fractions between 0 and 1"))
    else:
        reminders = tuple(sorted(set(float(r) for r in reminders_raw)))
    followup = raw.get("followup_hours", 72)
    if isinstance(followup, bool) or not isinstance(followup, int | float) or followup <= 0:
        problems.append(("sla.followup_hours", "must be a number of hours above 0"))
        followup = 72
    followup_categories = _strings(problems, raw.get("followup_categories", []))
    auto_close = raw.get("auto_close_hours", 0)
    if isinstance(auto_close, bool) or not isinstance(auto_close, int | float) or auto_close < 0:
        problems.append(("sla.auto_close_hours", "must be a number of hours, 0 (never) or more"))
        auto_close = 0
    survey, survey_delay, digest_hour = _survey_and_digest(problems, raw)
    return SlaConfig(
        enabled=enabled,
        default=default,
        categories=categories,
        priorities=priorities,
        reminders=reminders,
        followup_hours=float(followup),
        followup_categories=followup_categories,
        auto_close_hours=float(auto_close) or None,
        survey=survey,
        survey_delay_hours=survey_delay,
        digest_hour=digest_hour,
        calendar=_calendar(problems, raw.get("calendar", {})),
    )
