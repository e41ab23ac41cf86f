"""Where each IMAP folder stands: (UIDVALIDITY, highest UID done), and who may poll it.

A checkpoint moves only after the messages up to it are journaled *and* marked, moved or
deleted on the server, so a crash anywhere re-fetches at most one batch, which the journal
recognises by origin or content. On PostgreSQL several daemons share the database; a
session-level advisory lock per mailbox lets exactly one of them poll it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import Connection, select, text

from domain.clock import Clock
from storage.db import Database
from storage.models import ImapCheckpoint


@dataclass(frozen=True)
class Checkpoint:
    uidvalidity: int
    last_uid: int
    quiet_below_uid: int


class Checkpoints:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    def load(self, mailbox: str) -> Checkpoint | None:
        with self.db.read() as session:
            row = session.scalar(select(ImapCheckpoint).where(ImapCheckpoint.mailbox == mailbox))
            if row is None:
                return None
            return Checkpoint(row.uidvalidity, row.last_uid, row.quiet_below_uid)

    def save(self, mailbox: str, account: str, checkpoint: Checkpoint) -> None:
        with self.db.transaction() as session:
            row = session.scalar(select(ImapCheckpoint).where(ImapCheckpoint.mailbox == mailbox))
            if row is None:
                row = ImapCheckpoint(mailbox=mailbox)
                session.add(row)
            row.account = account[:200]
            row.uidvalidity = checkpoint.uidvalidity
            row.last_uid = checkpoint.last_uid
            row.quiet_below_uid = checkpoint.quiet_below_uid
            row.updated_at = self.clock.now()


def lock_key(mailbox: str) -> int:
    """A signed 64-bit key for pg_advisory_lock, stable across daemons and restarts."""
    digest = hashlib.sha256(f"ticketd-imap:{mailbox}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class MailboxLock:
    """Only one daemon polls a mailbox. SQLite has one daemon, so the lock is always ours; on
    PostgreSQL it is an advisory lock held by a dedicated connection, released when that
    connection closes (also when the daemon dies)."""

    def __init__(self, db: Database, mailbox: str) -> None:
        self.db = db
        self.key = lock_key(mailbox)
        self._connection: Connection | None = None

    def acquire(self) -> bool:
        if self.db.is_sqlite:
            return True
        if self._connection is None:
            self._connection = self.db.engine.connect()
        got = self._connection.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key})
        self._connection.commit()  # end the implicit transaction; the lock is session-level
        if not got:
            self._drop()
        return bool(got)

    def held(self) -> bool:
        """Whether the lock's connection still lives (a dropped one lost the lock)."""
        if self.db.is_sqlite:
            return True
        if self._connection is None:
            return False
        try:
            self._connection.scalar(text("SELECT 1"))
            self._connection.commit()
            return True
        except Exception:
            self._drop(invalidate=True)
            return False

    def release(self) -> None:
        if self._connection is None:
            return
        try:
            # A pooled connection outlives close(): unlock explicitly, or the lock stays.
            self._connection.scalar(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
            self._connection.commit()
            self._drop()
        except Exception:
            self._drop(invalidate=True)  # a closed session frees its locks

    def _drop(self, invalidate: bool = False) -> None:
        if self._connection is not None:
            try:
                if invalidate:
                    self._connection.invalidate()
                self._connection.close()
            finally:
                self._connection = None
