"""What `ticketd journal list` shows: every message received, and what became of it.

One row per journal entry (one received copy): where it came from, its envelope, its state and
what the state means: the ticket it is part of (`ticket`), the reason it was ignored (one of the
reasons of promise 3: bounce, auto-reply, loop, duplicate, blocked, or list/bulk when
`[classify]` says so), the error it was quarantined with, or why a person dismissed it from the
quarantine. `reason` is the worker's recorded detail, `step` the pipeline step that decided
(ingest/runner.py).
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.db import Database
from storage.models import (
    JOURNAL_DISMISSED,
    JOURNAL_DONE,
    JOURNAL_IGNORED,
    JOURNAL_PENDING,
    JOURNAL_QUARANTINED,
    JournalEntry,
    Ticket,
    TicketMessage,
)

STATES = (JOURNAL_PENDING, JOURNAL_DONE, JOURNAL_IGNORED, JOURNAL_QUARANTINED, JOURNAL_DISMISSED)
COLUMNS = ["id", "received_at", "source", "envelope_from", "state", "step", "ticket", "reason"]


def _tickets_of(db_session: Session, ids: list[int]) -> dict[int, str]:
    """The ticket each journal entry is recorded on (its message, or a note it caused)."""
    found: dict[int, str] = {}
    for start in range(0, len(ids), 500):  # bounded IN lists
        rows = db_session.execute(
            select(TicketMessage.journal_id, Ticket.ref)
            .join(Ticket, Ticket.id == TicketMessage.ticket_id)
            .where(TicketMessage.journal_id.in_(ids[start : start + 500]))
            .order_by(TicketMessage.id)
        )
        for journal_id, ref in rows:
            if journal_id is not None:
                found.setdefault(journal_id, ref)
    return found


# The worker's reason for an entry decided on a ticket: "ticket REF: note" (ingest/runner.py).
_DECIDED_ON = re.compile(r"ticket ([A-Z0-9][A-Z0-9-]{2,40}): ")


def _ticket_of(entry: JournalEntry, recorded: dict[int, str]) -> str | None:
    """The ticket its message is on, else the one its decision named: an agent's commands or
    a security event add no message of their own, and a quarantined entry none at all."""
    if entry.id in recorded:
        return recorded[entry.id]
    decided = _DECIDED_ON.match(entry.reason or "")
    return decided.group(1) if decided else None


def list_journal(
    db: Database, state: str | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    """Oldest first; with `limit`, the newest `limit` rows."""
    with db.read() as session:
        query = select(JournalEntry)
        if state is not None:
            query = query.where(JournalEntry.state == state)
        if limit is not None:
            query = query.order_by(JournalEntry.id.desc()).limit(limit)
        entries = sorted(session.scalars(query), key=lambda entry: entry.id)
        tickets = _tickets_of(session, [entry.id for entry in entries])
        return [
            {
                "id": entry.id,
                "received_at": entry.received_at.isoformat(),
                "source": entry.source,
                "envelope_from": entry.envelope_from,
                "envelope_to": list(entry.envelope_to or []),
                "size": entry.size,
                "state": entry.state,
                "ticket": _ticket_of(entry, tickets),
                "reason": entry.reason,
                "step": entry.step,
                "attempts": entry.attempts,
                "processed_at": entry.processed_at.isoformat() if entry.processed_at else None,
            }
            for entry in entries
        ]
