"""The worker: claims journal rows and runs the pipeline, one transaction per message.

It owns the error policy: `Ignore` ends a message as ignored with its reason; a database that
is unreachable is temporary (the row stays pending, the worker backs off); any other error
quarantines the message with the error, where `ticketd quarantine retry` can take it up again.

The virus scanner (ingest/virus_step.py) runs with the parse, before the write lock. A clamd that
cannot be reached is temporary like the database: the row stays pending with "waiting for the
virus scanner" as its reason (for `ticketd health`), nothing of it is stored, and `ScanWait`
tells the caller to back off; the messages behind it wait their turn, in order. A clamd that
answers ERROR (a file over its StreamMaxLength) would answer the same again: that message is
quarantined as not scanned, never treated as clean.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass, replace

from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from domain.clock import Clock
from domain.config import Config
from domain.message import ParsedMessage
from domain.templating import Templates
from ingest.classify import untrusted_sender
from ingest.documents_step import ContentChecks, check_contents
from ingest.isolation import CallTimedOut, ChildDied, Interrupted, IsolatedCall
from ingest.mime_shape import ShapeLimits
from ingest.pipeline import (
    Context,
    Ignore,
    Outcome,
    run_pipeline,
    step_believe,
    step_parse,
    step_spam,
    step_verify,
)
from ingest.spam import Session
from ingest.verify import envelope_of
from ingest.virus_scan import WAITING_FOR_SCANNER, ScannerUnavailable
from ingest.virus_step import ScanReport, scan_attachments
from ingest.worker_stops import give_up, history_of, mark_started, stops_so_far, unmark
from storage.blobs import BlobStore
from storage.db import Database
from storage.documents import DocumentStore
from storage.models import (
    JOURNAL_DONE,
    JOURNAL_IGNORED,
    JOURNAL_PENDING,
    JOURNAL_QUARANTINED,
    JournalEntry,
)

log = logging.getLogger("ticketd.worker")


class ScanWait(Exception):
    """clamd is configured but unreachable: the message stays pending; try again later."""

    def __init__(self, journal_id: int, error: ScannerUnavailable) -> None:
        super().__init__(f"message {journal_id}: {WAITING_FOR_SCANNER}: {error}")
        self.journal_id = journal_id
        self.error = error


@dataclass(frozen=True)
class Arrived:
    """What the journal row says of a message's arrival, read before the message is claimed."""

    blob_key: str
    source: str
    envelope_from: str | None
    envelope_to: tuple[str, ...] = ()

    @classmethod
    def of(cls, entry: JournalEntry) -> Arrived:
        return cls(entry.blob_key, entry.source, entry.envelope_from, tuple(entry.envelope_to))


@dataclass(frozen=True)
class Prepared:
    message: ParsedMessage
    scan: ScanReport | None
    # The slow checks of the files that may be identity documents, made here rather than
    # inside the write transaction (ingest/documents_step.py).
    checks: ContentChecks | None = None


