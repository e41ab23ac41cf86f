"""Engines and sessions: SQLite in WAL mode by default, PostgreSQL with the same code.

The ORM's sessions are made on first use: the journal writes with Core (`Database.connect`), so
`ticketd ingest`, an MTA pipe started once a message, never imports the ORM (issue 19).
"""

from __future__ import annotations

import os
import re
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event

from storage.turns import Turns

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the SMTP listener append to the journal while the worker commits a ticket;
    # the busy timeout makes a writer wait for the other instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    # Text a retention pass or an erasure replaced must not live on in free pages (issue 16).
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def _keep_private(path: Path) -> None:
    """The database holds customers' personal data: only the daemon's own user may read it.
    SQLite creates the file with the process umask (0644 under the usual 022) and gives its
    -wal and -shm files the database's mode, so the three are closed to group and others on
    every connect; an existing installation is corrected on its next start."""
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            mode = stat.S_IMODE(name.stat().st_mode)
            if mode & 0o077:
                os.chmod(name, mode & 0o700)
        except FileNotFoundError:
            continue
        except PermissionError:
            # Another user's database, opened read-only by an admin: not ours to change.
            continue


def _sqlite_begin_immediate(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling starts transactions lazily; taking the write lock
    # at BEGIN avoids "database is locked" upgrades in the middle of a transaction.
    dbapi_connection.isolation_level = None


def safe_url(url: str) -> str:
    """A database URL without its password, for output and logs."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL; None for another engine or an in-memory database."""
    if not url.startswith("sqlite"):
        return None
    path = url.removeprefix("sqlite:///")
    return Path(path) if path and path != ":memory:" else None


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = sqlite_file(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "connect", _sqlite_begin_immediate)
        if path is not None:
            database_file = path
            event.listen(engine, "connect", lambda *_: _keep_private(database_file))

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            # Readers take no write lock; a reader that never writes cannot deadlock a writer.
            readonly = conn.get_execution_options().get("ticketd_readonly", False)
            conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True)


class Database:
    """The engine and a session factory; `transaction()` is the unit of every change."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions: sessionmaker[Session] | None = None
        self._making = threading.Lock()
        # The writers of this process queue for SQLite's one write lock (storage/turns.py).
        self._turns = Turns() if self.is_sqlite else None

    @property
    def sessions(self) -> sessionmaker[Session]:
        """The session factory, for listeners on every session (storage/webhook_events.py);
        one for the life of the database, made on first use."""
        if self._sessions is None:
            with self._making:  # two threads asking first get the same factory
                if self._sessions is None:
                    # Here, not at the top: what only writes the journal never needs the ORM.
                    from sqlalchemy.orm import sessionmaker

                    self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        return self._sessions

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def transaction(self, rehearse: bool = False) -> Iterator[Session]:
        """Committed when the block ends, rolled back if it raises. A rehearsal (a command's
        `--dry-run`) does everything, locks included, and then rolls it all back."""
        with (
            self._writer_turn(),
            self.sessions() as session,
            session.begin() as transaction,
        ):
            yield session
            if rehearse:
                transaction.rollback()

    @contextmanager
    def connect(self, lasting: bool = True) -> Iterator[Connection]:
        """A transaction of SQLAlchemy Core, without the ORM (the journal's rows): committed
        when the block ends, rolled back if it raises; on SQLite it takes the write lock at
        BEGIN, as `transaction()` does.

        `lasting=False` is for what guards only against this process dying (the worker's mark
        of a try, ingest/worker_stops.py): its commit is not synced to the disk. The kernel
        (SQLite) or the server (PostgreSQL) has it, so it outlives this process (a SIGKILL, the
        OOM killer); a power cut may take it, and the next lasting commit syncs it along. One
        disk sync fewer per message for the worker (issue 19)."""
        with self._writer_turn():
            if lasting:
                with self.engine.begin() as connection:
                    yield connection
                return
            with (
                self.engine.connect() as connection,
                self._unsynced(connection),
                connection.begin(),
            ):
                if not self.is_sqlite:
                    connection.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
                yield connection

    @contextmanager
    def _unsynced(self, connection: Connection) -> Iterator[None]:
        """SQLite: synchronous=NORMAL for the block (in WAL mode a commit then writes the log
        without syncing it). Set on the driver's connection, outside any transaction (SQLite
        refuses it inside one), and FULL again before the connection goes back to the pool."""
        if not self.is_sqlite:
            yield
            return
        driver = connection.connection.driver_connection
        assert driver is not None
        driver.execute("PRAGMA synchronous=NORMAL")
        try:
            yield
        finally:
            try:
                driver.execute("PRAGMA synchronous=FULL")
            except Exception:
                connection.invalidate()  # never back to the pool unsynced
                raise

    def writer_waiting(self) -> bool:
        """On SQLite, whether another writer of this process waits for the write lock."""
        return self._turns is not None and self._turns.wanted()

    @contextmanager
    def _writer_turn(self) -> Iterator[None]:
        if self._turns is None:  # PostgreSQL: many writers at once, row locks decide
            yield
        else:
            with self._turns.turn():
                yield

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A transaction that only reads: on SQLite it does not take the write lock."""
        with self.sessions() as session:
            session.connection(execution_options={"ticketd_readonly": True})
            try:
                yield session
            finally:
                session.rollback()

    @contextmanager
    def read_rows(self) -> Iterator[Connection]:
        """`read()` with Core, without the ORM's session: for a hot read of a few columns."""
        with self.engine.connect() as connection:
            connection.execution_options(ticketd_readonly=True)
            try:
                yield connection
            finally:
                connection.rollback()

    def forget(self) -> bool:
        """After removing personal data: on SQLite, move the write-ahead log into the database
        and empty it, so the old page images (the text before it was removed) are not left in
        the `-wal` file. PostgreSQL's dead rows go with (auto)vacuum. False when another
        connection kept the log busy; the next pass tries again."""
        if not self.is_sqlite:
            return True
        connection = self.engine.raw_connection()  # no BEGIN: a checkpoint runs outside one
        try:
            cursor = connection.cursor()
            busy = cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            cursor.close()
        finally:
            connection.close()
        return not busy

    def dispose(self) -> None:
        self.engine.dispose()
