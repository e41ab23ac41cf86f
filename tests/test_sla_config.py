"""`[sla]`: defaults that follow the desk's promises, overrides, the calendar, named errors."""

from __future__ import annotations

from datetime import date, time, timedelta
from pathlib import Path

import pytest

from domain.config import ConfigError
from tests.helpers import make_config


def test_defaults_follow_the_promises(tmp_path: Path) -> None:
    sla = make_config(tmp_path).sla
    other = sla.policy_for("payment", "normal")
    assert other.span("first_answer") == timedelta(hours=48)
    assert other.span("next_answer") == timedelta(hours=48)
    assert other.span("resolution") == timedelta(days=14)
    assert sla.policy_for("complaint", "normal").span("resolution") == timedelta(days=7)
    assert sla.policy_for("kyc", "normal").span("first_answer") == timedelta(hours=24)
    assert sla.reminders == (0.75,)
    assert sla.calendar.around_the_clock


def test_overrides_and_calendar(tmp_path: Path) -> None:
    sla = make_config(
        tmp_path,
        extra="""
[sla]
first_answer_hours = 72
reminders = [0.5, 0.9]
[sla.categories.complaint]
first_answer_hours = 72
resolution_hours = 240
[sla.categories.bonus]
resolution_hours = 0
[sla.priorities.high]
first_answer_hours = 4
[sla.calendar]
timezone = "Europe/Istanbul"
hours = "09:00-18:00"
days = ["mon", "tue", "wed", "thu", "fri"]
holidays = [2026-10-29, "2027-01-01"]
""",
    ).sla
    assert sla.policy_for("payment", "normal").span("first_answer") == timedelta(hours=72)
    assert sla.policy_for("complaint", "normal").span("resolution") == timedelta(hours=240)
    assert sla.policy_for("complaint", "high").span("first_answer") == timedelta(hours=4)
    assert sla.policy_for("kyc", "normal").span("first_answer") == timedelta(hours=24)
    assert sla.policy_for("bonus", "normal").span("resolution") is None
    assert sla.reminders == (0.5, 0.9)
    calendar = sla.calendar
    assert (calendar.timezone, calendar.start, calendar.end) == (
        "Europe/Istanbul",
        time(9),
        time(18),
    )
    assert calendar.days == frozenset(range(5))
    assert calendar.holidays == {date(2026, 10, 29), date(2027, 1, 1)}


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ("[sla]\nfirst_answer_hours = 'soon'\n", "sla.first_answer_hours"),
        ("[sla]\nreminders = [1.5]\n", "sla.reminders"),
        ("[sla]\nwhenever = 1\n", "sla.whenever"),
        ("[sla]\nfollowup_categories = ['vip']\n", "sla.followup_categories"),
        ("[sla]\nfollowup_hours = 0\n", "sla.followup_hours"),
        ("[sla]\nauto_close_hours = -1\n", "sla.auto_close_hours"),
        ("[sla.categories.vip]\nresolution_hours = 1\n", "sla.categories.vip"),
        ("[sla.priorities.high]\nfirst_answer = 1\n", "sla.priorities.high.first_answer"),
        ("[sla.calendar]\ntimezone = 'Mars/Olympus'\n", "sla.calendar.timezone"),
        ("[sla.calendar]\nhours = '18:00-09:00'\n", "sla.calendar.hours"),
        ("[sla.calendar]\nhours = 'nine to five'\n", "sla.calendar.hours"),
        ("[sla.calendar]\ndays = ['someday']\n", "sla.calendar.days"),
        ("[sla.calendar]\nholidays = ['tomorrow']\n", "sla.calendar.holidays[0]"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, extra: str, key: str) -> None:
    with pytest.raises(ConfigError) as error:
        make_config(tmp_path, extra=extra)
    assert key in dict(error.value.problems), error.value.problems
