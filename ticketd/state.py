"""Opening ticketd's state from a configuration: folders, database schema, blob store."""

from __future__ import annotations

from dataclasses import dataclass

from domain.clock import Clock, SystemClock
from domain.config import Config
from domain.errors import Permanent
from domain.templating import Templates
from ingest.isolation import IsolatedCall
from ingest.journal import Journal
from ingest.worker import Worker, prepare_stored
from storage import sealed_rows
from storage.blobs import BlobStore
from storage.db import Database, safe_url, sqlite_file
from storage.key_registry import forget, missing_keys, register
from storage.keyring import Keyring
from storage.schema_version import at_head
from storage.sealed_blobs import SealedBlobStore
from storage.webhook_events import Endpoint, EventRecorder


@dataclass
class State:
    config: Config
    clock: Clock
    db: Database
    blobs: BlobStore
    templates: Templates
    # The parsing process (ingest/isolation.py): the daemon's, and that of the commands that
    # process mail (`isolate`); without it, a worker parses in this process (tests).
    isolation: IsolatedCall | None = None
    # Writes the events `[[webhooks]]` ask for with each change (storage/webhook_events.py).
    events: EventRecorder | None = None

    def apply_webhooks(self) -> None:
        """The endpoints of the current configuration (at start, and after a SIGHUP)."""
        if self.events is not None:
            self.events.endpoints = webhook_endpoints(self.config)

    @property
    def journal(self) -> Journal:
        return Journal(self.db, self.blobs, self.clock)

    @property
    def worker(self) -> Worker:
        return Worker(self.db, self.blobs, self.config, self.clock, self.templates, self.isolation)

    def isolate(self) -> None:
        """Parse in a child process, stopped past [limits] max_parse_seconds, as the daemon
        does: a command that processes mail (`ingest --process`, `import`, `quarantine retry
        --now`) then returns in time whatever a message does to the parser, and the message
        is quarantined with the reason."""
        if self.isolation is None:
            self.isolation = IsolatedCall(prepare_stored)

    def close(self) -> None:
        if self.isolation is not None:
            self.isolation.close()
            self.worker.release_ahead()  # a row sent ahead and not tried: not a stop
        self.db.dispose()


def open_state(config: Config, clock: Clock | None = None, migrate: bool = True) -> State:
    """Create what a fresh state folder lacks; bring the schema up to date when asked."""
    config.storage.blobs.mkdir(parents=True, exist_ok=True)
    db = Database(config.storage.database)
    if migrate and not at_head(db):
        # Alembic and its scripts only when there is something to migrate: loading them to
        # learn that nothing is was a tenth of every command's start-up (issue 19).
        from storage.migrate import upgrade

        upgrade(db)
    clock = clock or SystemClock()
    keyring = Keyring.open(config.kyc.key_file)
    # The outbox's bytes too: a notification attaches the customer's documents.
    sealed_rows.bind(db.engine, keyring)
    state = State(
        config=config,
        clock=clock,
        db=db,
        # Sealed with the identity-document key: raw messages carry documents inside them.
        blobs=SealedBlobStore(config.storage.blobs, keyring),
        templates=Templates(config.templates_dir),
        events=EventRecorder(db.sessions, clock.now),
    )
    state.apply_webhooks()
    return state


def webhook_endpoints(config: Config) -> tuple[Endpoint, ...]:
    return tuple(Endpoint(hook.url, frozenset(hook.events)) for hook in config.webhooks)


class DatabaseMissing(Permanent):
    """The configured database does not exist or holds no ticketd schema: a read-only command
    says so, and creates nothing."""


@dataclass
class ReadState:
    """What the read-only commands (`tickets list`, `journal list`, `stats`, ...) get: the
    database, nothing else opened, nothing created (no folder, no key file, no schema)."""

    config: Config
    clock: Clock
    db: Database

    def close(self) -> None:
        self.db.dispose()


def open_for_reading(config: Config, clock: Clock | None = None) -> ReadState:
    """The database as it is; DatabaseMissing (naming it) when there is none to read."""
    url = config.storage.database
    shown = safe_url(url)
    path = sqlite_file(url)
    if path is not None and not path.is_file():
        raise DatabaseMissing(
            f"no database at {path}: storage.database names a file that does not exist "
            "(`ticketd run` or `ticketd db upgrade` creates it)"
        )
    db = Database(url)
    try:
        problem = None if at_head(db) else _schema_problem(db)
    except Exception as error:
        db.dispose()
        raise DatabaseMissing(f"cannot read the database {shown}: {_first_line(error)}") from error
    if problem is not None:
        db.dispose()
        raise DatabaseMissing(f"the database {shown} cannot be read: {problem}")
    return ReadState(config=config, clock=clock or SystemClock(), db=db)


def _first_line(error: Exception) -> str:
    lines = str(getattr(error, "orig", None) or error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def key_problem(state: State, by: str) -> str | None:
    """Why this process must not accept mail with its key file: the key ids the database uses
    that the file lacks (storage/key_registry.py). When there is none, this process's write
    key is registered (`by` says who), so a later daemon with another key file refuses."""
    blobs = state.blobs
    if not isinstance(blobs, SealedBlobStore):
        return None
    path = blobs.keyring.describe()
    missing = missing_keys(state.db, blobs)
    if not missing:
        write = blobs.keyring.data.write
        added = register(state.db, write, state.clock.now(), f"{by} {path}")
        # Compared again: a daemon with another key file that registered at the same moment.
        # Then both refuse, each taking back its own key (it sealed nothing yet).
        missing = missing_keys(state.db, blobs)
        if missing and added:
            forget(state.db, [write])
    if not missing:
        return None
    return (
        f"the key file {path} does not hold the key(s) {', '.join(missing)} that the "
        "database uses (sealed by another daemon's key file?): give every daemon of this "
        f"database the same key file, e.g. a copy at {path}, then start again"
    )


def _schema_problem(db: Database) -> str | None:
    from storage.migrate import schema_problem  # Alembic only for a database not at HEAD

    return schema_problem(db)
