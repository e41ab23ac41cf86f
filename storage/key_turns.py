"""Transactions about one name take turns: `take_turn(connection, name)`.

A request with an `Idempotency-Key` looks for an earlier one with its key, then acts; two sent
at the same moment both looked before either acted, and both acted. On SQLite every writing
transaction holds the one write lock from its BEGIN (storage/db.py), so the second looks only
after the first committed: nothing to do. PostgreSQL runs them side by side: here the second
waits for a transaction-level advisory lock on the name until the first commits or rolls back,
and its next statement (READ COMMITTED) sees what the first wrote. Only the Core is imported:
`ticketd ingest` journals without the ORM (ingest/journal.py).
"""

from __future__ import annotations

import hashlib

from sqlalchemy import Connection, text

# The first key of these advisory locks (the second is the name's hash). The journal rows'
# locks (ingest/worker.py) have their own first key; the one-key locks (migrations, IMAP
# mailboxes) are another key space.
KEY_TURN_CLASS = 0x6B657973  # "keys"


def turn_key(name: str) -> int:
    """A signed 32-bit key of the name: two names that share one only wait for each other."""
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:4], "big", signed=True)


def take_turn(connection: Connection, name: str) -> None:
    """Until this transaction ends, another transaction that takes the turn of `name` waits."""
    if connection.dialect.name != "postgresql":
        return  # SQLite: the transaction holds the write lock already
    connection.execute(
        text("SELECT pg_advisory_xact_lock(:kind, :key)"),
        {"kind": KEY_TURN_CLASS, "key": turn_key(name)},
    )
