"""The `[retention]` section (issue 16): how long copies of what customers sent are kept.

- `raw_days` (default 30, at least 1): a message's raw bytes, and the outbox's bytes of mail
  sent or given up, are kept this long after processing, then keep only their text;
- `ticket_days` (optional, at least 1): a ticket closed this long loses its messages' text and
  every raw copy; its record (reference, category, queue, times, score) stays.

Parsed into a frozen record; every problem is appended to the caller's list as (key, reason).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from domain.config_keys import check_keys

Problems = list[tuple[str, str]]
RETENTION_KEYS = ("raw_days", "ticket_days")
DEFAULT_RAW_DAYS = 30


@dataclass(frozen=True)
class RetentionConfig:
    raw_days: int = DEFAULT_RAW_DAYS
    ticket_days: int | None = None


def _days(problems: Problems, table: dict[str, Any], name: str) -> int | None:
    value = table.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        problems.append((f"retention.{name}", "must be a whole number of days, at least 1"))
        return None
    return value


def parse_retention(problems: Problems, data: dict[str, Any]) -> RetentionConfig:
    table = data.get("retention", {})
    if not isinstance(table, dict):
        problems.append(("retention", "must be a table ([retention])"))
        return RetentionConfig()
    check_keys(problems, table, "retention", RETENTION_KEYS)
    raw_days = _days(problems, table, "raw_days")
    return RetentionConfig(
        raw_days=DEFAULT_RAW_DAYS if raw_days is None else raw_days,
        ticket_days=_days(problems, table, "ticket_days"),
    )
