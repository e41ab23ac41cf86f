"""The worker: claims journal rows and runs the pipeline, one transaction per message.

It owns the error policy: `Ignore` ends a message as ignored with its reason; a database that
is unreachable is temporary (the row stays pending, the worker backs off); any other error
quarantines the message with the error, where `ticketd quarantine retry` can take it up again.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from ingest.pipeline import Context, Ignore, run_pipeline
from outbound.templating import Templates
from storage.blobs import BlobStore
from storage.db import Database
from storage.models import (
    JOURNAL_DONE,
    JOURNAL_IGNORED,
    JOURNAL_PENDING,
    JOURNAL_QUARANTINED,
    JournalEntry,
)
from ticketd.clock import Clock
from ticketd.config import Config

log = logging.getLogger("ticketd.worker")


@dataclass(frozen=True)
class Processed:
    journal_id: int
    state: str
    detail: str


class Worker:
    def __init__(
        self, db: Database, blobs: BlobStore, config: Config, clock: Clock, templates: Templates
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.config = config
        self.clock = clock
        self.templates = templates

    def process_next(self) -> Processed | None:
        """Process one pending message; None when there is none. Raises OperationalError."""
        with self.db.transaction() as session:
            entry = session.scalar(
                select(JournalEntry)
                .where(JournalEntry.state == JOURNAL_PENDING)
                .order_by(JournalEntry.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            if entry is None:
                return None
            entry_id = entry.id
            try:
                with session.begin_nested():
                    raw = self.blobs.get(entry.blob_key)
                    ctx = Context(session, self.config, self.clock, self.templates)
                    outcome = run_pipeline(ctx, entry, raw)
                result = Processed(entry_id, JOURNAL_DONE, f"ticket {outcome.ticket_ref}: "
                                   f"{outcome.note}")
                entry.state, entry.reason = JOURNAL_DONE, result.detail
            except Ignore as ignored:
                result = Processed(entry_id, JOURNAL_IGNORED, str(ignored))
                entry.state, entry.reason = JOURNAL_IGNORED, str(ignored)
            except OperationalError:
                raise
            except Exception as error:
                reason = _describe(error)
                result = Processed(entry_id, JOURNAL_QUARANTINED, reason)
                entry.state, entry.reason = JOURNAL_QUARANTINED, reason
                log.warning("message %s quarantined: %s", entry_id, reason)
            entry.attempts += 1
            entry.processed_at = self.clock.now()
        log.info("message %s %s: %s", result.journal_id, result.state, result.detail)
        return result

    def drain(self, limit: int | None = None) -> list[Processed]:
        """Process until nothing is pending (or `limit` messages); for commands and tests."""
        done: list[Processed] = []
        while limit is None or len(done) < limit:
            result = self.process_next()
            if result is None:
                break
            done.append(result)
        return done


def _describe(error: BaseException) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    where = f" at {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else ""
    return f"{type(error).__name__}: {error}{where}"[:2000]
