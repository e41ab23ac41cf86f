"""Full-text search over messages (subject and text), on the index of migration 0015.

The terms arrive folded (domain/turkish.py: any case, Turkish letters written as ASCII), the way
the index holds the text, so `şikayet`, `ŞİKAYET` and `sikayet` find each other. Each term is a
prefix (Turkish adds suffixes: `şikayet` finds `şikayetim`), and a message matches when it has
them all. SQLite asks its FTS5 table; PostgreSQL its GIN index, whose expression is repeated here
to the letter (an index on an expression serves only that expression).
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Select, select, text
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import TextClause

from storage.models import TicketMessage

_PG_MATCH = (
    "to_tsvector('simple'::regconfig, translate(coalesce(messages.subject, '') || ' ' || "
    "coalesce(messages.text, ''), 'İIıŞşÇçĞğÖöÜüÂâÎîÛû', 'iiissccggoouuaaiiuu')) "
    "@@ to_tsquery('simple'::regconfig, :search_query)"
)
_TERM = re.compile(r"\w+")
MAX_TERMS = 16


def terms(folded: str) -> list[str]:
    """The words of a folded query (punctuation and operators are not syntax here)."""
    return _TERM.findall(folded)[:MAX_TERMS]


def _sqlite_query(words: list[str]) -> str:
    return " ".join(f'"{word}"*' for word in words)


def _pg_query(words: list[str]) -> str:
    return " & ".join(f"{word}:*" for word in words)


def matching_tickets(dialect: str, words: list[str]) -> Select[Any]:
    """The ids of the tickets that have a message with every word (prefixes)."""
    condition: TextClause
    if dialect == "sqlite":
        condition = text(
            "messages.id IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH :search_query)"
        ).bindparams(search_query=_sqlite_query(words))
    else:
        condition = text(_PG_MATCH).bindparams(search_query=_pg_query(words))
    return select(TicketMessage.ticket_id).where(condition).distinct()


def forget_removed_text(session: Session) -> None:
    """After messages lost their text (an erasure, `ticket_days`): SQLite's FTS5 table keeps
    the words of a changed row in its segments (the old entry and the delete marker, both
    spelling the words) until the segments are merged; 'optimize' merges them all into one
    that holds only the current text, and secure_delete (storage/db.py) zeroes the pages it
    frees. PostgreSQL's index is over an expression of the row: its old entries go with the
    dead row at (auto)vacuum."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("INSERT INTO messages_fts(messages_fts) VALUES ('optimize')"))
