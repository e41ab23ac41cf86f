"""Identity verification on PostgreSQL: migration 0008 both ways, two daemons' housekeeping at
once purging and mailing each thing once (FOR UPDATE SKIP LOCKED), and two workers creating one
customer's verification row at the same moment."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from alembic import command
from sqlalchemy import inspect, select

import ticketd.kyc_service
from domain.clock import FixedClock
from ingest.journal import Arrival
from storage.db import Database
from storage.migrate import alembic_config, is_current, upgrade
from storage.models import (
    JOURNAL_DONE,
    DocumentAccess,
    JournalEntry,
    OutboxMail,
    Verification,
)
from tests.helpers import make_config, second_database
from tests.test_kyc import JPEG, PDF, TEAM, kyc_mail
from tests.test_threading import deliver
from ticketd.kyc_service import HousekeepingRun, housekeeping
from ticketd.state import State, open_state

pytestmark = pytest.mark.postgresql
CUSTOMERS = 12
T = TypeVar("T")


def _customer_mail(number: int, subject: str = "Kimlik belgelerim") -> bytes:
    files = [("kimlik.jpg", "image/jpeg", JPEG), ("fatura.pdf", "application/pdf", PDF)]
    raw = kyc_mail(files, subject=subject)
    return raw.replace(b"ayse@musteri.com.tr", f"musteri{number}@example.net".encode())


@pytest.fixture
def pg_kyc(tmp_path: Path, pg_database: str, clock: FixedClock) -> Iterator[State]:
    opened = open_state(make_config(tmp_path, database=pg_database, extra=TEAM), clock=clock)
    yield opened
    opened.close()


def _in_threads(bodies: list[Callable[[], T]]) -> list[T]:
    start = threading.Barrier(len(bodies))
    results: list[T] = []
    errors: list[BaseException] = []

    def run(body: Callable[[], T]) -> None:
        try:
            start.wait(timeout=10)
            results.append(body())
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
        assert not thread.is_alive()
    assert errors == []
    return results


def test_migration_0008_goes_down_and_up(pg_database: str) -> None:
    db = Database(pg_database)
    try:
        upgrade(db)
        assert "verifications" in inspect(db.engine).get_table_names()
        command.downgrade(alembic_config(db), "0007")
        db.engine.dispose()
        assert "verifications" not in inspect(db.engine).get_table_names()
        upgrade(db)
        assert is_current(db)
        command.check(alembic_config(db))  # the models and the PostgreSQL schema agree
    finally:
        db.dispose()


def test_two_daemons_housekeeping_at_once_purge_and_mail_each_once(
    pg_kyc: State, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    for number in range(CUSTOMERS):
        assert deliver(pg_kyc, _customer_mail(number)).state == JOURNAL_DONE
    clock.advance(timedelta(days=15))  # nobody decided: every document is abandoned
    monkeypatch.setattr(ticketd.kyc_service, "BATCH", 2)  # small batches: the runs interleave

    def one_daemon() -> HousekeepingRun:
        db = second_database(pg_kyc.config)  # its own engine, as a second daemon
        try:
            return housekeeping(db, pg_kyc.config, clock, pg_kyc.templates, pg_kyc.blobs)
        finally:
            db.dispose()

    runs = _in_threads([one_daemon, one_daemon])
    assert sum(len(r.purged) for r in runs) == 2 * CUSTOMERS
    assert sum(len(r.expired) for r in runs) == CUSTOMERS
    with pg_kyc.db.read() as session:
        purges = session.scalars(
            select(DocumentAccess.document_id).where(DocumentAccess.action == "purge")
        ).all()
        told = Counter(
            session.scalars(
                select(OutboxMail.recipient).where(OutboxMail.kind == "kyc_expired")
            ).all()
        )
        states = set(session.scalars(select(Verification.state)).all())
    assert len(purges) == len(set(purges)) == 2 * CUSTOMERS
    assert len(told) == CUSTOMERS and set(told.values()) == {1}
    assert states == {"expired"}


def test_two_workers_create_one_customers_row_once(pg_kyc: State) -> None:
    for index in range(6):
        raw = _customer_mail(0, subject=f"Kimlik belgelerim {index}")
        pg_kyc.journal.accept(Arrival(raw=raw, source="ingest"))

    def drain() -> int:
        db = second_database(pg_kyc.config)
        try:
            worker = pg_kyc.worker
            worker.db = db
            return len(worker.drain())
        finally:
            db.dispose()

    assert sum(_in_threads([drain, drain])) == 6
    with pg_kyc.db.read() as session:
        journal = set(session.scalars(select(JournalEntry.state)).all())
        rows = session.execute(select(Verification.customer, Verification.state)).all()
    assert journal == {JOURNAL_DONE}
    assert [tuple(r) for r in rows] == [("musteri0@example.net", "received")]
