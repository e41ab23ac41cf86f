"""Journal rows for the worker's tests (tests/test_parse_ahead.py, tests/test_worker_runs.py):
customer requests accepted, and what each row says afterwards."""

from __future__ import annotations

from sqlalchemy import select

from ingest.journal import Arrival
from storage.models import JournalEntry
from tests.helpers import customer_mail
from ticketd.state import State


def accept_requests(state: State, count: int) -> list[int]:
    """`count` Turkish customer requests from different customers, journaled; their ids."""
    return [
        state.journal.accept(
            Arrival(
                raw=customer_mail(
                    sender=f"Müşteri {n} <musteri{n}@example.com.tr>",
                    subject=f"Talep {n}",
                    body=f"Hesabım {n} kilitlendi, yardım eder misiniz?",
                ),
                source="test",
            )
        )
        for n in range(count)
    ]


def journal_rows(state: State) -> dict[int, tuple[str, int, str | None]]:
    """Each journal row's state, attempts and reason, by id."""
    with state.db.read() as session:
        rows = session.execute(
            select(JournalEntry.id, JournalEntry.state, JournalEntry.attempts, JournalEntry.reason)
        )
        return {row.id: (row.state, row.attempts, row.reason) for row in rows}
