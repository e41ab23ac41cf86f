"""Which keys the database's blobs need, so a daemon with the wrong key file never starts.

Several daemons share one database and one blob folder. A daemon that created its own key file
(a fresh `var/kyc.key` on each host) would seal its messages with a key the others lack, and
they would quarantine every such message. So the database keeps the id (never the key) of every
key that seals: each daemon registers its write key when it starts, a rotation registers the
new key, a retirement forgets the old ones. Before a daemon accepts mail it compares: a key id
the database names that its key file does not hold makes it refuse to start, naming the ids and
the file. For data written before the registry existed, the key ids in the headers of the
newest journal blobs are read too (16 bytes each, a bounded sample).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from storage.db import Database
from storage.keyring import Keyring
from storage.models import JournalEntry, SealKey
from storage.sealed_blobs import SealedBlobStore

SAMPLE = 200  # newest journal blobs whose key id is read at start


def register(db: Database, key_id: str, now: datetime, by: str) -> bool:
    """Record that `key_id` seals from now on; True when this call added it."""
    try:
        with db.transaction() as session:
            if session.get(SealKey, key_id) is not None:
                return False
            session.add(SealKey(key_id=key_id, registered_at=now, registered_by=by[:200]))
    except IntegrityError:
        return False  # another daemon registered it at the same moment
    return True


def forget(db: Database, key_ids: list[str]) -> None:
    """Retired keys: nothing is sealed with them any more."""
    if key_ids:
        with db.transaction() as session:
            session.execute(delete(SealKey).where(SealKey.key_id.in_(key_ids)))


def _sampled_key_ids(db: Database, blobs: SealedBlobStore) -> set[str]:
    with db.read() as session:
        keys = list(
            session.scalars(
                select(JournalEntry.blob_key).order_by(JournalEntry.id.desc()).limit(SAMPLE)
            )
        )
    found: set[str] = set()
    for blob_key in keys:
        try:
            key_id = blobs.sealed_with(blob_key)
        except (OSError, ValueError):  # purged, swept or never written: nothing to open
            continue
        if key_id is not None:
            found.add(key_id)
    return found


def missing_keys(db: Database, blobs: SealedBlobStore) -> list[str]:
    """The key ids the database uses that this process's key file does not hold."""
    keyring: Keyring = blobs.keyring
    keyring.refresh()
    held = {entry.id for entry in keyring.data.keys}
    with db.read() as session:
        used = set(session.scalars(select(SealKey.key_id)))
    used |= _sampled_key_ids(db, blobs)
    return sorted(used - held)
