"""The worker's mark of a try is committed without a disk sync (storage/db.py `connect(lasting=
False)`, ingest/worker_stops.py): it must still outlive the process that wrote it, which is
what it counts, and no connection may go back to the pool without its syncs."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from sqlalchemy import select, text

from ingest.journal import Arrival
from ingest.worker_stops import IN_WORKER, mark_started, stops_so_far
from storage.db import Database
from storage.journal_table import JOURNAL
from ticketd.state import State

ROOT = Path(__file__).resolve().parents[1]


def _synchronous(db: Database) -> list[int]:
    """`PRAGMA synchronous` of every connection the pool holds (2 is FULL, 1 NORMAL)."""
    held = [db.engine.connect().execution_options(ticketd_readonly=True) for _ in range(3)]
    try:
        return [c.exec_driver_sql("PRAGMA synchronous").scalar_one() for c in held]
    finally:
        for connection in held:
            connection.close()


def test_the_block_is_unsynced_and_the_pool_gets_full_syncs_back(state: State) -> None:
    db = state.db
    with db.connect(lasting=False) as connection:
        inside = connection.exec_driver_sql("PRAGMA synchronous").scalar_one()
    assert inside == 1  # NORMAL: in WAL mode, the commit writes the log without syncing it
    assert _synchronous(db) == [2, 2, 2]
    try:
        with db.connect(lasting=False) as connection:
            connection.execute(text("SELECT no_such_column FROM journal"))
    except Exception:
        pass
    assert _synchronous(db) == [2, 2, 2]  # a failed block too
    with db.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar_one() == 2


def test_a_mark_outlives_the_process_killed_right_after_it(state: State) -> None:
    entry_id = state.journal.accept(
        Arrival(raw=b"Subject: a\r\n\r\nb\r\n", source="test", envelope_to=("d@x",))
    )
    url = state.config.storage.database
    state.db.dispose()
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        from storage.db import Database
        from ingest.worker_stops import mark_started
        assert mark_started(Database({url!r}), {entry_id}, 0)
        os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer would, before any other commit
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()
    with state.db.read_rows() as connection:
        reason, attempts = connection.execute(
            select(JOURNAL.c.reason, JOURNAL.c.attempts).where(JOURNAL.c.id == entry_id)
        ).one()
    assert reason == f"{IN_WORKER} 1" and stops_so_far(reason) == 1 and attempts == 1
    assert mark_started(state.db, entry_id, stops_so_far(reason), reason)  # the next try
    with state.db.read_rows() as connection:
        again = connection.execute(select(JOURNAL.c.reason).where(JOURNAL.c.id == entry_id))
        assert stops_so_far(again.scalar_one()) == 2
