"""The `[retention]` section (issue 16): how long copies of what customers sent are kept.

- `raw_days` (default 30, at least 1): a message's raw bytes, and the outbox's bytes of mail
  sent or given up, are kept this long after processing, then keep only their text;
- `ticket_days` (optional, at least 1): a ticket closed this long loses its messages' text and
  every raw copy; its record (reference, category, queue, times, score) stays.

Declared as a `Table` (domain/config_schema.py), read into a frozen record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from domain.config_kinds import Count
from domain.config_schema import Table, key

DEFAULT_RAW_DAYS = 30
_DAYS = Count(1, "a whole number of days, at least 1")


@dataclass(frozen=True)
class RetentionConfig:
    raw_days: int = DEFAULT_RAW_DAYS
    ticket_days: int | None = None


class RetentionTable(Table):
    raw_days: Annotated[int, _DAYS] = key(
        DEFAULT_RAW_DAYS, doc="raw mail and outbox bytes keep only their text after this"
    )
    ticket_days: Annotated[int | None, _DAYS] = key(
        None, doc="a closed ticket's text and raw copies go this long after its last change"
    )


def build_retention(table: RetentionTable | None) -> RetentionConfig:
    return RetentionConfig(**dict(table)) if table is not None else RetentionConfig()
