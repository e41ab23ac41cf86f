"""Issue 22 on PostgreSQL: the worker's claim and the mark of the try commit before the parse,
like on SQLite, so a SIGKILL during the parse is counted (and given up after
`[limits] max_worker_stops`), and the parse and the document checks hold no transaction and no
row lock: only an advisory lock tells the other workers the row is taken."""

from __future__ import annotations

import signal
import smtplib
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import select

from storage.db import Database
from storage.models import JOURNAL_PENDING, JournalEntry
from tests.daemon import DaemonProcess, Relay
from tests.helpers import DESK, customer_mail, free_port, write_config
from tests.test_hostile_freeze import _slow_html

pytestmark = [pytest.mark.postgresql, pytest.mark.slow]


def _psycopg(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def _pending(url: str) -> list[tuple[int, str, int]]:
    db = Database(url)
    try:
        with db.read() as session:
            rows = session.execute(
                select(JournalEntry.id, JournalEntry.reason, JournalEntry.attempts).where(
                    JournalEntry.state == JOURNAL_PENDING
                )
            )
            return [(i, r or "", a) for i, r, a in rows]
    finally:
        db.dispose()


def _while_parsing(url: str, journal_id: int) -> dict[str, Any]:
    """What the database shows of the row while the daemon parses it."""
    with psycopg.connect(_psycopg(url)) as connection:
        # No transaction holds the row: NOWAIT would fail at once on a row lock.
        row_lock_free = True
        try:
            connection.execute(
                "SELECT id FROM journal WHERE id = %s FOR UPDATE NOWAIT", (journal_id,)
            )
        except psycopg.errors.LockNotAvailable:
            row_lock_free = False
        connection.rollback()
        advisory = connection.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s AND granted",
            (journal_id,),
        ).fetchone()
        in_transaction = connection.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND state = 'idle in transaction'"
        ).fetchone()
    assert advisory is not None and in_transaction is not None
    return {
        "row_lock_free": row_lock_free,
        "advisory_locks": advisory[0],
        "idle_in_transaction": in_transaction[0],
    }


def _send(port: int, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=120) as client:
        client.sendmail("ayse@musteri.com.tr", [DESK], raw)


def test_a_kill_during_the_parse_is_counted_and_the_parse_holds_no_transaction(
    tmp_path: Path, pg_database: str, relay: Relay
) -> None:
    extra = (
        f'[smtp_out]\nrelay = "127.0.0.1:{relay.port}"\n'
        f'[smtp_in]\nlisten = "127.0.0.1:{free_port()}"\n'
        "[limits]\nmax_worker_stops = 2\nmax_parse_seconds = 600\n"
    )
    daemon = DaemonProcess(write_config(tmp_path, database=pg_database, extra=extra))
    daemon.start(timeout=60)
    try:
        _send(daemon.port, _slow_html(20))  # seconds of parsing: long enough to look
        for tries in (1, 2):
            mark = f"in the worker: try {tries}"
            [(journal_id, _reason, attempts)] = daemon.wait_until(
                lambda mark=mark: [p for p in _pending(pg_database) if mark in p[1]],
                timeout=60,
                what=f"try {tries} under way",
            )
            assert attempts == tries  # committed before the parse: the kill below counts
            # Three looks: another loop of the daemon (the sender, the SLA clock) may be in the
            # middle of a short transaction of its own at one of them.
            seen = [_while_parsing(pg_database, journal_id) for _ in range(3)]
            print(f"while parsing try {tries}: {seen}")
            assert all(s["row_lock_free"] and s["advisory_locks"] == 1 for s in seen), seen
            assert min(s["idle_in_transaction"] for s in seen) == 0, seen
            assert daemon.process is not None
            daemon.process.send_signal(signal.SIGKILL)
            daemon.process.wait(timeout=10)
            daemon.start(timeout=60)
        [row] = daemon.wait_until(
            lambda: daemon.cli("quarantine", "list", "--json"), timeout=60, what="the quarantine"
        )
        assert "stopped the worker 2 times" in row["reason"], row
        assert row["attempts"] == 2
        # The daemon goes on with the next message instead of the same one for ever.
        _send(daemon.port, customer_mail(subject="Dürüst talep"))
        daemon.wait_until(
            lambda: daemon.cli("tickets", "list", "--json"), timeout=60, what="the honest ticket"
        )
    finally:
        assert daemon.stop() == 0, daemon.log()
