"""The worker: claims journal rows, counts each try, prepares the message, runs the runner.

Every engine takes the same three stages, so that nothing slow holds a lock and a kill counts:
1. claim the oldest pending row and write down the try in its own short transaction
   (ingest/worker_stops.py: a message that killed the worker is counted, and given up after
   `[limits] max_worker_stops`). On PostgreSQL the claim is `FOR UPDATE SKIP LOCKED` plus an
   advisory lock on the row, held by a connection of its own until the message is done:
   other workers skip the row, and a worker that dies drops the lock with its connection, so
   the next one takes the row and counts the stop;
2. prepare it outside any transaction (ingest/prepare.py: parse, verify, spam, virus scan,
   document checks), in the daemon's parsing process with a time limit when there is one;
3. hand it to the runner (ingest/runner.py), which owns the transaction and the error policy.

On SQLite the worker applies a run of messages in one transaction (`process_run`, up to
RUN_MESSAGES): the oldest pending rows, as long as none of them ever stopped the worker, their
tries written down together in one commit before any is tried. Each message runs in a savepoint
of its own, so a message the runner quarantines takes back only its own writes; one commit
(one disk sync) then ends them all. A message that kills the daemon costs each row of its run
one counted stop, and once counted each is tried alone, as below. The run ends early, the rows
not reached unmarked and first in line, when another writer of the process (the SMTP
listener's journal) waits for the write lock, once it has held the lock RUN_SECONDS (writers
of other processes have only SQLite's busy timeout), when the daemon stops, or when a message
after the first fails for a while (a temporary error: the others commit, it goes first next
time, and fails as a first message fails). With a parsing process the next PARSE_AHEAD messages
of the run are in the parsing process while the current one is applied, so a slow parse (a
large attachment) is made up by the quick ones behind it rather than waited for; a run cut
short leaves them there, marked, the first of the next run.

On SQLite with a parsing process, `process_next` (one message) parses ahead too: before it
applies a message it claims the next pending row, writes down that try too and sends it to the
parsing process, so the next parse runs on the second core while this message's transaction
runs here. Only rows that never stopped the worker are sent ahead, and only beside such a row:
a message that stops the daemon costs a row beside it at most one counted stop, and once
counted each is tried alone. A row sent ahead is taken next (the order stays the journal's);
when the message before it fails with a temporary error, or the daemon stops, its try is
forgotten (`release_ahead`). A run cut short for the listener leaves its next rows so.

A clamd that cannot be reached is temporary: the row stays pending with "waiting for the virus
scanner" as its reason (for `ticketd health`), nothing of it is stored, and `ScanWait` tells the
caller to back off; the messages behind it wait their turn, in order.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, bindparam, select, text
from sqlalchemy.exc import DBAPIError, OperationalError

from domain.clock import Clock
from domain.config import Config
from domain.errors import Permanent, Temporary
from domain.templating import Templates
from ingest.isolation import CallTimedOut, ChildDied, Interrupted, IsolatedCall
from ingest.prepare import Arrived, Failed, Prepared, prepare_stored
from ingest.runner import Processed, Runner, ScanWait
from ingest.virus_scan import WAITING_FOR_SCANNER
from ingest.worker_stops import (
    give_up,
    history_of,
    mark_all,
    mark_started,
    stops_so_far,
    unmark,
    unmark_all,
)
from storage.blobs import BlobStore
from storage.db import Database
from storage.documents import DocumentStore
from storage.journal_table import JOURNAL
from storage.models import JOURNAL_PENDING, JOURNAL_QUARANTINED, JournalEntry

__all__ = ["Arrived", "ParseTooSlow", "Processed", "ScanWait", "Worker", "prepare_stored"]

log = logging.getLogger("ticketd.worker")
# The first key of the advisory locks on journal rows (the second is the row's id); the IMAP
# mailbox locks use the one-key form, a separate key space.
JOURNAL_LOCK_CLASS = 0x6A726E6C  # "jrnl"
# Messages applied in one transaction at most (process_run): one commit, one disk sync and one
# write of the tries' marks for all of them, instead of one each (issue 19).
RUN_MESSAGES = 16
# ... and for this long at most before its next message: a run holds SQLite's write lock.
RUN_SECONDS = 0.5
# Messages of a run in the parsing process at once, the one being parsed and those queued
# behind it: one left the writer waiting for each slow parse, a sixth of an import (issue 19).
PARSE_AHEAD = 4


class ParseTooSlow(Permanent):
    """The parse and checks of one message ran past [limits] max_parse_seconds."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"the message took longer than [limits] max_parse_seconds ({seconds:g} s) to parse"
            " and check; the parse was stopped"
        )


