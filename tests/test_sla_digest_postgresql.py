"""Two daemons on one PostgreSQL database send a queue's daily digest once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import psycopg
import pytest
from sqlalchemy import select

from domain.clock import FixedClock
from outbound.sla import SlaAction
from outbound.sla_digest import send_digests
from storage.models import OutboxMail
from tests.test_sla_postgresql import pg_desk  # noqa: F401  # the fixture
from ticketd.state import State

pytestmark = pytest.mark.postgresql


def test_a_digest_another_daemon_is_claiming_is_not_sent_again(
    pg_desk: State,  # noqa: F811
    clock: FixedClock,
) -> None:
    clock.current = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)  # every ticket is at risk
    conninfo = pg_desk.config.storage.database.replace("postgresql+psycopg://", "postgresql://")
    results: list[list[SlaAction]] = []
    with psycopg.connect(conninfo) as holder:
        # The other daemon's tick has claimed today's digest and not committed yet.
        holder.execute(
            "INSERT INTO sla_digests (queue, day, sent_at, outcome)"
            " VALUES ('odeme', '2026-11-25', now(), 'sent')"
        )
        worker = threading.Thread(
            target=lambda: results.append(
                send_digests(pg_desk.db, pg_desk.config, clock, pg_desk.templates)
            )
        )
        worker.start()
        worker.join(timeout=1)
        assert worker.is_alive()  # our insert waits for the other transaction's outcome
        holder.commit()
    worker.join(timeout=30)
    assert results == [[]]  # the unique key said: taken; only that savepoint rolled back
    with pg_desk.db.read() as session:
        assert (
            session.scalars(select(OutboxMail).where(OutboxMail.kind == "sla-digest")).all() == []
        )
    assert send_digests(pg_desk.db, pg_desk.config, clock, pg_desk.templates) == []
