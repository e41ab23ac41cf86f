"""Opening ticketd's state from a configuration: folders, database schema, blob store."""

from __future__ import annotations

from dataclasses import dataclass

from ingest.isolation import IsolatedCall
from ingest.journal import Journal
from ingest.worker import Worker
from outbound.templating import Templates
from storage.blobs import BlobStore
from storage.db import Database
from storage.keyring import Keyring
from storage.migrate import is_current, upgrade
from storage.sealed_blobs import SealedBlobStore
from ticketd.clock import Clock, SystemClock
from ticketd.config import Config


@dataclass
class State:
    config: Config
    clock: Clock
    db: Database
    blobs: BlobStore
    templates: Templates
    # The daemon's parsing process (ingest/isolation.py); commands parse in their own process.
    isolation: IsolatedCall | None = None

    @property
    def journal(self) -> Journal:
        return Journal(self.db, self.blobs, self.clock)

    @property
    def worker(self) -> Worker:
        return Worker(self.db, self.blobs, self.config, self.clock, self.templates, self.isolation)

    def close(self) -> None:
        if self.isolation is not None:
            self.isolation.close()
        self.db.dispose()


def open_state(config: Config, clock: Clock | None = None, migrate: bool = True) -> State:
    """Create what a fresh state folder lacks; bring the schema up to date when asked."""
    config.storage.blobs.mkdir(parents=True, exist_ok=True)
    db = Database(config.storage.database)
    if migrate and not is_current(db):
        upgrade(db)
    return State(
        config=config,
        clock=clock or SystemClock(),
        db=db,
        # Sealed with the identity-document key: raw messages carry documents inside them.
        blobs=SealedBlobStore(config.storage.blobs, Keyring.open(config.kyc.key_file)),
        templates=Templates(config.templates_dir),
    )