@dataclass(frozen=True)
class Candidate:
    """A pending row this worker may try: what the row said when it was read."""

    entry_id: int
    reason: str | None
    arrived: Arrived


class _Taken:
    """What a try returns when the row went to another process meanwhile: take the next."""


TAKEN = _Taken()


class _Stop:
    """A message of a run failed for a while (ingest/runner.py's Temporary): end the run."""


STOP = _Stop()


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

    @property
    def runner(self) -> Runner:
        # Built from the attributes each time: a test may point a worker at another database.
        return Runner(self.db, self.config, self.clock, self.templates, self.documents)

    def documents(self) -> DocumentStore:
        """The identity-document store, its key read (or created) the first time it is needed."""
        if self._documents is None:
            self._documents = DocumentStore.open(self.blobs, self.config.kyc.key_file)
        return self._documents

    def process_next(self) -> Processed | None:
        """Process one pending message; None when there is none. Raises OperationalError (the
        database went away), and ScanWait when the message needs the virus scanner and clamd
        cannot be reached."""
        while True:
            ahead = self._ahead()
            if ahead is not None:
                result = self._apply(ahead, self._collect())
            else:
                with self._claim() as candidate:
                    if candidate is None:
                        return None
                    result = self._try(candidate)
            if not isinstance(result, _Taken):
                return result

    def process_run(self, most: int = RUN_MESSAGES) -> list[Processed]:
        """Process up to `most` pending messages in one transaction (the module's docstring);
        empty when none is pending. Raises as `process_next` does, for the first message."""
        if most > 1 and self.db.is_sqlite:
            run = self._claim_run(most)
            done = self._apply_run(run) if run else []
            if done:
                return done
        # A row that stopped the worker, PostgreSQL, a single row, or a run that came to
        # nothing (its rows taken by another process, the daemon stopping): one at a time.
        result = self.process_next()
        return [] if result is None else [result]

    def _claim_run(self, most: int) -> list[Candidate]:
        """The oldest pending rows, as long as none of them ever stopped the worker, their
        tries written down in one commit, after the rows sent ahead if there are any (marked
        already, they are the run's first); empty when no run of two is left so (the oldest
        stopped the worker: tried alone; a single row: process_next sends the next ahead)."""
        first = self._queued()[:most]
        after = first[-1].entry_id if first else 0
        with self.db.read_rows() as connection:
            rows = connection.execute(
                _OLDEST_RUN, {"after": after, "most": most - len(first)}
            ).all()
        run: list[Candidate] = []
        for row in rows:
            candidate = _candidate_of(row)
            if stops_so_far(candidate.reason):
                break
            run.append(candidate)
        if len(first) + len(run) < 2:
            return []
        marked = set(mark_all(self.db, [(c.entry_id, 0, c.reason) for c in run]))
        return first + [candidate for candidate in run if candidate.entry_id in marked]

    def _apply_run(self, run: list[Candidate]) -> list[Processed]:
        """Prepare and apply the marked rows of `run` in order in one transaction, each in a
        savepoint; the rows not reached are unmarked and stay pending, first in line."""
        done: list[Processed] = []
        reached = 0  # run[:reached] are decided in the transaction
        try:
            self._fill(run, 0)  # parsed while the transaction begins
            with self.runner.together([c.entry_id for c in run]) as apply:
                began = time.monotonic()
                while reached < len(run):
                    if reached and self._run_yields(began):
                        break  # another writer's turn; what the parsing process has is next
                    candidate = run[reached]
                    prepared = self._take(candidate)
                    if isinstance(prepared, Interrupted):
                        self.release_ahead()  # the parsing process is closed: never taken
                        break
                    if isinstance(prepared, Prepared):
                        self._fill(run, reached + 1)
                    result = self._apply_in_run(apply, candidate, prepared, reached == 0)
                    if isinstance(result, _Stop):
                        self._cancel_ahead()  # the order: this one goes first again
                        break
                    if isinstance(result, Processed):
                        done.append(result)
                    reached += 1
        except ScanWait as wait:
            self._cancel_ahead()
            self._end_run(run[1:])  # the first one's try counts, as in process_next
            self._mark_waiting(wait)
            raise
        except BaseException:
            self._cancel_ahead()
            self._end_run(run[1:])
            raise
        self._end_run(run[reached:])
        return done

    def _run_yields(self, began: float) -> bool:
        """Whether a run ends before its next message: another writer of this process waits
        for the lock, or the run has held it for RUN_SECONDS (the parses it waits for may be
        slow, and writers in other processes only have SQLite's busy timeout)."""
        return self.db.writer_waiting() or time.monotonic() - began > RUN_SECONDS

    def _apply_in_run(
        self,
        apply: Callable[[int, Prepared | Failed], Processed | None],
        candidate: Candidate,
        prepared: Prepared | Failed | ChildDied,
        first: bool,
    ) -> Processed | _Taken | _Stop:
        """One message of a run; STOP after a temporary failure of any but the first (whose
        failure propagates, as in process_next): the others already applied still commit."""
        if isinstance(prepared, ChildDied):
            return _child_died(candidate.entry_id, prepared)
        try:
            return apply(candidate.entry_id, prepared) or TAKEN
        except (Temporary, OperationalError):
            if first:
                raise
            return STOP

    def _fill(self, run: list[Candidate], reached: int) -> None:
        """Send the marked rows of a run after `reached` to the parsing process, to be taken
        by `_take`, until PARSE_AHEAD are there. Those there are the run's next, in order:
        `run[reached:]` begins with them (`_claim_run` puts the rows sent ahead first)."""
        if self.isolation is None:
            return
        seconds = self.config.limits.max_parse_seconds
        following = reached + len(self.isolation.queued)
        for candidate in run[following : reached + PARSE_AHEAD]:
            if not self.isolation.submit(
                candidate, self.config, self.blobs, candidate.arrived, timeout=seconds
            ):
                return

    def _take(self, candidate: Candidate) -> Prepared | Failed | Interrupted | ChildDied:
        """The prepared message of a row of a run: sent ahead, or prepared now."""
        if self._ahead() is candidate:
            return self._collect()
        return self._prepare(candidate.arrived)

    def _cancel_ahead(self) -> None:
        """Stop the parsing of the row sent ahead; its try is left to `_end_run`."""
        if self.isolation is not None:
            self.isolation.cancel()

    def _end_run(self, left: list[Candidate]) -> None:
        """Forget the tries of the rows of a run not reached: those in the parsing process
        stay sent ahead (taken next, as by process_next and the next run), the others are
        unmarked."""
        queued = self._queued()
        forgotten = [(c.entry_id, c.reason) for c in left if all(c is not q for q in queued)]
        with contextlib.suppress(OperationalError):  # then they count as a stop
            unmark_all(self.db, forgotten)

    @contextlib.contextmanager
    def _claim(self) -> Iterator[Candidate | None]:
        if not self.db.is_sqlite:
            with claim_postgresql(self.db) as candidate:
                yield candidate
            return
        yield self._oldest_pending()

    def _oldest_pending(self, after: int = 0) -> Candidate | None:
        # SQLite has one writer at a time and the write takes the lock: reading the row is
        # the claim; mark_started's update tells a row another process took first.
        with self.db.read_rows() as connection:
            row = connection.execute(_OLDEST_PENDING, {"after": after}).first()
            return None if row is None else _candidate_of(row)

    def _try(self, candidate: Candidate) -> Processed | _Taken | None:
        """One try, counted before it starts (ingest/worker_stops.py); TAKEN when the row was
        no longer pending, None when the daemon stopped in the middle."""
        entry_id, reason = candidate.entry_id, candidate.reason
        stops = stops_so_far(reason)
        if stops >= self.config.limits.max_worker_stops:
            given_up = give_up(self.db, self.clock, entry_id, stops)
            if given_up is None:
                return TAKEN
            log.warning("journal=%s quarantined: %s", entry_id, given_up)
            return Processed(entry_id, JOURNAL_QUARANTINED, given_up)
        if not mark_started(self.db, entry_id, stops, reason):
            return TAKEN
        return self._apply(candidate, self._prepare(candidate.arrived))

    def _apply(
        self, candidate: Candidate, prepared: Prepared | Failed | Interrupted | ChildDied
    ) -> Processed | _Taken | None:
        entry_id = candidate.entry_id
        if isinstance(prepared, Interrupted):
            unmark(self.db, entry_id, candidate.reason)
            return None
        if isinstance(prepared, ChildDied):
            return _child_died(entry_id, prepared)
        if isinstance(prepared, Prepared):
            # A message that failed before the transaction (a scanner that cannot be reached,
            # a parse past its limit) is decided at once: nothing to overlap, and a scanner
            # outage would send the next row ahead only to forget it at every retry.
            self._send_ahead(candidate)
        try:
            return self.runner.apply(entry_id, prepared) or TAKEN
        except ScanWait as wait:
            self.release_ahead()  # the messages behind it wait their turn, in order
            self._mark_waiting(wait)
            raise
        except BaseException:
            self.release_ahead()  # tried again, this message goes first
            raise

    def _prepare(self, arrived: Arrived) -> Prepared | Failed | Interrupted | ChildDied:
        """The slow work that needs no database (prepare_stored: the blob read, parsed,
        checked), done before any transaction (DNS and clamd may take seconds); in the parsing
        process when there is one, stopped past [limits] max_parse_seconds."""
        config = self.config  # this worker's config: the one of the last SIGHUP
        if self.isolation is None:
            return prepare_stored(config, self.blobs, arrived)
        seconds = config.limits.max_parse_seconds
        return _prepared(self.isolation.call(config, self.blobs, arrived, timeout=seconds))

    def _ahead(self) -> Candidate | None:
        """The first row sent ahead to the parsing process, whose try is written down."""
        if self.isolation is None:
            return None
        ahead = self.isolation.ahead
        return ahead if isinstance(ahead, Candidate) else None

    def _queued(self) -> list[Candidate]:
        """The rows sent ahead to the parsing process, in the order they are taken."""
        if self.isolation is None:
            return []
        return [tag for tag in self.isolation.queued if isinstance(tag, Candidate)]

    def _collect(self) -> Prepared | Failed | Interrupted | ChildDied:
        assert self.isolation is not None
        return _prepared(self.isolation.collect())

    def _send_ahead(self, current: Candidate) -> None:
        """Claim the row after `current`, write down its try and send it to the parsing
        process (the module's docstring); nothing when either row ever stopped the worker."""
        isolation = self.isolation
        if isolation is None or not self.db.is_sqlite or isolation.ahead is not None:
            return
        if stops_so_far(current.reason):
            return
        following = self._oldest_pending(after=current.entry_id)
        if following is None or stops_so_far(following.reason):
            return
        if not mark_started(self.db, following.entry_id, 0, following.reason):
            return
        seconds = self.config.limits.max_parse_seconds
        if not isolation.submit(
            following, self.config, self.blobs, following.arrived, timeout=seconds
        ):
            unmark(self.db, following.entry_id, following.reason)

    def release_ahead(self) -> None:
        """Forget the tries of the rows sent ahead, if any: they were not the messages' doing
        (the daemon stops, or the message before them must be tried again first)."""
        if self.isolation is None:
            return
        ahead = [tag for tag in self.isolation.cancel() if isinstance(tag, Candidate)]
        with contextlib.suppress(OperationalError):  # then they count as a stop
            unmark_all(self.db, [(c.entry_id, c.reason) for c in ahead])

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

    def drain(self, limit: int | None = None) -> list[Processed]:
        """Process until nothing is pending (or `limit` messages); for commands and tests.

        A message that waits for the virus scanner ends the drain, listed as pending."""
        done: list[Processed] = []
        while limit is None or len(done) < limit:
            most = RUN_MESSAGES if limit is None else min(RUN_MESSAGES, limit - len(done))
            try:
                results = self.process_run(most)
            except ScanWait as wait:
                log.warning("%s", wait)
                detail = f"{WAITING_FOR_SCANNER}: {wait.error}"
                done.append(Processed(wait.journal_id, JOURNAL_PENDING, detail))
                break
            if not results:
                break
            done.extend(results)
        return done


