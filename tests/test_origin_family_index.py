"""The Idempotency-Key's family check (Arrival.origin_family, ingest/journal.py) finds an
earlier request of the key by an index, not by reading the whole journal: every POST
/api/v1/tickets with a key asks it, inside the journal's write transaction, so a scan grew with
every message ever received and held the writers' turn meanwhile.

The statement is the one `Journal.accept` runs, caught on its way to the database, and its plan
is the database's own: EXPLAIN QUERY PLAN on SQLite, EXPLAIN with sequential scans priced out
on PostgreSQL (whose planner reads a table of a few rows whole, index or not).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, event

from domain.clock import FixedClock
from ingest.journal import Arrival, OriginTaken
from storage.db import Database
from tests.helpers import DESK, customer_mail, make_config
from ticketd.state import State, open_state

FAMILY = "api:create:7:0123456789abcdef0123456789abcdef:"


def _arrival(body: str) -> Arrival:
    return Arrival(
        raw=customer_mail(body=body),
        source="api:test",
        envelope_to=(DESK,),
        origin=FAMILY + body.encode().hex()[:32].ljust(32, "0"),
        origin_family=FAMILY,
    )


def _family_check(state: State) -> tuple[str, Any]:
    """The statement (and its parameters) that looked for another origin of FAMILY while a
    second body under the key was refused."""
    seen: list[tuple[str, Any]] = []

    def caught(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        values = parameters.values() if isinstance(parameters, dict) else parameters
        if statement.lstrip().upper().startswith("SELECT") and any(
            isinstance(v, str) and v.startswith(FAMILY) and len(v) <= len(FAMILY) + 1
            for v in values
        ):
            seen.append((statement, parameters))

    state.journal.accept(_arrival("Para çekme talebim"))
    event.listen(state.db.engine, "before_cursor_execute", caught)
    try:
        with pytest.raises(OriginTaken):
            state.journal.accept(_arrival("Başka bir metin"))
    finally:
        event.remove(state.db.engine, "before_cursor_execute", caught)
    [found] = seen
    return found


def _plan(connection: Connection, explain: str, statement: str, parameters: Any) -> str:
    rows = connection.exec_driver_sql(f"{explain} {statement}", parameters)
    return "\n".join(" ".join(str(column) for column in row) for row in rows)


def test_the_family_check_reads_an_index_on_sqlite(state: State) -> None:
    statement, parameters = _family_check(state)
    with state.db.engine.connect() as connection:
        plan = _plan(connection, "EXPLAIN QUERY PLAN", statement, parameters)
    assert "ix_journal_origin_family" in plan, plan
    assert "SCAN journal" not in plan, plan


@pytest.fixture
def pg_state(tmp_path: Path, pg_database: str, clock: FixedClock) -> Iterator[State]:
    opened = open_state(make_config(tmp_path, database=pg_database), clock=clock)
    yield opened
    opened.close()


@pytest.mark.postgresql
def test_the_family_check_reads_an_index_on_postgresql(pg_state: State) -> None:
    statement, parameters = _family_check(pg_state)
    db: Database = pg_state.db
    with db.engine.connect() as connection:
        # A few rows: priced as they are, a sequential scan wins whatever indexes there are.
        connection.exec_driver_sql("SET enable_seqscan = off")
        plan = _plan(connection, "EXPLAIN", statement, parameters)
    assert "ix_journal_origin_family" in plan, plan
    assert "Seq Scan" not in plan, plan
