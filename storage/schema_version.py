"""Whether a database is at this ticketd's newest schema, asked without loading Alembic.

`ticketd ingest` runs once a message (an MTA pipe): loading Alembic and every migration script
to learn the newest revision would be a third of its start-up. `HEAD` names that revision
instead; tests/test_migrations.py fails when a migration is added and `HEAD` not moved to it.
A database at another revision, or without one, goes to storage.migrate, which upgrades it.
"""

from __future__ import annotations

from sqlalchemy import inspect, text

from storage.db import Database

HEAD = "0019"


def at_head(db: Database) -> bool:
    with db.engine.connect() as connection:
        # Read only: on SQLite no write lock, so a busy daemon does not slow the pipe down.
        connection = connection.execution_options(ticketd_readonly=True)
        if not inspect(connection).has_table("alembic_version"):
            return False
        versions = connection.execute(text("SELECT version_num FROM alembic_version"))
        return list(versions.scalars()) == [HEAD]
