"""Alembic environment: the URL comes from ticketd's configuration, never from alembic.ini."""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from sqlalchemy import Connection

from storage.db import make_engine
from storage.models import Base, UtcDateTime

config = context.config


def _render_item(kind: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    # Migrations name the plain column type, so they never import the models they predate.
    if kind == "type" and isinstance(obj, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    return False


# The full-text index of messages lives outside the models (migration 0015, storage/search.py):
# SQLite's FTS5 table and its shadow tables, PostgreSQL's index over an expression.
_SEARCH_OBJECTS = ("messages_fts", "ix_messages_search")


def _include_object(
    obj: Any, name: str | None, kind: str, reflected: bool, compare_to: Any
) -> bool:
    return not (name or "").startswith(_SEARCH_OBJECTS)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_item=_render_item,
        render_as_batch=connection.dialect.name == "sqlite",
        include_object=_include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()
