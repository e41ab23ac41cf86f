"""What `ticketd ingest` opens to make a message durable: the journal, nothing else.

The full state (ticketd/state.py) brings the worker, the pipeline, the templates and Alembic,
about half a second of imports that an MTA pipe would pay for every message. The journal needs
the database at the newest schema and the sealed blob store; like `open_state`, this creates a
missing state folder and brings an old schema up to date (a fresh desk's first mail may come
through the pipe). What it reads of the configuration is a `JournalConfig`: the few keys
domain/config_journal.py checks without the full validation, or `Config.journal`.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.clock import Clock, SystemClock
from domain.config_journal import JournalConfig
from ingest.journal import Journal
from storage.db import Database
from storage.keyring import Keyring
from storage.schema_version import at_head
from storage.sealed_blobs import SealedBlobStore


@dataclass
class JournalState:
    db: Database
    journal: Journal

    def close(self) -> None:
        self.db.dispose()


def open_journal(config: JournalConfig, clock: Clock | None = None) -> JournalState:
    config.blobs.mkdir(parents=True, exist_ok=True)
    db = Database(config.database)
    try:
        if not at_head(db):
            # Alembic only when there is something to migrate: rare, and then it is needed.
            from storage.migrate import upgrade

            upgrade(db)
        # Sealed with the identity-document key: raw messages carry documents inside them.
        blobs = SealedBlobStore(config.blobs, Keyring.open(config.key_file))
    except BaseException:
        db.dispose()
        raise
    return JournalState(db, Journal(db, blobs, clock or SystemClock()))