class ParseTooSlow(Exception):
    """The parse and checks of one message ran past [limits] max_parse_seconds."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"the message took longer than [limits] max_parse_seconds ({seconds:g} s) to parse"
            " and check; the parse was stopped"
        )


def prepare_message(config: Config, raw: bytes, arrived: Arrived) -> Prepared | Exception:
    """Parse, verify the sender and scan: the slow work that needs no database. Module-level,
    so that the daemon can run it in its parsing process (ingest/isolation.py)."""
    try:
        limits = config.limits
        shape = ShapeLimits(parts=limits.max_mime_parts, depth=limits.max_mime_depth)
        own = step_verify(config, raw, arrived.source, arrived.envelope_from)
        message = step_believe(config, step_parse(raw, shape, arrived.envelope_from), own)
        message = replace(message, spam=step_spam(config, raw, message, _session(arrived, raw)))
        scan = scan_attachments(config, message)
        infected = scan is not None and scan.infected
        checks = None if infected else check_contents(config.kyc, message)
        return Prepared(message, scan, checks)
    except Exception as error:  # the worker's policy decides, in _process
        return error


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


def _session(arrived: Arrived, raw: bytes) -> Session:
    """What the spam filter is told of the SMTP session (only the listener's mail has one)."""
    envelope = envelope_of(arrived.source, arrived.envelope_from, raw)
    if envelope is None:
        return Session(mail_from=arrived.envelope_from or "", rcpt=arrived.envelope_to)
    return Session(envelope.ip, envelope.helo, envelope.mail_from, arrived.envelope_to)


def _processed(journal_id: int, outcome: Outcome, message: ParsedMessage) -> Processed:
    detail = f"ticket {outcome.ticket_ref}: {outcome.note}" if outcome.ticket_ref else outcome.note
    if message.auth.results:  # what we believe of the sender, for admins
        detail += f"; sender: {message.auth.describe()}"
    if message.spam is not None:
        detail += f"; {message.spam.describe()}"
    untrusted = untrusted_sender(message) if outcome.ticket_ref else None
    return Processed(
        journal_id,
        JOURNAL_QUARANTINED if outcome.quarantine else JOURNAL_DONE,
        detail,
        message.message_id,
        outcome.ticket_ref or None,
        untrusted[0] if untrusted else None,
    )


class Worker:
    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        config: Config,
        clock: Clock,
        templates: Templates,
        isolation: IsolatedCall | None = None,
    ) -> None:
        # isolation: where the daemon parses (a child process, with a time limit); commands
        # and tests without it parse in this process.
        self.isolation = isolation
        self.db = db
        self.blobs = blobs
        self.config = config
        self.clock = clock
        self.templates = templates
        self._documents: DocumentStore | None = None

    def documents(self) -> DocumentStore:
        """The identity-document store, its key read (or created) the first time it is needed."""
        if self._documents is None:
            self._documents = DocumentStore.open(self.blobs, self.config.kyc.key_file)
        return self._documents

    def process_next(self) -> Processed | None:
        """Process one pending message; None when there is none. Raises OperationalError, and
        ScanWait when the message needs the virus scanner and clamd cannot be reached."""
        if not self.db.is_sqlite:
            # PostgreSQL: claim first. SKIP LOCKED hands each worker a different row, and the
            # row lock blocks nobody else.
            return self._process(None, None)
        # SQLite has one writer at a time: parse before taking the write lock, so the SMTP
        # listener's journal inserts never wait for a parse.
        while True:
            with self.db.read() as session:
                entry = session.scalar(
                    select(JournalEntry)
                    .where(JournalEntry.state == JOURNAL_PENDING)
                    .order_by(JournalEntry.id)
                    .limit(1)
                )
                if entry is None:
                    return None
                entry_id, reason, arrived = entry.id, entry.reason, Arrived.of(entry)
            result = self._try(entry_id, reason, arrived)
            if result is not None:
                return result
            # Another process took that row between the read and the write: take the next.

    def _try(self, entry_id: int, reason: str | None, arrived: Arrived) -> Processed | None:
        """One try, counted before it starts (ingest/worker_stops.py)."""
        stops = stops_so_far(reason)
        if stops >= self.config.limits.max_worker_stops:
            given_up = give_up(self.db, self.clock, entry_id, stops)
            if given_up is None:
                return None
            log.warning("journal=%s quarantined: %s", entry_id, given_up)
            return Processed(entry_id, JOURNAL_QUARANTINED, given_up)
        if not mark_started(self.db, entry_id, stops, reason):
            return None
        prepared = self._prepare(arrived)
        if isinstance(prepared, Interrupted):
            unmark(self.db, entry_id, reason)
            return None
        if isinstance(prepared, ChildDied):
            # Counted like a daemon that died: the next try is the next stop's count.
            log.error("journal=%s stopped the parsing process: %s", entry_id, prepared)
            return Processed(entry_id, JOURNAL_PENDING, str(prepared))
        return self._process(entry_id, prepared, counted=True)

    def _prepare(self, arrived: Arrived) -> Prepared | Exception:
        """The slow work that needs no database (prepare_message), done before the SQLite
        write lock (DNS and clamd may take seconds); in the parsing process when there is one,
        stopped past [limits] max_parse_seconds."""
        config = self.config  # this worker's config: the one of the last SIGHUP
        try:
            raw = self.blobs.get(arrived.blob_key)
        except Exception as error:
            return error
        if self.isolation is None:
            return prepare_message(config, raw, arrived)
        seconds = config.limits.max_parse_seconds
        result = self.isolation.call(config, raw, arrived, timeout=seconds)
        if isinstance(result, CallTimedOut):
            return ParseTooSlow(seconds)
        assert isinstance(result, (Prepared, Exception)), result
        return result

    def _process(
        self, entry_id: int | None, prepared: Prepared | Exception | None, counted: bool = False
    ) -> Processed | None:
        try:
            return self._process_claimed(entry_id, prepared, counted)
        except ScanWait as wait:
            self._mark_waiting(wait)
            raise

    def _mark_waiting(self, wait: ScanWait) -> None:
        """The reason on the pending row, for `ticketd health` and `quarantine list` readers."""
        with self.db.transaction() as session:
            entry = session.get(JournalEntry, wait.journal_id)
            if entry is not None and entry.state == JOURNAL_PENDING:
                reason = f"{WAITING_FOR_SCANNER}: {wait.error}"
                if stops_so_far(entry.reason) and entry.attempts > 0:
                    entry.attempts -= 1  # the scanner stopped this try, not the message
                earlier = history_of(entry.reason)  # without the mark of this try
                if earlier and not earlier.startswith(WAITING_FOR_SCANNER):
                    reason += f" (before: {earlier})"  # a retried message keeps its history
                entry.reason = reason[:2000]

    def _process_claimed(
        self, entry_id: int | None, prepared: Prepared | Exception | None, counted: bool
    ) -> Processed | None:
        with self.db.transaction() as session:
            query = select(JournalEntry).where(JournalEntry.state == JOURNAL_PENDING)
            if entry_id is not None:
                query = query.where(JournalEntry.id == entry_id)
            entry = session.scalar(
                query.order_by(JournalEntry.id).limit(1).with_for_update(skip_locked=True)
            )
            if entry is None:
                return None
            if prepared is None:
                prepared = self._prepare(
                    Arrived(
                        entry.blob_key, entry.source, entry.envelope_from, tuple(entry.envelope_to)
                    )
                )
            if isinstance(prepared, ScannerUnavailable) and not prepared.reachable:
                raise ScanWait(entry.id, prepared)  # rolls back: the row stays as it was
            message_id = None if isinstance(prepared, Exception) else prepared.message.message_id
            try:
                if isinstance(prepared, Exception):
                    raise prepared
                with session.begin_nested():
                    ctx = Context(session, self.config, self.clock, self.templates, self.documents)
                    outcome = run_pipeline(
                        ctx, entry, prepared.message, prepared.scan, prepared.checks
                    )
                result = _processed(entry.id, outcome, prepared.message)
            except Ignore as ignored:
                result = Processed(entry.id, JOURNAL_IGNORED, str(ignored), message_id)
            except OperationalError:
                raise
            except ScannerUnavailable as error:  # clamd answered ERROR: not clean, not stored
                detail = f"not scanned: {error}; nothing of the message stored"
                result = Processed(entry.id, JOURNAL_QUARANTINED, detail, message_id)
            except Exception as error:
                result = Processed(entry.id, JOURNAL_QUARANTINED, _describe(error), message_id)
            entry.state, entry.reason = result.state, result.detail
            if not counted:  # PostgreSQL's claim-first path counts the try here
                entry.attempts += 1
            entry.processed_at = self.clock.now()
        log.log(
            logging.WARNING if result.state == JOURNAL_QUARANTINED else logging.INFO,
            "journal=%s message_id=%s ticket=%s %s: %s",
            result.journal_id,
            result.message_id or "-",
            result.ticket_ref or "-",
            result.state,
            result.detail,
        )
        return result

    def drain(self, limit: int | None = None) -> list[Processed]:
        """Process until nothing is pending (or `limit` messages); for commands and tests.

        A message that waits for the virus scanner ends the drain, listed as pending."""
        done: list[Processed] = []
        while limit is None or len(done) < limit:
            try:
                result = self.process_next()
            except ScanWait as wait:
                log.warning("%s", wait)
                detail = f"{WAITING_FOR_SCANNER}: {wait.error}"
                done.append(Processed(wait.journal_id, JOURNAL_PENDING, detail))
                break
            if result is None:
                break
            done.append(result)
        return done


def _describe(error: BaseException) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    where = f" at {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else ""
    return f"{type(error).__name__}: {error}{where}"[:2000]