def _child_died(entry_id: int, died: ChildDied) -> Processed:
    """Counted like a daemon that died: the row stays pending with its mark, so the next try
    is the next stop's count."""
    log.error("journal=%s stopped the parsing process: %s", entry_id, died)
    return Processed(entry_id, JOURNAL_PENDING, str(died))


def _prepared(result: object) -> Prepared | Failed | Interrupted | ChildDied:
    """What the parsing process returned, as the runner takes it."""
    if isinstance(result, CallTimedOut):
        return Failed("parse", ParseTooSlow(result.seconds))
    if isinstance(result, (Prepared, Failed, Interrupted, ChildDied)):
        return result
    # What the parsing process could not send back (ingest/isolation.py's RuntimeError).
    assert isinstance(result, Exception), result
    return Failed("parse", result)


def _candidate_of(row: Row[Any, Any, Any, Any, Any, Any]) -> Candidate:
    """The candidate of a row of `_CANDIDATE` columns."""
    arrived = Arrived(row.blob_key, row.source, row.envelope_from, tuple(row.envelope_to))
    return Candidate(row.id, row.reason, arrived)


@contextlib.contextmanager
def claim_postgresql(db: Database) -> Iterator[Candidate | None]:
    """The oldest pending row no other worker holds, locked for as long as the block runs by
    an advisory lock on a connection of its own (the module's docstring). The claim's own
    transaction ends at once: parsing runs outside any transaction."""
    with db.engine.connect() as connection:
        with connection.begin():
            candidate = _lock_oldest(connection)
        try:
            yield candidate
        finally:
            if candidate is not None:
                _unlock(connection, candidate.entry_id)


