"""The journal: every received message is made durable here before anyone says "accepted".

`accept` writes the raw bytes to the blob store (fsynced) and commits a journal row. Only then
may a source answer 250, flag the IMAP message, or exit 0. A crash before the commit leaves the
message not accepted (the sender retries); after it, the worker finds the row. A blob whose row
never commits is an orphan the daily sweep removes (storage/sweep.py).

The rows are written with SQLAlchemy Core (storage/journal_table.py), not the ORM: `ticketd
ingest`, an MTA pipe started once a message, imports neither the ORM nor the models (issue 19).
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, insert, or_, select
from sqlalchemy.exc import DBAPIError

from domain.clock import Clock
from domain.errors import Permanent, Temporary
from ingest.journal_group import Group
from storage.blobs import BlobStore
from storage.db import Database
from storage.journal_table import JOURNAL, JOURNAL_PENDING, JOURNAL_QUARANTINED
from storage.key_turns import take_turn


class StorageFailure(Temporary):
    """The message could not be made durable; the source must not report it accepted."""


class OriginTaken(Permanent):
    """Another origin of the arrival's `origin_family` is journaled: not this one."""

    def __init__(self, journal_id: int) -> None:
        super().__init__(f"another message of this family is journal row {journal_id}")
        self.journal_id = journal_id


# What an admin does about it differs, so the log line says which it is.
_DISK_ERRORS = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "file system is read-only",
}


def explain(error: BaseException, blobs: BlobStore) -> str:
    """One line for the log: "disk full: No space left on device (ENOSPC) ...", "database
    unavailable: ...". SQLAlchemy's own text spans lines (SQL, a link); only the cause is kept."""
    if isinstance(error, OSError) and error.errno is not None:
        name = errno.errorcode.get(error.errno, str(error.errno))
        what = _DISK_ERRORS.get(error.errno, "cannot write")
        return f"{what}: {error.strerror} ({name}) writing to the blob folder {blobs.root}"
    if isinstance(error, DBAPIError):
        cause = str(error.orig).strip().splitlines() or [type(error.orig).__name__]
        return f"database unavailable: {cause[0]}"
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"


@dataclass(frozen=True)
class Arrival:
    # The SMTP listener's is the bytearray it read into (ingest/smtp_data.py): never copied.
    raw: bytes | bytearray
    source: str  # "smtp:1.2.3.4", "ingest", "import:PATH", "imap:NAME"
    envelope_from: str | None = None  # "" (or "<>"): the null sender; None: not known
    envelope_to: Sequence[str] = ()
    acknowledge: bool = True
    # A name the source can give again for the same copy (IMAP: mailbox, UIDVALIDITY, UID);
    # with it, `accept` recognises a re-fetch instead of journaling the message twice.
    origin: str | None = None
    # One request's origins (the API's `Idempotency-Key`; its origin is this, the prefix, and
    # the body's hash): a row of the family journaled already, under another origin, is
    # OriginTaken. Kept in the row's `origin_family`, looked up by its index. Arrivals of one
    # family take turns (storage/key_turns.py), so two at the same moment journal once.
    origin_family: str | None = None


def _envelope_from(path: str | None) -> str | None:
    """As the journal keeps it: "<>" for the null sender a source named, None for none."""
    if path is None:
        return None
    return path.strip() or "<>"


# Blobs of one batch written at once: their fsyncs overlap (the filesystem commits them
# together) and the sealing runs outside the interpreter lock.
PUT_THREADS = 8


