"""`ticketd import`: a mbox file, a Maildir or a folder of .eml files, through the journal.

Messages are read one at a time and no further than the size limit; one over it is quarantined
with its reason and header summary (ingest/oversize.py), and the import goes on.

Historical mail tells no one unless asked (`--acknowledge`): customers must not get an answer to
a message they wrote months ago, and agents no "new ticket" mail for each of them (the pipeline
skips the notification of imported mail that is not acknowledged).
"""

from __future__ import annotations

import hashlib
import logging
import mailbox
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from rich.progress import Progress
from sqlalchemy import select

from domain.config import Config
from ingest.journal import Arrival, Journal, StorageFailure
from ingest.oversize import HEADER_PEEK, header_summary, read_bounded, too_big
from ingest.regular_files import NotRegular, open_regular, regular_or_folder
from ingest.worker import Processed, ScanWait, Worker
from storage.db import Database
from storage.models import JournalEntry


class State(Protocol):
    """What an import needs of the application's state (ticketd/state.py provides it)."""

    @property
    def journal(self) -> Journal: ...

    @property
    def config(self) -> Config: ...

    @property
    def worker(self) -> Worker: ...

    @property
    def db(self) -> Database: ...


log = logging.getLogger("ticketd.import")


def _is_maildir(path: Path) -> bool:
    return path.is_dir() and all((path / sub).is_dir() for sub in ("cur", "new"))


@dataclass(frozen=True)
class Refused:
    """A name in the folder that is not read: a symbolic link, a FIFO, a device."""

    reason: str


# The message, or (its first bytes, its size) when too big, or why it was not read.
Read = bytes | tuple[bytes, int] | Refused


def _read_files(names: list[Path], limit: int) -> Iterator[tuple[str, Read]]:
    for name in names:
        try:
            file = open_regular(name)
        except NotRegular as refused:
            yield str(name), Refused(str(refused))
            continue
        with file:
            yield str(name), read_bounded(file, limit)


def _maildir_files(path: Path) -> list[Path]:
    """A Maildir's messages: the files of new/ and cur/, as mailbox.Maildir lists them."""
    return [
        entry
        for sub in ("new", "cur")
        for entry in sorted((path / sub).iterdir())
        if not entry.name.startswith(".")
    ]


@contextmanager
def open_messages(path: Path, limit: int) -> Iterator[tuple[int, Iterator[tuple[str, Read]]]]:
    """How many messages `path` holds, and (name, message) for each, one at a time, each read no
    further than `limit` bytes (ingest/oversize.py): a large mbox never has to fit in memory.
    The folder is listed, or the mbox indexed, once: the count and the reading share it. Only
    regular files are read (ingest/regular_files.py): a link or a FIFO in the folder is
    refused, and so is `path` itself when it is neither a file nor a folder."""
    regular_or_folder(path)
    if _is_maildir(path) or path.is_dir():
        names = _maildir_files(path) if _is_maildir(path) else sorted(path.rglob("*.eml"))
        yield len(names), _read_files(names, limit)
    else:
        mbox = mailbox.mbox(path, create=False)
        try:
            keys = list(mbox.iterkeys())  # reads the whole file once, to find each message

            def mbox_file() -> Iterator[tuple[str, Read]]:
                for index, key in enumerate(keys):
                    with mbox.get_file(key) as file:
                        yield f"{path}#{index}", read_bounded(file, limit)

            yield len(keys), mbox_file()
        finally:
            mbox.close()


# An import journals its messages in batches, one commit each (ingest/journal.py accept_many):
# at most this many messages, and no more bytes than this unless a single message is larger.
BATCH_MESSAGES = 64
BATCH_BYTES = 8 * 1024 * 1024
_COUNTS = ("found", "stored", "already_imported", "failed")


@dataclass
class _Batch:
    """Messages read and not yet journaled, and the run's counts so far."""

    journal: Journal
    advance: Callable[[], None]
    summary: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_COUNTS, 0))
    mine: list[int] = field(default_factory=list)
    arrivals: list[Arrival] = field(default_factory=list)
    size: int = 0

    def add(self, arrival: Arrival) -> None:
        if self.arrivals and self.size + len(arrival.raw) > BATCH_BYTES:
            self.flush()
        self.arrivals.append(arrival)
        self.size += len(arrival.raw)
        if len(self.arrivals) >= BATCH_MESSAGES:
            self.flush()

    def flush(self) -> None:
        """Journal what is read: all of it stored, or all of it failed."""
        try:
            results = self.journal.accept_many(self.arrivals) if self.arrivals else []
        except StorageFailure as failure:
            log.warning("not stored: %s", failure)
            results = []
            self.summary["failed"] += len(self.arrivals)
        for entry_id, new in results:
            if new:
                self.mine.append(entry_id)
            self.summary["stored" if new else "already_imported"] += 1
        for _arrival in self.arrivals:
            self.advance()
        self.arrivals, self.size = [], 0