def _lock_oldest(connection: Connection) -> Candidate | None:
    after = 0
    while True:
        # SKIP LOCKED: a row another transaction holds (a claim under way) is not waited for.
        entry_id = connection.scalar(
            select(JournalEntry.id)
            .where(JournalEntry.state == JOURNAL_PENDING, JournalEntry.id > after)
            .order_by(JournalEntry.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        if entry_id is None:
            return None
        locked = connection.scalar(
            text("SELECT pg_try_advisory_lock(:kind, :id)"),
            {"kind": JOURNAL_LOCK_CLASS, "id": entry_id},
        )
        if locked:  # read under both locks: what the row says now
            row = connection.execute(select(*_CANDIDATE).where(JOURNAL.c.id == entry_id)).one()
            return _candidate_of(row)
        after = entry_id  # another worker is trying it: the next one


_CANDIDATE = (
    JOURNAL.c.id,
    JOURNAL.c.reason,
    JOURNAL.c.blob_key,
    JOURNAL.c.source,
    JOURNAL.c.envelope_from,
    JOURNAL.c.envelope_to,
)
# Built once (with Core, the ORM's session and entity cost more than the read): the worker
# reads it twice per message, for the current row and the one sent ahead (issue 19).
# A run of rows applied in one transaction: the oldest pending, in the journal's order.
_OLDEST_RUN = (
    select(*_CANDIDATE)
    .where(JOURNAL.c.state == JOURNAL_PENDING, JOURNAL.c.id > bindparam("after"))
    .order_by(JOURNAL.c.id)
    .limit(bindparam("most"))
)
_OLDEST_PENDING = (
    select(*_CANDIDATE)
    .where(JOURNAL.c.state == JOURNAL_PENDING, JOURNAL.c.id > bindparam("after"))
    .order_by(JOURNAL.c.id)
    .limit(1)
)


def _unlock(connection: Connection, entry_id: int) -> None:
    try:
        connection.scalar(
            text("SELECT pg_advisory_unlock(:kind, :id)"),
            {"kind": JOURNAL_LOCK_CLASS, "id": entry_id},
        )
        connection.commit()
    except DBAPIError:
        # The connection broke (its locks went with it) or cannot say: never hand a connection
        # that may still hold the lock back to the pool.
        connection.invalidate()
