"""Database migrations with Alembic, driven from ticketd's configuration."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from storage.db import Database

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(db: Database) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", db.url.replace("%", "%%"))
    return config


# Any constant: the key of the advisory lock that serialises migrations across daemons.
MIGRATION_LOCK = 0x7469636B  # "tick"


def upgrade(db: Database) -> None:
    """Bring the schema to the newest revision; a no-op when it is there already.

    Several daemons on one PostgreSQL database may start at once: each takes a transaction-level
    advisory lock first, so one migrates and the others wait, then find nothing left to do
    (PostgreSQL runs DDL in the transaction, so a failed migration leaves nothing half done)."""
    config = alembic_config(db)
    with db.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def is_current(db: Database) -> bool:
    script = ScriptDirectory.from_config(alembic_config(db))
    with db.engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_heads()
    return set(current) == set(script.get_heads())


def schema_problem(db: Database) -> str | None:
    """Why this database cannot be read by this ticketd (no ticketd tables, another schema
    version), or None. Reads only: nothing is created or migrated."""
    script = ScriptDirectory.from_config(alembic_config(db))
    with db.engine.connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    if not current:
        return "it holds no ticketd tables (`ticketd db upgrade` or `ticketd run` creates them)"
    if current != set(script.get_heads()):
        return (
            f"its schema is at revision {', '.join(sorted(current))}, not this ticketd's "
            "(`ticketd db upgrade` brings it up to date)"
        )
    return None
