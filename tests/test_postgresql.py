"""The PostgreSQL suite: the same code as on SQLite, against a real server (tests/pg.py).

Past one machine, several daemons share one database: workers and senders claim rows with
FOR UPDATE SKIP LOCKED, so each journal row is processed once and each mail delivered once.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import TypeVar

import psycopg
import pytest
from sqlalchemy import func, inspect, select, text
from sqlalchemy.exc import StatementError
from sqlalchemy.sql import ColumnElement

from domain.clock import FixedClock
from ingest.journal import Arrival
from ingest.parsing import parse_message
from ingest.worker import Processed, Worker
from outbound.sender import DeliveryResult, Sender
from outbound.transports import OutgoingMail
from storage.db import Database
from storage.migrate import is_current
from storage.models import (
    JOURNAL_DONE,
    JOURNAL_IGNORED,
    JOURNAL_PENDING,
    OUTBOX_QUEUED,
    OUTBOX_SENT,
    Base,
    JournalEntry,
    OutboxMail,
    Ticket,
    TicketMessage,
)
from tests.helpers import customer_mail, make_config, second_database, write_config
from ticketd.cli import main
from ticketd.state import State, open_state

pytestmark = pytest.mark.postgresql

T = TypeVar("T")

TABLES = {"journal", "tickets", "participants", "messages", "outbox", "alembic_version"}


@pytest.fixture
def pg_state(tmp_path: Path, pg_database: str, clock: FixedClock) -> Iterator[State]:
    """ticketd's state on a fresh PostgreSQL database, schema applied by open_state."""
    opened = open_state(make_config(tmp_path, database=pg_database), clock=clock)
    yield opened
    opened.close()


def _count(db: Database, model: type[Base], *where: ColumnElement[bool]) -> int:
    with db.transaction() as session:
        query = select(func.count()).select_from(model)
        for condition in where:
            query = query.where(condition)
        return int(session.scalar(query) or 0)


def _journal(db: Database) -> list[JournalEntry]:
    with db.transaction() as session:
        return list(session.scalars(select(JournalEntry).order_by(JournalEntry.id)))


def _in_thread(target: Callable[[], T]) -> tuple[threading.Thread, list[T], list[BaseException]]:
    """Run `target` in a thread; its result or error lands in the returned lists."""
    results: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(target())
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, results, errors


def _wait_for_lock_wait(conninfo_url: str, timeout: float = 10.0) -> None:
    """Until some backend of the database waits for a lock another transaction holds."""
    conninfo = conninfo_url.replace("postgresql+psycopg://", "postgresql://", 1)
    deadline = time.monotonic() + timeout
    with psycopg.connect(conninfo, autocommit=True) as connection:
        while time.monotonic() < deadline:
            row = connection.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ).fetchone()
            if row is not None and row[0] > 0:
                return
            time.sleep(0.02)
    raise AssertionError("no backend started waiting for the lock")


# --- schema -------------------------------------------------------------------------------------


def test_db_upgrade_creates_the_schema_and_is_idempotent(
    tmp_path: Path, pg_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, database=pg_database)

    assert main(["--config", str(config), "db", "upgrade"]) == 0
    assert "database at the newest schema" in capsys.readouterr().out

    db = Database(pg_database)
    try:
        assert db.engine.dialect.name == "postgresql"
        assert set(inspect(db.engine).get_table_names()) >= TABLES
        assert is_current(db)
        with db.engine.connect() as connection:
            before = connection.execute(text("SELECT version_num FROM alembic_version")).all()
            timestamps = connection.execute(
                text(
                    "SELECT table_name, column_name, data_type FROM information_schema.columns"
                    " WHERE table_schema = 'public' AND column_name LIKE '%\\_at'"
                )
            ).all()
        assert len(before) == 1
        # Aware UTC datetimes need timestamptz: a naive column would shift them with the server.
        assert timestamps
        for table, column, data_type in timestamps:
            assert data_type == "timestamp with time zone", f"{table}.{column}: {data_type}"

        # A second upgrade changes nothing and still succeeds.
        assert main(["--config", str(config), "db", "upgrade"]) == 0
        with db.engine.connect() as connection:
            after = connection.execute(text("SELECT version_num FROM alembic_version")).all()
        assert after == before
        assert is_current(db)
    finally:
        db.dispose()


# --- the flow -----------------------------------------------------------------------------------