class Journal:
    def __init__(self, db: Database, blobs: BlobStore, clock: Clock) -> None:
        self.db = db
        self.blobs = blobs
        self.clock = clock
        self._together: Group[tuple[Arrival, str], int] = Group(self._write_together)

    def accept(self, arrival: Arrival) -> int:
        """Store durably; returns the journal id or raises StorageFailure."""
        return self.accept_once(arrival)[0]

    def accept_together(self, arrival: Arrival) -> int:
        """`accept`, its row committed with those of the other threads accepting at the same
        moment (ingest/journal_group.py): the SMTP listener's sessions. Raises StorageFailure
        when its blob or the commit holding its row failed."""
        try:
            key = self.blobs.put(arrival.raw)
        except Exception as error:
            raise StorageFailure(explain(error, self.blobs)) from error
        return self._together.add((arrival, key))

    def _write_together(self, take: Callable[[], Sequence[tuple[Arrival, str]]]) -> list[int]:
        try:
            with self.db.connect() as connection:  # the writers' turn, then the rows queued
                return [self._row(connection, arrival, key)[0] for arrival, key in take()]
        except Exception as error:  # disk full, database gone: say so, accept nothing
            raise StorageFailure(explain(error, self.blobs)) from error

    def accept_once(self, arrival: Arrival) -> tuple[int, bool]:
        """Like `accept`, and says whether the row is new. An arrival with an origin that is
        already journaled, under that origin or with the very same bytes (the same mail
        fetched again after a UIDVALIDITY change), returns the existing row instead."""
        return self.accept_many([arrival])[0]

    def accept_many(self, arrivals: Sequence[Arrival]) -> list[tuple[int, bool]]:
        """`accept_once` for several messages with one commit (an import's batch): every blob
        is fsynced first, then the rows are committed together, so none is accepted before
        all are durable. Raises StorageFailure for the batch: none of it is accepted."""
        try:
            keys = self._put_all(arrivals)
            with self.db.connect() as connection:
                return [
                    self._row(connection, arrival, key)
                    for arrival, key in zip(arrivals, keys, strict=True)
                ]
        except OriginTaken:
            raise
        except Exception as error:  # disk full, database gone: say so, accept nothing
            raise StorageFailure(explain(error, self.blobs)) from error

    def _put_all(self, arrivals: Sequence[Arrival]) -> list[str]:
        """Every blob written and fsynced, side by side when there are several (an import's
        batch): one after the other, each fsync of a file and of its folder waited for the
        last, and storing was a third of an import's time (issue 19)."""
        if len(arrivals) == 1:
            return [self.blobs.put(arrivals[0].raw)]
        # Here, not at the top: `ticketd ingest` journals one message and needs no threads.
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(PUT_THREADS, len(arrivals))) as pool:
            return list(pool.map(self.blobs.put, [arrival.raw for arrival in arrivals]))

    def _row(self, connection: Connection, arrival: Arrival, key: str) -> tuple[int, bool]:
        if arrival.origin_family is not None:
            take_turn(connection, arrival.origin_family)
        if arrival.origin is not None:
            known: int | None = connection.scalar(
                select(JOURNAL.c.id)
                .where(or_(JOURNAL.c.origin == arrival.origin, JOURNAL.c.blob_key == key))
                .order_by(JOURNAL.c.id)
                .limit(1)
            )
            if known is not None:
                return known, False
        if arrival.origin_family is not None:
            taken: int | None = connection.scalar(
                select(JOURNAL.c.id)
                .where(JOURNAL.c.origin_family == arrival.origin_family)  # its index
                .limit(1)
            )
            if taken is not None:
                raise OriginTaken(taken)
        row = {
            "blob_key": key,
            "size": len(arrival.raw),
            "source": arrival.source[:200],
            "envelope_from": _envelope_from(arrival.envelope_from),
            "envelope_to": list(arrival.envelope_to),
            "received_at": self.clock.now(),
            "state": JOURNAL_PENDING,
            "attempts": 0,
            "acknowledge": arrival.acknowledge,
            "origin": arrival.origin,
            "origin_family": arrival.origin_family,
        }
        return _insert(connection, row), True

    def quarantine(
        self, origin: str | None, source: str, reason: str, header: bytes = b""
    ) -> int | None:
        """Record a message a source could not even read (an IMAP FETCH the server refuses, a
        message over the size limit), so it is visible in `quarantine list` instead of retried
        in a loop; `header` is what was read of it. None: this origin is already known."""
        note = f"Subject: not received: {reason}\r\n\r\n{reason}\r\n".encode()
        if header:
            note += b"\r\nWhat was read of its header:\r\n\r\n" + header
        try:
            key = self.blobs.put(note)
            with self.db.connect() as connection:
                known = origin is not None and connection.scalar(
                    select(JOURNAL.c.id).where(JOURNAL.c.origin == origin)
                )
                if known:
                    return None
                row = {
                    "blob_key": key,
                    "size": len(note),
                    "source": source[:200],
                    "envelope_to": [],
                    "received_at": self.clock.now(),
                    "state": JOURNAL_QUARANTINED,
                    "reason": reason[:2000],
                    "attempts": 1,
                    "acknowledge": False,
                    "origin": origin,
                }
                return _insert(connection, row)
        except Exception as error:
            raise StorageFailure(explain(error, self.blobs)) from error


# One statement, the row as its parameters: SQLAlchemy compiles it once per set of columns and
# caches it. `insert(JOURNAL).values(row)` was a new statement per message, its cache key and
# its columns worked out again each time: an eighth of the SMTP listener's interpreter time
# under load (issue 19).
_INSERT_ROW = insert(JOURNAL)


def _insert(connection: Connection, row: dict[str, object]) -> int:
    """The row added to the journal; its id."""
    added = connection.execute(_INSERT_ROW, row)
    key = added.inserted_primary_key
    assert key is not None  # an INSERT of one row always has one
    found: int = key[0]
    return found
