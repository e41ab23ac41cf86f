"""The journal: every received message is made durable here before anyone says "accepted".

`accept` writes the raw bytes to the blob store (fsynced) and commits a journal row. Only then
may a source answer 250, flag the IMAP message, or exit 0. A crash before the commit leaves the
message not accepted (the sender retries); after it, the worker finds the row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from storage.blobs import BlobStore
from storage.db import Database
from storage.models import JOURNAL_PENDING, JournalEntry
from ticketd.clock import Clock


class StorageFailure(Exception):
    """The message could not be made durable; the source must not report it accepted."""


@dataclass(frozen=True)
class Arrival:
    raw: bytes
    source: str  # "smtp:1.2.3.4", "ingest", "import:PATH", "imap:NAME"
    envelope_from: str | None = None
    envelope_to: Sequence[str] = ()
    acknowledge: bool = True


class Journal:
    def __init__(self, db: Database, blobs: BlobStore, clock: Clock) -> None:
        self.db = db
        self.blobs = blobs
        self.clock = clock

    def accept(self, arrival: Arrival) -> int:
        """Store durably; returns the journal id or raises StorageFailure."""
        try:
            key = self.blobs.put(arrival.raw)
            with self.db.transaction() as session:
                entry = JournalEntry(
                    blob_key=key,
                    size=len(arrival.raw),
                    source=arrival.source[:200],
                    envelope_from=(arrival.envelope_from or None),
                    envelope_to=list(arrival.envelope_to),
                    received_at=self.clock.now(),
                    state=JOURNAL_PENDING,
                    attempts=0,
                    acknowledge=arrival.acknowledge,
                )
                session.add(entry)
                session.flush()
                return entry.id
        except Exception as error:  # disk full, database gone: say so, accept nothing
            raise StorageFailure(f"{type(error).__name__}: {error}") from error