def test_message_becomes_a_ticket_and_an_acknowledgement(pg_state: State) -> None:
    raw = customer_mail(message_id="<first@musteri.com.tr>")
    journal_id = pg_state.journal.accept(Arrival(raw=raw, source="ingest"))

    results = pg_state.worker.drain()

    assert [(r.journal_id, r.state) for r in results] == [(journal_id, JOURNAL_DONE)]
    assert "acknowledged" in results[0].detail
    with pg_state.db.transaction() as session:
        entry = session.get(JournalEntry, journal_id)
        assert entry is not None
        assert (entry.state, entry.attempts) == (JOURNAL_DONE, 1)
        ticket = session.scalars(select(Ticket)).one()
        assert ticket.customer == "ayse@musteri.com.tr"
        assert ticket.customer_name == "Ayşe Yılmaz"
        assert ticket.subject == "Para çekme talebim"
        assert ticket.ref in results[0].detail
        messages = [(m.direction, m.kind) for m in ticket.messages]
        assert messages == [("in", "customer"), ("out", "auto")]
        assert ticket.messages[0].message_id == "first@musteri.com.tr"
        assert ticket.messages[0].journal_id == journal_id
        ack = session.scalars(select(OutboxMail)).one()
        assert (ack.kind, ack.state, ack.ticket_id) == ("ack", OUTBOX_QUEUED, ticket.id)
        assert ack.recipients == ["ayse@musteri.com.tr"]
        assert ack.automatic is True
        assert isinstance(ack.raw, bytes) and b"Auto-Submitted: auto-replied" in ack.raw
        assert ticket.ref.encode() in ack.raw
        assert ack.message_id == ticket.messages[1].message_id
    assert pg_state.worker.drain() == []


def test_the_same_message_twice_is_one_ticket_message(pg_state: State) -> None:
    raw = customer_mail(message_id="<twice@musteri.com.tr>")
    first = pg_state.journal.accept(Arrival(raw=raw, source="smtp:192.0.2.1"))
    second = pg_state.journal.accept(Arrival(raw=raw, source="imap:destek"))

    results = pg_state.worker.drain()

    assert [(r.journal_id, r.state) for r in results] == [
        (first, JOURNAL_DONE),
        (second, JOURNAL_IGNORED),
    ]
    assert results[1].detail.startswith("duplicate")
    assert _count(pg_state.db, Ticket) == 1
    assert _count(pg_state.db, TicketMessage, TicketMessage.direction == "in") == 1
    assert _count(pg_state.db, OutboxMail) == 1
    assert [(e.state, e.attempts) for e in _journal(pg_state.db)] == [
        (JOURNAL_DONE, 1),
        (JOURNAL_IGNORED, 1),
    ]


def test_a_duplicate_recorded_concurrently_is_ignored(pg_state: State) -> None:
    """Another worker holds the same message uncommitted: this one waits, then ignores it."""
    raw = customer_mail(message_id="<race@musteri.com.tr>")
    journal_id = pg_state.journal.accept(Arrival(raw=raw, source="ingest"))
    now = pg_state.clock.now()
    other = Database(pg_state.db.url)
    try:
        with other.transaction() as session:
            ticket = Ticket(
                ref="TKT-OTHER",
                customer="ayse@musteri.com.tr",
                language="tr",
                subject="Para çekme talebim",
                created_at=now,
                updated_at=now,
            )
            session.add(ticket)
            session.flush()
            session.add(
                TicketMessage(
                    ticket_id=ticket.id,
                    direction="in",
                    kind="customer",
                    dedupe_key=parse_message(raw).dedupe_key,
                    message_id="race@musteri.com.tr",
                    from_addr="ayse@musteri.com.tr",
                    subject="Para çekme talebim",
                    text="",
                    created_at=now,
                )
            )
            session.flush()
            thread, results, errors = _in_thread(pg_state.worker.process_next)
            # The worker reaches the insert of the same dedupe key and waits for this transaction.
            _wait_for_lock_wait(pg_state.db.url)
        thread.join(timeout=20)
        assert not thread.is_alive()
    finally:
        other.dispose()
    assert errors == []
    assert [(r.journal_id, r.state, r.detail) for r in results if r is not None] == [
        (journal_id, JOURNAL_IGNORED, "duplicate: recorded concurrently")
    ]
    assert _count(pg_state.db, Ticket) == 1
    assert _count(pg_state.db, OutboxMail) == 0
    assert [(e.state, e.attempts) for e in _journal(pg_state.db)] == [(JOURNAL_IGNORED, 1)]


