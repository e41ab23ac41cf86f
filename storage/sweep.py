"""The orphan sweep: blobs no journal row and no document names, left by rolled-back transactions.

How orphans come about. The journal writes a message's blob, then commits the row naming it; the
worker seals identity documents into the blob store inside the pipeline transaction. When that
commit fails or the transaction rolls back (the database went away, the message was quarantined
and its documents with it, a retry stores them again), the blob stays on disk and nothing names
it. A crash between a purge's commit and its delete leaves one too. They are encrypted, but they
hold what nobody may keep (a rejected customer's passport) and they take space.

The race, and why it is safe. A blob is always written *before* the row naming it is committed,
perhaps by another daemon: several share the folder and the database. The sweep sees the files and
the database at different moments, so a blob whose row is being committed right now looks like an
orphan. Three rules close the gap:

1. Age. Only a file older than the grace period (a day by default, an hour at the least) is a
   candidate, and the database is read *after* the files were listed. A blob written at w whose
   row commits at c can only be mistaken if the sweep read the database before c while the file
   was already older than the grace, that is if c - w > grace. Writers commit within seconds
   of writing (a journal row right after its blob; a document with its message's transaction).
2. Reuse. A message received again reuses the blob already on disk (same bytes, same name), which
   may be an old orphan, and commits a new row naming it. `SealedBlobStore.put` touches the file
   (its time becomes now) before that commit. The sweep never deletes in place: it renames the
   file aside, atomically, then reads the time of the renamed file. A writer that touched it
   before the rename made it young, and the sweep puts it back; a writer coming after the rename
   finds no file and writes it anew. Either way the committed row's blob exists. (Between the
   rename and the putting back, a few microseconds, a worker reading that very blob would fail
   and quarantine the message, which `ticketd quarantine retry` then processes normally.)
3. Crash. A file set aside by a sweep that died is put back by the next sweep if its name is
   free, and judged again.

Temporary files a crashed writer left (`.NAME.PID.THREAD.tmp`) go once older than the grace.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from storage.blobs import BlobStore, is_blob_key
from storage.db import Database
from storage.models import Document, JournalEntry

SWEEP_GRACE = timedelta(days=1)
MINIMUM_GRACE = timedelta(hours=1)
ASIDE = ".swept"
BATCH = 500  # blobs judged per database query


@dataclass
class SweepReport:
    dry_run: bool
    removed: list[str] = field(default_factory=list)  # orphans deleted (or, dry run, to delete)
    removed_bytes: int = 0
    referenced: int = 0
    young: int = 0  # within the grace, not judged: a commit naming it may be in flight
    temporary: int = 0  # stale temporary files removed
    restored: int = 0  # put back: touched while being set aside, or left aside by a crash


def _referenced(db: Database, keys: list[str]) -> set[str]:
    """Which of `keys` a journal row or a document names (equality only: no collation)."""
    with db.read() as session:
        found = set(
            session.scalars(select(JournalEntry.blob_key).where(JournalEntry.blob_key.in_(keys)))
        )
        found |= {
            key
            for key in session.scalars(select(Document.blob_key).where(Document.blob_key.in_(keys)))
            if key is not None
        }
    return found


def sweep(
    db: Database,
    blobs: BlobStore,
    grace: timedelta = SWEEP_GRACE,
    dry_run: bool = False,
    now: float | None = None,
) -> SweepReport:
    """Delete unreferenced blobs older than `grace` (file times, so the real clock)."""
    if grace < MINIMUM_GRACE:
        raise ValueError(f"the grace period is at least {MINIMUM_GRACE} (it is {grace})")
    cutoff = (time.time() if now is None else now) - grace.total_seconds()
    report = SweepReport(dry_run=dry_run)
    if not blobs.root.exists():
        return report
    batch: list[Path] = []
    for first in sorted(p for p in blobs.root.iterdir() if p.is_dir() and len(p.name) == 2):
        for folder in sorted(p for p in first.iterdir() if p.is_dir() and len(p.name) == 2):
            batch += _old_blobs(folder, cutoff, dry_run, report)
            if len(batch) >= BATCH:
                _judge(db, batch, cutoff, dry_run, report)
                batch = []
    _judge(db, batch, cutoff, dry_run, report)
    return report


def _old_blobs(folder: Path, cutoff: float, dry_run: bool, report: SweepReport) -> list[Path]:
    """The folder's blobs older than the cutoff; leftovers of crashes dealt with on the way."""
    old: list[Path] = []
    for path in sorted(folder.iterdir()):
        name = path.name
        try:
            if name.startswith(".") and ASIDE in name and not dry_run:
                _restore_aside(path, folder / name[1:65], report)
            elif name.startswith(".") and name.endswith(".tmp"):
                if path.stat().st_mtime < cutoff:
                    report.temporary += 1
                    if not dry_run:
                        path.unlink(missing_ok=True)
            elif is_blob_key(name):
                if path.stat().st_mtime < cutoff:
                    old.append(path)
                else:
                    report.young += 1
        except FileNotFoundError:
            continue  # gone meanwhile: another sweep, a purge
    return old


def _judge(
    db: Database, old: list[Path], cutoff: float, dry_run: bool, report: SweepReport
) -> None:
    if not old:
        return
    # The database is read after the files were listed (rule 1 of the module docstring).
    named = _referenced(db, [path.name for path in old])
    report.referenced += len(named)
    for path in old:
        if path.name not in named:
            _remove(path, cutoff, dry_run, report)


def _restore_aside(aside: Path, blob: Path, report: SweepReport) -> None:
    if not is_blob_key(blob.name):
        return
    if blob.exists():
        aside.unlink(missing_ok=True)  # written anew meanwhile: the same plaintext
    else:
        os.rename(aside, blob)
        report.restored += 1


def _remove(path: Path, cutoff: float, dry_run: bool, report: SweepReport) -> None:
    if dry_run:
        try:
            report.removed_bytes += path.stat().st_size
        except FileNotFoundError:
            return
        report.removed.append(path.name)
        return
    aside = path.with_name(f".{path.name}{ASIDE}.{os.getpid()}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return  # another sweep took it
    info = aside.stat()
    if info.st_mtime >= cutoff:
        # Touched by a writer about to commit a row naming it (rule 2): put it back, unless
        # that writer already wrote it anew.
        if path.exists():
            aside.unlink(missing_ok=True)
        else:
            os.rename(aside, path)
        report.restored += 1
        return
    aside.unlink()
    report.removed.append(path.name)
    report.removed_bytes += info.st_size
