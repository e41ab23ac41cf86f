"""Blobs removed on purpose (issue 16): noted in the transaction that stops naming them, deleted
after its commit, and deleted again by whoever meets them later.

A purge, the raw retention or an erasure replaces a message's blob by a copy (or drops a
document's) and notes the old blob in `blob_removals` in the same transaction. The file goes
after the commit. Two things can leave it on disk: a crash between the commit and the delete,
and a key rotation rewriting that very file at that moment (its rename puts a re-encrypted copy
back). So `finish` (run by every retention pass and by the command that removed it) deletes any
noted blob that nothing names, and the rotation checks each blob it rewrote (`is_removed`).

A blob is content-addressed: the same bytes received again name the same file. A noted blob that
a journal row or a document names again is not deleted; one whose file is younger than the note
(touched by a writer about to commit a row naming it, storage/sealed_blobs.py) is left for the
next pass. Notes are kept a day after their file is gone, long past any rotation's rewrite.
Notes are compared with file times, so they take the real clock (as the orphan sweep does),
never the injected one.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from storage.blobs import BlobStore
from storage.db import Database
from storage.models import BlobRemoval, Document, JournalEntry

KEEP_NOTES = timedelta(days=1)


def note_removed(session: Session, keys: Iterable[str]) -> None:
    """In the transaction that stops naming them: these blobs are to go."""
    now = datetime.now(UTC)
    for key in set(keys):
        if session.get(BlobRemoval, key) is None:
            session.add(BlobRemoval(blob_key=key, removed_at=now))


def is_named(session: Session, key: str) -> bool:
    if session.scalar(select(JournalEntry.id).where(JournalEntry.blob_key == key).limit(1)):
        return True
    return session.scalar(select(Document.id).where(Document.blob_key == key).limit(1)) is not None


def is_removed(db: Database, key: str) -> bool:
    """Noted as removed and named by nothing: a file of that name must not exist."""
    with db.read() as session:
        return session.get(BlobRemoval, key) is not None and not is_named(session, key)


def _delete_if_unnamed(db: Database, blobs: BlobStore, key: str, noted: datetime) -> bool:
    with db.read() as session:
        if is_named(session, key):
            return False
    path = blobs.path_for(key)
    try:
        if path.stat().st_mtime > noted.timestamp() + 1:
            return False  # touched since: a writer may be committing a row naming it
    except FileNotFoundError:
        return False
    blobs.delete(key)
    return True


def finish(db: Database, blobs: BlobStore, keys: Iterable[str] = ()) -> int:
    """Delete the noted blobs nothing names (all of them, or `keys`); returns how many went."""
    now = datetime.now(UTC)
    wanted = set(keys)
    with db.read() as session:
        query = select(BlobRemoval.blob_key, BlobRemoval.removed_at)
        if wanted:
            query = query.where(BlobRemoval.blob_key.in_(wanted))
        notes = list(session.execute(query))
    deleted = sum(1 for key, at in notes if _delete_if_unnamed(db, blobs, key, at))
    if not wanted:
        gone = [key for key, at in notes if at <= now - KEEP_NOTES and not blobs.exists(key)]
        if gone:
            with db.transaction() as session:
                session.execute(delete(BlobRemoval).where(BlobRemoval.blob_key.in_(gone)))
    return deleted
