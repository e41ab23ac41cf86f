"""`ticketd import`: a mbox file, a Maildir or a folder of .eml files, through the journal.

Historical mail is not acknowledged unless asked: customers must not get an answer to a
message they wrote months ago.
"""

from __future__ import annotations

import logging
import mailbox
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from rich.progress import Progress

from ingest.journal import Arrival, StorageFailure
from ingest.worker import ScanWait

if TYPE_CHECKING:
    from ticketd.state import State

log = logging.getLogger("ticketd.import")


def _is_maildir(path: Path) -> bool:
    return path.is_dir() and all((path / sub).is_dir() for sub in ("cur", "new"))


def iter_messages(path: Path) -> Iterator[tuple[str, bytes]]:
    """(name, raw bytes) for every message found at `path`."""
    if _is_maildir(path):
        box = mailbox.Maildir(path, factory=None, create=False)
        for key in box.iterkeys():
            yield f"{path}/{key}", box.get_bytes(key)
    elif path.is_dir():
        for file in sorted(path.rglob("*.eml")):
            yield str(file), file.read_bytes()
    else:
        mbox = mailbox.mbox(path, create=False)
        try:
            for index, key in enumerate(mbox.iterkeys()):
                yield f"{path}#{index}", mbox.get_bytes(key)
        finally:
            mbox.close()


def import_path(
    state: State, path: Path, acknowledge: bool, process: bool, progress: bool
) -> dict[str, int]:
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    messages = list(iter_messages(path))
    journal = state.journal
    summary = {"found": len(messages), "stored": 0, "failed": 0}
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("storing", total=len(messages))
        for name, raw in messages:
            try:
                journal.accept(
                    Arrival(raw=raw, source=f"import:{name}"[:200], acknowledge=acknowledge)
                )
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
