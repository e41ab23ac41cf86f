"""`ticketd health`: does something need a person? For monitoring (Nagios, a cron, a probe).

Every check reads the database only, so it answers the same whichever daemon (or none) runs, and
it judges states that last, not events: a journal that does not move, messages in quarantine, an
outbox that does not drain, deliveries that failed recently.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from storage.db import Database
from storage.models import (
    JOURNAL_PENDING,
    JOURNAL_QUARANTINED,
    OUTBOX_FAILED,
    OUTBOX_QUEUED,
    JournalEntry,
    OutboxMail,
)
from ticketd.clock import Clock


@dataclass(frozen=True)
class Thresholds:
    # A message pending longer than this means no worker is getting through the journal.
    journal_minutes: int = 15
    # Mail queued longer than this: the relay refuses or is unreachable (retries back off to 1 h).
    outbox_minutes: int = 60
    # Failed deliveries of mail queued within this window still need a look; retries give up
    # after 5 days, so the default window covers them.
    failed_hours: int = 7 * 24


@dataclass(frozen=True)
class Problem:
    check: str  # stuck_journal, quarantine, outbox_stuck, failed_deliveries, database
    reason: str


@dataclass(frozen=True)
class Report:
    problems: tuple[Problem, ...]
    facts: dict[str, Any]

    @property
    def healthy(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "problems": [asdict(p) for p in self.problems],
            **self.facts,
        }


def _age_minutes(now: datetime, then: datetime | None) -> float | None:
    return None if then is None else max((now - then).total_seconds() / 60, 0.0)


def check(db: Database, clock: Clock, limits: Thresholds | None = None) -> Report:
    limits = limits or Thresholds()
    now = clock.now()
    with db.read() as session:
        pending, pending_since = session.execute(
            select(func.count(JournalEntry.id), func.min(JournalEntry.received_at)).where(
                JournalEntry.state == JOURNAL_PENDING
            )
        ).one()
        quarantined = session.scalar(
            select(func.count(JournalEntry.id)).where(JournalEntry.state == JOURNAL_QUARANTINED)
        )
        queued, queued_since = session.execute(
            select(func.count(OutboxMail.id), func.min(OutboxMail.created_at)).where(
                OutboxMail.state == OUTBOX_QUEUED
            )
        ).one()
        failed = session.scalar(
            select(func.count(OutboxMail.id)).where(
                OutboxMail.state == OUTBOX_FAILED,
                OutboxMail.created_at >= now - timedelta(hours=limits.failed_hours),
            )
        )
    # min() over a TypeDecorator column comes back raw on SQLite: a naive UTC datetime or text.
    oldest_pending = _as_utc(pending_since)
    oldest_queued = _as_utc(queued_since)
    problems: list[Problem] = []
    journal_age = _age_minutes(now, oldest_pending)
    if journal_age is not None and journal_age > limits.journal_minutes:
        problems.append(
            Problem(
                "stuck_journal",
                f"{pending} message(s) pending, the oldest for {journal_age:.0f} min "
                f"(limit {limits.journal_minutes}): is the daemon running and the database "
                "writable?",
            )
        )
    if quarantined:
        problems.append(
            Problem(
                "quarantine",
                f"{quarantined} message(s) quarantined: see `ticketd quarantine list`, "
                "then `ticketd quarantine retry ID` after a fix",
            )
        )
    outbox_age = _age_minutes(now, oldest_queued)
    if outbox_age is not None and outbox_age > limits.outbox_minutes:
        problems.append(
            Problem(
                "outbox_stuck",
                f"{queued} mail(s) waiting, the oldest for {outbox_age:.0f} min "
                f"(limit {limits.outbox_minutes}): `ticketd outbox list` shows the relay's answer",
            )
        )
    if failed:
        problems.append(
            Problem(
                "failed_deliveries",
                f"{failed} mail(s) could not be delivered in the last {limits.failed_hours} h: "
                "see `ticketd outbox list`",
            )
        )
    facts = {
        "journal_pending": int(pending),
        "journal_oldest_pending_minutes": journal_age,
        "quarantined": int(quarantined or 0),
        "outbox_queued": int(queued),
        "outbox_oldest_queued_minutes": outbox_age,
        "outbox_failed_recently": int(failed or 0),
    }
    return Report(tuple(problems), facts)


def _as_utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def database_problem(error: Exception) -> Report:
    return Report((Problem("database", f"cannot read the database: {error}"),), {})
