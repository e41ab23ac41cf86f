"""api_tokens, and the full-text index of messages (subject and text) for the API's search

SQLite: an FTS5 table over `messages` (external content, so no second copy of the text is
kept), filled by triggers with the text folded for Turkish the way domain/turkish.py folds a
query: the tokenizer lowers case and drops the marks of ç, ğ, ö, ş, ü, â, î, û (and İ), the
triggers write ı as i. PostgreSQL: a GIN index over the same folding done by translate(), which
storage/search.py repeats to the letter (an index on an expression serves only that expression).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02 06:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

# Kept equal to storage/search.py (a migration is frozen: it does not import the code).
_SQLITE_FOLD = "replace(replace(coalesce({0}, ''), 'ı', 'i'), 'İ', 'i')"
_PG_DOCUMENT = (
    "to_tsvector('simple'::regconfig, translate(coalesce(subject, '') || ' ' || "
    "coalesce(text, ''), 'İIıŞşÇçĞğÖöÜüÂâÎîÛû', 'iiissccggoouuaaiiuu'))"
)


def _fold(column: str, row: str) -> str:
    return _SQLITE_FOLD.format(f"{row}.{column}")


def _sqlite_search() -> None:
    op.execute(
        "CREATE VIRTUAL TABLE messages_fts USING fts5(subject, text, content='messages', "
        "content_rowid='id', tokenize='unicode61 remove_diacritics 2')"
    )
    new = f"new.id, {_fold('subject', 'new')}, {_fold('text', 'new')}"
    old = f"'delete', old.id, {_fold('subject', 'old')}, {_fold('text', 'old')}"
    op.execute(
        "CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN "
        f"INSERT INTO messages_fts(rowid, subject, text) VALUES ({new}); END"
    )
    op.execute(
        "CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN "
        f"INSERT INTO messages_fts(messages_fts, rowid, subject, text) VALUES ({old}); END"
    )
    op.execute(
        "CREATE TRIGGER messages_fts_update AFTER UPDATE OF subject, text ON messages BEGIN "
        f"INSERT INTO messages_fts(messages_fts, rowid, subject, text) VALUES ({old}); "
        f"INSERT INTO messages_fts(rowid, subject, text) VALUES ({new}); END"
    )
    op.execute(
        "INSERT INTO messages_fts(rowid, subject, text) SELECT id, "
        f"{_SQLITE_FOLD.format('subject')}, {_SQLITE_FOLD.format('text')} FROM messages"
    )


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("agent", sa.String(length=320), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    # The API lists tickets newest first, filtered by these.
    op.create_index("ix_tickets_queue", "tickets", ["queue", "id"])
    op.create_index("ix_tickets_customer", "tickets", ["customer", "id"])
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_search()
    else:
        op.execute(f"CREATE INDEX ix_messages_search ON messages USING gin ({_PG_DOCUMENT})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER messages_fts_{trigger}")
        op.execute("DROP TABLE messages_fts")
    else:
        op.execute("DROP INDEX ix_messages_search")
    op.drop_index("ix_tickets_customer", "tickets")
    op.drop_index("ix_tickets_queue", "tickets")
    op.drop_table("api_tokens")