# --- several workers and senders on one database ------------------------------------------------


def _worker(state: State, db: Database) -> Worker:
    return Worker(db, state.blobs, state.config, state.clock, state.templates)


def test_a_worker_skips_a_row_another_worker_holds(pg_state: State) -> None:
    first = pg_state.journal.accept(Arrival(raw=customer_mail(), source="ingest"))
    second = pg_state.journal.accept(Arrival(raw=customer_mail(), source="ingest"))
    holder = Database(pg_state.db.url)
    try:
        with holder.transaction() as session:
            locked = session.scalar(
                select(JournalEntry).where(JournalEntry.id == first).with_for_update()
            )
            assert locked is not None
            thread, results, errors = _in_thread(pg_state.worker.process_next)
            thread.join(timeout=10)
            blocked = thread.is_alive()
        thread.join(timeout=20)
    finally:
        holder.dispose()
    assert not blocked, "the worker waited for a locked row instead of skipping it"
    assert errors == []
    assert [(r.journal_id, r.state) if r else None for r in results] == [(second, JOURNAL_DONE)]
    assert [(e.id, e.state) for e in _journal(pg_state.db)] == [
        (first, JOURNAL_PENDING),
        (second, JOURNAL_DONE),
    ]


def test_concurrent_workers_process_each_message_exactly_once(pg_state: State) -> None:
    count, workers = 60, 3
    for i in range(count):
        raw = customer_mail(
            sender=f"Müşteri {i} <musteri{i}@example.net>",
            subject=f"Talep {i}",
            message_id=f"<talep-{i}@example.net>",
        )
        pg_state.journal.accept(Arrival(raw=raw, source="ingest"))
    databases = [second_database(pg_state.config) for _ in range(workers)]
    start = threading.Barrier(workers)

    def drain(db: Database) -> Callable[[], list[Processed]]:
        def run() -> list[Processed]:
            start.wait(timeout=10)
            return _worker(pg_state, db).drain()

        return run

    try:
        runs = [_in_thread(drain(db)) for db in databases]
        for thread, _, _ in runs:
            thread.join(timeout=120)
            assert not thread.is_alive()
    finally:
        for db in databases:
            db.dispose()
    assert [error for _, _, errors in runs for error in errors] == []
    per_worker = [results[0] for _, results, _ in runs]
    processed = [p for results in per_worker for p in results]

    # Each journal row was claimed by exactly one worker, and ended done on the first attempt.
    ids = [p.journal_id for p in processed]
    assert len(ids) == count and len(set(ids)) == count
    assert {p.state for p in processed} == {JOURNAL_DONE}
    assert sum(1 for results in per_worker if results) >= 2, "the workers did not run concurrently"
    journal = _journal(pg_state.db)
    assert sorted(ids) == [e.id for e in journal]
    assert {(e.state, e.attempts) for e in journal} == {(JOURNAL_DONE, 1)}

    with pg_state.db.transaction() as session:
        tickets = session.scalars(select(Ticket)).all()
        incoming = session.scalars(
            select(TicketMessage).where(TicketMessage.direction == "in")
        ).all()
        journal_ids = [m.journal_id or 0 for m in incoming]
    assert len(tickets) == count
    assert len({t.ref for t in tickets}) == count
    assert {t.customer for t in tickets} == {f"musteri{i}@example.net" for i in range(count)}
    assert sorted(journal_ids) == sorted(ids)
    assert _count(pg_state.db, OutboxMail, OutboxMail.kind == "ack") == count


class RecordingTransport:
    """Delivers nowhere, remembers what it was given; the pause lets other senders interleave."""

    def __init__(self, name: str, deliveries: list[tuple[str, int, str]]) -> None:
        self.name = name
        self.deliveries = deliveries

    async def deliver(self, mail: OutgoingMail) -> str:
        await asyncio.sleep(0.005)
        self.deliveries.append((self.name, mail.outbox_id, mail.message_id))
        return f"recorded by {self.name}"


def _queue_acks(state: State, count: int) -> None:
    for i in range(count):
        raw = customer_mail(sender=f"kisi{i}@example.org", message_id=f"<m{i}@example.org>")
        state.journal.accept(Arrival(raw=raw, source="ingest"))
    assert {r.state for r in state.worker.drain()} == {JOURNAL_DONE}
    assert _count(state.db, OutboxMail, OutboxMail.state == OUTBOX_QUEUED) == count


