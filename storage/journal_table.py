"""The journal's table in SQLAlchemy Core: one row a received copy of a message.

Declared here rather than in storage/models.py, whose `JournalEntry` maps this very table for
the worker and the commands, so that `Journal.accept` (ingest/journal.py) inserts a row without
the ORM: `ticketd ingest`, an MTA pipe started once a message, would otherwise import the ORM and
build every model, a third of its start-up (issue 19). Its raw bytes live in the blob store
under `blob_key`.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from storage.columns import METADATA, UtcDateTime

# Journal states: every received message ends in one of the last three (promise 3).
JOURNAL_PENDING = "pending"
JOURNAL_DONE = "done"
JOURNAL_IGNORED = "ignored"
JOURNAL_QUARANTINED = "quarantined"
# A quarantined message an admin looked at and cleared (`quarantine dismiss`): kept, audited,
# no longer counted by `health`.
JOURNAL_DISMISSED = "dismissed"

JOURNAL = Table(
    "journal",
    METADATA,
    Column("id", Integer, primary_key=True),
    Column("blob_key", String(64), nullable=False),
    Column("size", Integer, nullable=False),
    Column("source", String(200), nullable=False),
    Column("envelope_from", String(500)),
    Column("envelope_to", JSON, nullable=False, default=list),
    Column("received_at", UtcDateTime, nullable=False),
    Column("state", String(20), nullable=False, default=JOURNAL_PENDING),
    Column("reason", Text),
    Column("attempts", Integer, nullable=False, default=0),
    Column("processed_at", UtcDateTime),
    # Historical mail (import) becomes tickets without acknowledgements unless asked.
    Column("acknowledge", Boolean, nullable=False, default=True),
    # Where the copy came from, when the source can name it again (an IMAP message's mailbox,
    # UIDVALIDITY and UID): a re-fetch after a crash finds this row instead of adding one.
    Column("origin", String(500)),
    # The request `origin` is one of (ingest/journal.py Arrival.origin_family: an API request's
    # Idempotency-Key): whether another body of the key came first is an exact match on its
    # index. A LIKE on `origin`'s prefix read the whole index on SQLite (its LIKE with ESCAPE
    # and a bound prefix is no range) and, in a database whose collation is not C, the whole
    # table on PostgreSQL, inside the journal's write transaction of every such request.
    Column("origin_family", String(500)),
    # What retention or a purge left of the raw bytes (RAW_* in storage/models.py); None: as
    # received.
    Column("raw_state", String(20)),
    Column("raw_changed_at", UtcDateTime),
    # What the sender sent, trace headers left out (ingest/content_hash.py), set when the
    # message is processed: how a copy is told from another message with the same Message-ID.
    # None for rows processed before it existed.
    Column("content_hash", String(64)),
    # The pipeline step that decided what became of the message (ingest/runner.py): the one
    # that quarantined or ignored it, or the last one of a ticket's. None: not decided yet, or
    # decided before steps were recorded, or outside the pipeline (a worker that stopped).
    Column("step", String(100)),
    Index("ix_journal_state", "state", "id"),
    Index("ix_journal_blob_key", "blob_key"),
    Index("ix_journal_origin_family", "origin_family"),
    UniqueConstraint("origin", name="uq_journal_origin"),
)
