"""The runner: one message through STEPS in one transaction, and the one error policy.

The worker (ingest/worker.py) claims a journal row, counts the try, and prepares the message
outside any transaction (ingest/prepare.py). The runner then opens the transaction, walks
`STEPS` (ingest/pipeline.py) in a savepoint, and writes what became of the message into its
journal row in the same transaction, with the name of the step that decided it (`journal.step`,
shown by `quarantine list` and `journal list`):

- a `Decision` ends the walk: a ticket (`done`) or a quarantine (`quarantined`) keeps what the
  steps wrote; an ignore (`ignored`) keeps none of it, only the reason;
- `Ignored` raised below a step is an ignore decision of that step;
- `Temporary` (and the database going away, SQLAlchemy's OperationalError) rolls everything
  back and propagates: the message stays pending, the daemon backs off. A virus scanner that
  cannot be reached becomes `ScanWait`, which the worker writes on the pending row;
- anything else, a `Permanent` error or a bug, quarantines the message with the reason (the
  error's own, or its type and where it was raised) and keeps nothing the steps wrote.
`ticketd quarantine retry` sets a quarantined row pending again after a fix.
"""

from __future__ import annotations

import contextlib
import logging
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from domain.clock import Clock
from domain.config import Config
from domain.context import Context
from domain.errors import Ignored, Permanent, Temporary
from domain.message import ParsedMessage
from domain.templating import Templates
from ingest.classify import untrusted_sender
from ingest.pipeline import IGNORE, QUARANTINE, STEPS, Decision, Step, Work
from ingest.prepare import Failed, Prepared
from ingest.virus_scan import WAITING_FOR_SCANNER, ScannerUnavailable, ScannerUnreachable
from storage.db import Database
from storage.direct_insert import write_pending
from storage.documents import DocumentStore
from storage.journal_table import JOURNAL
from storage.models import (
    JOURNAL_DONE,
    JOURNAL_IGNORED,
    JOURNAL_PENDING,
    JOURNAL_QUARANTINED,
    JournalEntry,
)

log = logging.getLogger("ticketd.worker")


# Built once: building the statement per message cost more than running it. The pending rows
# of a run are read at its start in one query (`together`); `apply` reads its one row so.
_PENDING_ENTRIES = (
    select(JournalEntry)
    .where(
        JournalEntry.id.in_(bindparam("ids", expanding=True)),
        JournalEntry.state == JOURNAL_PENDING,
    )
    .with_for_update()
)


# The outcome of a message on its journal row: a statement of its own, not a flush of the unit
# of work (which cost a tenth of an import's time with the savepoint it needed; issue 19).
_OUTCOME = (
    update(JOURNAL)
    .where(JOURNAL.c.id == bindparam("entry_id"))
    .values(
        state=bindparam("state"),
        reason=bindparam("reason"),
        step=bindparam("step"),
        processed_at=bindparam("processed_at"),
        # What the sender sent, for the duplicate check of the messages after it: in the
        # row's one UPDATE (a flush of its own before, per message; issue 19). Kept as it
        # was when the message was never parsed.
        content_hash=func.coalesce(bindparam("content_hash"), JOURNAL.c.content_hash),
    )
)


def _write_outcome(
    session: Session,
    entry: JournalEntry,
    result: Processed,
    at: datetime,
    content_hash: str | None,
) -> None:
    """The row's state, reason, step and time, and the content hash of the message when it
    was parsed, written now; the loaded entry is told the same values as committed ones, so a
    later read in this transaction sees them and no flush writes them again (the row is the
    result's: a rolled-back walk left the entry expired)."""
    values = {
        "state": result.state,
        "reason": result.detail,
        "step": result.step,
        "processed_at": at,
    }
    session.connection().execute(
        _OUTCOME, {"entry_id": result.journal_id, "content_hash": content_hash, **values}
    )
    if content_hash is not None:
        values["content_hash"] = content_hash
    for key, value in values.items():
        set_committed_value(entry, key, value)


class ScanWait(Temporary):
    """clamd is configured but unreachable: the message stays pending; try again later."""

    def __init__(self, journal_id: int, error: ScannerUnavailable) -> None:
        super().__init__(f"message {journal_id}: {WAITING_FOR_SCANNER}: {error}")
        self.journal_id = journal_id
        self.error = error


@dataclass(frozen=True)
class Processed:
    journal_id: int
    state: str
    detail: str
    # The identifiers an admin follows one message by, in the log and the metrics.
    message_id: str | None = None
    ticket_ref: str | None = None
    # Landed on a ticket from a sender we do not answer (classify.untrusted_sender's label).
    untrusted: str | None = None
    # The step that decided (STEPS or ingest/prepare.PREPARE_STEPS); None when no step ran.
    step: str | None = None


@dataclass(frozen=True)
class Ending:
    """Where the walk stopped: the step, and its decision or the error it raised."""

    step: str
    decision: Decision | None = None
    error: Exception | None = None


def walk(ctx: Context, work: Work, steps: Sequence[Step] = STEPS) -> Ending:
    """The steps in order until one decides; a temporary error propagates."""
    for step in steps:
        try:
            result = step.run(ctx, work)
        except (Temporary, OperationalError):
            raise
        except Ignored as ignored:
            return Ending(step.name, Decision.ignore(str(ignored)))
        except Exception as error:
            return Ending(step.name, error=error)
        if isinstance(result, Decision):
            return Ending(step.name, result)
        work = result
    return Ending(steps[-1].name, error=RuntimeError("the pipeline ended without a decision"))


def describe(error: BaseException) -> str:
    """A quarantine reason: the error's own, else its type, text and where it was raised."""
    if isinstance(error, Permanent):
        own = error.quarantine_reason()
        if own is not None:
            return own[:2000]
    frames = traceback.extract_tb(error.__traceback__)
    where = f" at {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else ""
    return f"{type(error).__name__}: {error}{where}"[:2000]