def test_concurrent_senders_deliver_each_mail_exactly_once(pg_state: State) -> None:
    count = 30
    _queue_acks(pg_state, count)
    deliveries: list[tuple[str, int, str]] = []
    databases = [second_database(pg_state.config) for _ in range(2)]
    senders = [
        Sender(db, RecordingTransport(f"sender{n}", deliveries), pg_state.clock)
        for n, db in enumerate(databases)
    ]

    async def both() -> list[list[DeliveryResult]]:
        return list(await asyncio.gather(*(sender.send_due() for sender in senders)))

    try:
        results = asyncio.run(both())
    finally:
        for db in databases:
            db.dispose()

    delivered = [outbox_id for _, outbox_id, _ in deliveries]
    assert len(delivered) == count and len(set(delivered)) == count
    assert sum(len(r) for r in results) == count
    assert {name for name, _, _ in deliveries} == {"sender0", "sender1"}
    with pg_state.db.transaction() as session:
        rows = session.scalars(select(OutboxMail).order_by(OutboxMail.id)).all()
        assert sorted(delivered) == [row.id for row in rows]
        assert {(row.state, row.attempts) for row in rows} == {(OUTBOX_SENT, 1)}
        assert all(row.sent_at == pg_state.clock.now() for row in rows)
        by_id = {row.id: row.message_id for row in rows}
    assert all(by_id[outbox_id] == message_id for _, outbox_id, message_id in deliveries)


def test_a_sender_skips_a_mail_another_sender_holds(pg_state: State) -> None:
    _queue_acks(pg_state, 2)
    deliveries: list[tuple[str, int, str]] = []
    with pg_state.db.transaction() as session:
        first, second = session.scalars(select(OutboxMail.id).order_by(OutboxMail.id)).all()
    holder = Database(pg_state.db.url)
    sender_db = second_database(pg_state.config)
    sender = Sender(sender_db, RecordingTransport("sender", deliveries), pg_state.clock)
    try:
        with holder.transaction() as session:
            session.scalar(select(OutboxMail).where(OutboxMail.id == first).with_for_update())
            thread, results, errors = _in_thread(lambda: asyncio.run(sender.send_one()))
            thread.join(timeout=10)
            blocked = thread.is_alive()
        thread.join(timeout=20)
    finally:
        holder.dispose()
        sender_db.dispose()
    assert not blocked, "the sender waited for a locked mail instead of skipping it"
    assert errors == []
    assert [r.outbox_id if r else None for r in results] == [second]
    assert [outbox_id for _, outbox_id, _ in deliveries] == [second]


# --- time ---------------------------------------------------------------------------------------


def test_aware_utc_datetimes_round_trip(pg_state: State) -> None:
    istanbul = timezone(timedelta(hours=3))
    received = datetime(2026, 3, 29, 2, 30, 15, 123456, tzinfo=istanbul)
    processed = datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    with pg_state.db.transaction() as session:
        entry = JournalEntry(
            blob_key="0" * 64,
            size=0,
            source="test",
            envelope_to=[],
            received_at=received,
            processed_at=processed,
        )
        session.add(entry)
        session.flush()
        entry_id = entry.id

    # A fresh engine whose sessions run in another time zone: the instant must not move.
    tokyo = Database(pg_state.db.url + "?options=-c%20TimeZone%3DAsia/Tokyo")
    try:
        with tokyo.transaction() as session:
            assert session.scalar(text("SHOW TimeZone")) == "Asia/Tokyo"
            loaded = session.get(JournalEntry, entry_id)
            assert loaded is not None
            stored = session.scalar(
                text("SELECT received_at AT TIME ZONE 'UTC' FROM journal WHERE id = :id"),
                {"id": entry_id},
            )
    finally:
        tokyo.dispose()
    assert loaded.received_at == received
    assert loaded.received_at.tzinfo is UTC
    assert loaded.received_at == datetime(2026, 3, 28, 23, 30, 15, 123456, tzinfo=UTC)
    assert loaded.processed_at == processed and loaded.processed_at.tzinfo is UTC
    assert stored == datetime(2026, 3, 28, 23, 30, 15, 123456)

    with pytest.raises(StatementError, match="naive datetime"), pg_state.db.transaction() as s:
        s.add(
            JournalEntry(
                blob_key="1" * 64,
                size=0,
                source="test",
                envelope_to=[],
                received_at=datetime(2026, 1, 1, 12, 0),
            )
        )
        s.flush()
