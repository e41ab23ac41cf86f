"""Migration 0019 gives the rows journaled before it their `origin_family`: a key an API client
used before the upgrade still refuses another body after it, and its retry with the same body
still finds its first row. Run on SQLite and on PostgreSQL (tests/pg.py), whose `substr` and
`length` the backfill's SQL relies on alike.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import insert, inspect, select

from domain.clock import FixedClock
from ingest.journal import Arrival, OriginTaken
from storage.db import Database
from storage.journal_table import JOURNAL
from storage.migrate import alembic_config
from storage.schema_version import HEAD
from tests.helpers import DESK, customer_mail, make_config
from ticketd.state import open_state
from web.ticket_routes import keyed

BEFORE = "0018"
SCOPE = "api:create:7"  # web/customer_routes._origin: POST /api/v1/tickets, token 7
FIRST, FIRST_FAMILY = keyed(SCOPE, "retry-me", '["ayse@musteri.com.tr", "first body"]')
OTHER, OTHER_FAMILY = keyed(SCOPE, "another-key", '["ayse@musteri.com.tr", "other"]')
IMAP = "imap://INBOX;UIDVALIDITY=3/;UID=41"
IMPORT = "import:" + "ab" * 32

# Each row's origin before the upgrade, and the family it has after it.
ROWS: dict[str | None, str | None] = {
    FIRST: FIRST_FAMILY,
    OTHER: OTHER_FAMILY,
    IMAP: None,
    IMPORT: None,
    None: None,
}


def _journal_before_the_upgrade(url: str) -> None:
    """A database at revision 0018 with one row of each kind of origin."""
    db = Database(url)
    try:
        command.upgrade(alembic_config(db), BEFORE)
        with db.engine.begin() as connection:
            for number, origin in enumerate(ROWS):
                connection.execute(
                    insert(JOURNAL).values(  # the columns of 0018 only: no origin_family
                        blob_key=f"gone-{number}",
                        size=1,
                        source="api:test",
                        envelope_to=[],
                        received_at=datetime(2026, 12, 1, 9, 0, tzinfo=UTC),
                        state="done",
                        attempts=1,
                        acknowledge=True,
                        origin=origin,
                    )
                )
    finally:
        db.dispose()


def _families(db: Database) -> dict[str | None, str | None]:
    with db.engine.connect() as connection:
        rows = connection.execute(select(JOURNAL.c.origin, JOURNAL.c.origin_family))
        return {origin: family for origin, family in rows}


def _arrival(origin: str, family: str | None, body: str) -> Arrival:
    return Arrival(
        raw=customer_mail(body=body),
        source="api:test",
        envelope_to=(DESK,),
        origin=origin,
        origin_family=family,
    )


def _upgrade_and_check(tmp_path: Path, url: str | None, clock: FixedClock) -> None:
    config = make_config(tmp_path, database=url)
    _journal_before_the_upgrade(config.storage.database)
    state = open_state(config, clock=clock)  # upgrades to HEAD, as the daemon does
    try:
        assert _families(state.db) == ROWS
        with state.db.engine.connect() as connection:
            first_id = connection.scalar(select(JOURNAL.c.id).where(JOURNAL.c.origin == FIRST))
        # The old key with another body: refused, by the row journaled before the upgrade.
        second, _ = keyed(SCOPE, "retry-me", '["ayse@musteri.com.tr", "second body"]')
        with pytest.raises(OriginTaken) as refused:
            state.journal.accept(_arrival(second, FIRST_FAMILY, "second body"))
        assert refused.value.journal_id == first_id
        # The old key's retry with its own body: the row of before, not a new one.
        assert state.journal.accept_once(_arrival(FIRST, FIRST_FAMILY, "first body")) == (
            first_id,
            False,
        )
    finally:
        state.close()


def _down_and_up_again(url: str) -> None:
    """The downgrade drops the column and its index; the upgrade after it fills it again."""
    db = Database(url)
    try:
        command.downgrade(alembic_config(db), BEFORE)
        assert "origin_family" not in {c["name"] for c in inspect(db.engine).get_columns("journal")}
        command.upgrade(alembic_config(db), HEAD)
        assert _families(db) == ROWS
    finally:
        db.dispose()


def test_the_upgrade_fills_the_family_of_older_rows_on_sqlite(
    tmp_path: Path, clock: FixedClock
) -> None:
    _upgrade_and_check(tmp_path, None, clock)
    _down_and_up_again(make_config(tmp_path).storage.database)


@pytest.mark.postgresql
def test_the_upgrade_fills_the_family_of_older_rows_on_postgresql(
    tmp_path: Path, pg_database: str, clock: FixedClock
) -> None:
    _upgrade_and_check(tmp_path, pg_database, clock)
    _down_and_up_again(pg_database)
