"""Two SLA ticks on one PostgreSQL database send each reminder once (FOR UPDATE SKIP LOCKED)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import select

import outbound.sla
from domain.clock import FixedClock
from outbound.sla import SlaAction, tick
from storage.db import Database
from storage.models import OutboxMail, SlaEvent, Ticket
from tests.helpers import customer_mail, make_config, second_database
from tests.test_sla import TEAM
from tests.test_threading import deliver
from ticketd.state import State, open_state

pytestmark = pytest.mark.postgresql
TICKETS = 40


@pytest.fixture
def pg_desk(tmp_path: Path, pg_database: str, clock: FixedClock) -> Iterator[State]:
    opened = open_state(make_config(tmp_path, database=pg_database, extra=TEAM), clock=clock)
    for number in range(TICKETS):
        sender = f"musteri{number}@example.net"
        result = deliver(opened, customer_mail(sender=sender, body="Para çekme talebim"))
        assert result.state == "done", result.detail
    clock.advance(timedelta(hours=40))  # every first-answer reminder is due
    yield opened
    opened.close()


def _reminders_per_ticket(db: Database) -> Counter[int | None]:
    with db.read() as session:
        return Counter(
            session.scalars(
                select(OutboxMail.ticket_id).where(OutboxMail.kind == "sla-reminder")
            ).all()
        )


def test_two_ticks_at_once_send_each_reminder_once(
    pg_desk: State, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbound.sla, "BATCH", 3)  # many small batches: the ticks interleave
    start = threading.Barrier(2)
    results: list[list[SlaAction]] = []
    errors: list[BaseException] = []

    def one_daemon() -> None:
        db = second_database(pg_desk.config)  # its own engine, as a second daemon
        try:
            start.wait()
            results.append(tick(db, pg_desk.config, pg_desk.clock, pg_desk.templates))
        except BaseException as error:
            errors.append(error)
        finally:
            db.dispose()

    threads = [threading.Thread(target=one_daemon) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert sum(len(r) for r in results) == TICKETS
    per_ticket = _reminders_per_ticket(pg_desk.db)
    assert len(per_ticket) == TICKETS
    assert set(per_ticket.values()) == {1}


def test_a_row_another_tick_holds_is_skipped_not_waited_for(pg_desk: State) -> None:
    conninfo = pg_desk.config.storage.database.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo) as holder:
        # Another daemon's tick, in the middle of its transaction, holds one due row.
        holder.execute(
            "SELECT id FROM sla_events WHERE sent_at IS NULL ORDER BY due_at, id LIMIT 1 FOR UPDATE"
        )
        first = tick(pg_desk.db, pg_desk.config, pg_desk.clock, pg_desk.templates)
        assert len(first) == TICKETS - 1
        holder.rollback()
    second = tick(pg_desk.db, pg_desk.config, pg_desk.clock, pg_desk.templates)
    assert len(second) == 1
    assert set(_reminders_per_ticket(pg_desk.db).values()) == {1}
    with pg_desk.db.read() as session:
        assert session.scalar(select(SlaEvent).where(SlaEvent.sent_at.is_(None))) is not None
        assert len(session.scalars(select(Ticket)).all()) == TICKETS
