"""`ticketd import`: a mbox file, a Maildir or a folder of .eml files, through the journal.

Messages are read one at a time and no further than the size limit; one over it is quarantined
with its reason and header summary (ingest/oversize.py), and the import goes on.

Historical mail is not acknowledged unless asked: customers must not get an answer to a
message they wrote months ago.
"""

from __future__ import annotations

import logging
import mailbox
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from rich.progress import Progress

from ingest.journal import Arrival, StorageFailure
from ingest.oversize import HEADER_PEEK, header_summary, read_bounded, too_big
from ingest.worker import ScanWait

if TYPE_CHECKING:
    from ticketd.state import State

log = logging.getLogger("ticketd.import")


def _is_maildir(path: Path) -> bool:
    return path.is_dir() and all((path / sub).is_dir() for sub in ("cur", "new"))


Read = bytes | tuple[bytes, int]  # the message, or (its first bytes, its size) when too big


@contextmanager
def open_messages(path: Path, limit: int) -> Iterator[tuple[int, Iterator[tuple[str, Read]]]]:
    """How many messages `path` holds, and (name, message) for each, one at a time, each read no
    further than `limit` bytes (ingest/oversize.py): a large mbox never has to fit in memory.
    The folder is listed, or the mbox indexed, once: the count and the reading share it."""
    if _is_maildir(path):
        box = mailbox.Maildir(path, factory=None, create=False)
        keys = list(box.iterkeys())

        def maildir() -> Iterator[tuple[str, Read]]:
            for key in keys:
                with box.get_file(key) as file:
                    yield f"{path}/{key}", read_bounded(file, limit)

        yield len(keys), maildir()
    elif path.is_dir():
        names = sorted(path.rglob("*.eml"))

        def folder() -> Iterator[tuple[str, Read]]:
            for name in names:
                with name.open("rb") as file:
                    yield str(name), read_bounded(file, limit)

        yield len(names), folder()
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


def import_path(
    state: State, path: Path, acknowledge: bool, process: bool, progress: bool
) -> dict[str, int]:
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    journal = state.journal
    limit = state.config.smtp_in.max_message_size
    # "too_big" and the worker's states appear when they happen.
    summary = {"found": 0, "stored": 0, "failed": 0}
    with (
        open_messages(path, limit) as (total, messages),
        Progress(disable=not progress, transient=True) as bar,
    ):
        task = bar.add_task("storing", total=total)
        for name, read in messages:
            summary["found"] += 1
            source = f"import:{name}"[:200]
            try:
                if isinstance(read, tuple):
                    head, size = read
                    reason = f"{name}: {too_big(size, limit)}; {header_summary(head)}"
                    journal.quarantine(None, source, reason, head[:HEADER_PEEK])
                    summary["too_big"] = summary.get("too_big", 0) + 1
                else:
                    journal.accept(Arrival(raw=read, source=source, acknowledge=acknowledge))
                    summary["stored"] += 1
            except StorageFailure:
                summary["failed"] += 1
            bar.advance(task)
        if process:
            worker = state.worker
            task = bar.add_task("processing", total=summary["stored"])
            processed = 0
            while True:
                try:
                    result = worker.process_next()
                except ScanWait as wait:
                    # The virus scanner is unreachable: this message and the rest stay
                    # pending for the daemon, unscanned and not stored.
                    log.warning("%s; the rest stays pending", wait)
                    summary["pending"] = max(summary["stored"] - processed, 1)
                    break
                if result is None:
                    break
                summary[result.state] = summary.get(result.state, 0) + 1
                processed += 1
                bar.advance(task)
    return summary