def _store(
    state: State,
    messages: Iterator[tuple[str, Read]],
    acknowledge: bool,
    advance: Callable[[], None],
) -> tuple[dict[str, int], list[int]]:
    """Journal each message once: the same bytes imported again (a second run over one file, a
    message twice in a mbox) are found by their digest and counted as already imported."""
    journal = state.journal
    limit = state.config.smtp_in.max_message_size
    batch = _Batch(journal, advance)
    summary = batch.summary
    for name, read in messages:
        summary["found"] += 1
        source = f"import:{name}"[:200]
        if not isinstance(read, Refused | tuple):
            origin = "import:" + hashlib.sha256(read).hexdigest()
            batch.add(Arrival(raw=read, source=source, acknowledge=acknowledge, origin=origin))
            continue
        try:
            if isinstance(read, Refused):
                log.warning("not imported: %s", read.reason)
                summary["refused"] = summary.get("refused", 0) + 1
            else:
                head, size = read
                reason = f"{name}: {too_big(size, limit)}; {header_summary(head)}"
                journal.quarantine(None, source, reason, head[:HEADER_PEEK])
                summary["too_big"] = summary.get("too_big", 0) + 1
        except StorageFailure:
            summary["failed"] += 1
        advance()
    batch.flush()
    return summary, batch.mine


def _store_and_process(
    state: State,
    messages: Iterator[tuple[str, Read]],
    acknowledge: bool,
    advance_store: Callable[[], None],
    show_processed: Callable[[int, int], None],
) -> tuple[dict[str, int], list[int]]:
    """Store every message, then process them; the parsing process starts meanwhile, so it is
    ready when the storing ends. `show_processed(done, of)` is told the progress.

    Not side by side: processing beside the storing (a thread of this process, its blobs
    written by several more) ran at half its speed, the threads taking turns at the
    interpreter's lock, and the import took longer than storing first (issue 19: for 1,000
    messages, `bench/import_timeline.py`, 8 December 2026, in turn: 8.8 / 6.6 s, 9.3 / 7.5 s,
    then a median of 5.8 against 5.3 s, this process's CPU lower in every pair)."""
    _start_parsing_process(state)
    summary, mine = _store(state, messages, acknowledge, advance_store)
    finished = 0
    show_processed(finished, len(mine))

    def advance() -> None:
        nonlocal finished
        finished += 1
        show_processed(finished, len(mine))

    _process(state, mine, advance)
    return summary, mine


def _start_parsing_process(state: State) -> None:
    """Start the parsing process in a thread, on the other core while the messages are stored
    (its forkserver may still be importing: ticketd/commands.py starts it before the command's
    own imports). The worker's first call waits for the start to end."""
    isolation = state.worker.isolation
    if isolation is not None:
        threading.Thread(target=isolation.start, name="ticketd-parse-start", daemon=True).start()


def _process_once(state: State) -> list[Processed] | None:
    """One run of the worker; None when the virus scanner is unreachable (logged)."""
    try:
        return state.worker.process_run()
    except ScanWait as wait:
        # The virus scanner is unreachable: the rest stays pending for the daemon,
        # unscanned and not stored.
        log.warning("%s; the rest stays pending", wait)
        return None


def _process(state: State, mine: list[int], advance: Callable[[], None]) -> None:
    """Work through the journal until this run's messages are done (a running daemon takes
    some of them, and this worker may take the daemon's: what counts is the journal's state)."""
    left = set(mine)
    while left:
        results = _process_once(state)
        if not results:
            return  # nothing pending (the daemon has or is processing the rest), or no scanner
        for result in results:
            if result.journal_id in left:
                left.discard(result.journal_id)
                advance()


def _states(state: State, mine: list[int]) -> dict[str, int]:
    """What became of this run's messages, by whoever processed them."""
    counts: dict[str, int] = {}
    with state.db.read() as session:
        for chunk in range(0, len(mine), 500):
            ids = mine[chunk : chunk + 500]
            for row_state in session.scalars(
                select(JournalEntry.state).where(JournalEntry.id.in_(ids))
            ):
                counts[row_state] = counts.get(row_state, 0) + 1
    return counts


@contextmanager
def _logs_above() -> Iterator[None]:
    """Log lines while the bar is drawn go through its console (rich redirects sys.stderr to
    it), so they print above the bar instead of breaking it."""
    handlers = [
        h
        for h in logging.getLogger().handlers
        # A handler whose stream was closed under it (setStream would flush it and raise).
        if type(h) is logging.StreamHandler and not getattr(h.stream, "closed", False)
    ]
    before = [h.setStream(sys.stderr) for h in handlers]  # inside the bar: rich's proxy
    try:
        yield
    finally:
        for handler, stream in zip(handlers, before, strict=True):
            if stream is not None:
                handler.setStream(stream)


def import_path(
    state: State, path: Path, acknowledge: bool, process: bool, progress: bool
) -> dict[str, int]:
    """Journal every message of `path` and, unless `process` is off, process them; the summary
    counts what this run did: found, stored (new), already_imported, too_big, refused (not a
    regular file), failed, then the
    journal state of the messages it stored (done, ignored, quarantined, pending), whoever
    processed them."""
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    limit = state.config.smtp_in.max_message_size
    with (
        open_messages(path, limit) as (total, messages),
        Progress(disable=not progress, transient=True) as bar,
        _logs_above(),
    ):
        storing = bar.add_task("storing", total=total)
        if process:
            processing = bar.add_task("processing", total=None)
            summary, mine = _store_and_process(
                state,
                messages,
                acknowledge,
                lambda: bar.advance(storing),
                lambda done, of: bar.update(processing, completed=done, total=of),
            )
        else:
            summary, mine = _store(state, messages, acknowledge, lambda: bar.advance(storing))
    summary.update(_states(state, mine))
    return summary