def _log_processed(result: Processed) -> None:
    log.log(
        logging.WARNING if result.state == JOURNAL_QUARANTINED else logging.INFO,
        "journal=%s message_id=%s ticket=%s %s: %s",
        result.journal_id,
        result.message_id or "-",
        result.ticket_ref or "-",
        result.state,
        result.detail,
    )


def _decided(journal_id: int, ending: Ending, message: ParsedMessage | None) -> Processed:
    message_id = message.message_id if message is not None else None
    decision = ending.decision
    if decision is None or message is None:
        assert ending.error is not None
        detail = describe(ending.error)
        return Processed(journal_id, JOURNAL_QUARANTINED, detail, message_id, step=ending.step)
    if decision.kind == IGNORE:
        return Processed(journal_id, JOURNAL_IGNORED, decision.note, message_id, step=ending.step)
    ref = decision.ticket_ref
    detail = f"ticket {ref}: {decision.note}" if ref else decision.note
    if message.auth.results:  # what we believe of the sender, for admins
        detail += f"; sender: {message.auth.describe()}"
    if message.spam is not None:
        detail += f"; {message.spam.describe()}"
    untrusted = untrusted_sender(message) if ref else None
    return Processed(
        journal_id,
        JOURNAL_QUARANTINED if decision.kind == QUARANTINE else JOURNAL_DONE,
        detail,
        message_id,
        ref or None,
        untrusted[0] if untrusted else None,
        ending.step,
    )


class Runner:
    """The transaction of one message and the error policy (the module's docstring)."""

    def __init__(
        self,
        db: Database,
        config: Config,
        clock: Clock,
        templates: Templates,
        documents: Callable[[], DocumentStore],
    ) -> None:
        self.db = db
        self.config = config
        self.clock = clock
        self.templates = templates
        self.documents = documents

    def apply(self, entry_id: int, prepared: Prepared | Failed) -> Processed | None:
        """What became of the pending row `entry_id`, committed; None when it is no longer
        pending. The caller has claimed the row (ingest/worker.py): a row lock someone else
        holds is a claim passing over it, waited for, never skipped (which would leave the
        row pending with this try's mark, counted as a stop)."""
        with self.db.transaction() as session:
            result = self._apply_in(session, entry_id, prepared)
        if result is not None:
            _log_processed(result)
        return result

    @contextlib.contextmanager
    def together(
        self, entry_ids: Sequence[int]
    ) -> Iterator[Callable[[int, Prepared | Failed], Processed | None]]:
        """`apply` for several messages in one transaction and one commit (issue 19): the
        block calls what it is given once a message. Each message's steps run in a savepoint
        of their own (`_run`), so an error that escapes one (a temporary failure, the worker's
        to handle) takes back only that message's writes, and the block may still commit the
        others; an error that leaves the block rolls all of them back. Logged once committed.

        `entry_ids` are the rows the block may apply, read in one query as the transaction
        begins (a query each was a fourteenth of an import): the transaction holds the write
        lock from its start, so no other writer changes them meanwhile (on PostgreSQL the rows
        are locked, as `apply` locks its one)."""
        committed: list[Processed] = []
        with self.db.transaction() as session:
            pending = {
                entry.id: entry
                for entry in session.scalars(_PENDING_ENTRIES, {"ids": list(entry_ids)})
            }

            def apply_one(entry_id: int, prepared: Prepared | Failed) -> Processed | None:
                # No savepoint of its own: the walk's (in _run) holds every write of the
                # message but the journal row's outcome, written last by one statement.
                entry = pending.pop(entry_id, None)
                result = None if entry is None else self._apply_to(session, entry, prepared)
                if result is not None:
                    committed.append(result)
                return result

            yield apply_one
        for result in committed:
            _log_processed(result)

    def _apply_in(
        self, session: Session, entry_id: int, prepared: Prepared | Failed
    ) -> Processed | None:
        entry = session.scalar(_PENDING_ENTRIES, {"ids": [entry_id]})
        return None if entry is None else self._apply_to(session, entry, prepared)

    def _apply_to(
        self, session: Session, entry: JournalEntry, prepared: Prepared | Failed
    ) -> Processed:
        """What became of the pending row `entry` (read in this transaction), written."""
        result = self._run(session, entry, prepared)
        parsed = prepared.message if isinstance(prepared, Prepared) else None
        content_hash = parsed.content_hash if parsed is not None else None
        _write_outcome(session, entry, result, self.clock.now(), content_hash)
        return result

    def _run(self, session: Session, entry: JournalEntry, prepared: Prepared | Failed) -> Processed:
        if isinstance(prepared, Failed):
            error = prepared.error
            if isinstance(error, ScannerUnreachable):
                raise ScanWait(entry.id, error)  # rolls back: the row stays as it was
            if isinstance(error, (Temporary, OperationalError)):
                raise error
            return _decided(entry.id, Ending(prepared.step, error=error), None)
        entry_id = entry.id  # a rolled-back walk leaves the entry expired
        ctx = Context(session, self.config, self.clock, self.templates, self.documents)
        work = Work(entry, prepared.message, prepared.texts, prepared.scan, prepared.checks)
        savepoint = session.begin_nested()
        try:
            ending = walk(ctx, work)
        except BaseException:
            savepoint.rollback()
            raise
        decision = ending.decision
        if decision is not None and decision.kind != IGNORE:
            write_pending(session)  # the savepoint's own flush then has nothing to write
            savepoint.commit()
        else:
            savepoint.rollback()  # an ignored or failed message leaves nothing of the steps
        return _decided(entry_id, ending, prepared.message)
