"""Key rotation without downtime (issue 6): a new write key, all re-encrypted, old keys retired.

1. `begin`: under the keyring lock a new random key becomes the write key; the old one is marked
   superseded and stays in the file, so everything sealed with it still opens. From then on every
   process seals with the new key: each re-reads the key file before sealing and checks it again
   after writing (storage/sealed_blobs.py), and a process meeting the new key id in a blob
   re-reads the file. Running daemons need no restart and no signal.
2. `reencrypt`: every document the database references (both layers) and every blob on disk
   (its outer seal) not already under the write key is re-encrypted in place: temporary file,
   fsync, rename; then every outbox row's bytes (storage/sealed_rows.py: a notification attaches
   the customer's documents), each in its own transaction. A reader opens the old file or the
   new one, never half of either, and holds both keys. Whatever is already under the write key
   is skipped, so a rotation cut short (a crash, Ctrl-C) is completed by running it again; the
   keyring's `rotating` mark says one is unfinished. The mark is cleared when a whole pass
   found nothing left to do.
3. `retire` (an explicit step): the keys other than the write key are removed from the file, and
   from then on nothing can open what they sealed. Only when the rotation is finished, when they
   stopped sealing at least RETIRE_GRACE ago, and when a last pass and a scan find no blob and no
   referenced document under them. The grace covers a message that was being processed while
   the rotation began: its document was sealed under the old key inside a transaction that
   commits later, after the rotation's pass over the documents. Transactions take seconds; the
   grace is an hour, and the last pass before retiring re-encrypts such a document.

A document purged while the rotation rewrites it could be put back on disk by the rewrite's
rename; after each document the rotation checks the record still names the blob, and deletes it
otherwise. The same for any other blob noted as removed (a raw message replaced by a copy without
its documents, storage/removals.py): rewritten, it is deleted again if nothing names it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select, update

from storage.db import Database
from storage.documents import DocumentIntegrityError, DocumentStore
from storage.errors import Permanent
from storage.key_registry import forget, register
from storage.keyring import KEY_SIZE, Keyring, KeyringData, locked, read_keyring, write_keyring
from storage.models import Document, OutboxMail
from storage.removals import is_removed
from storage.sealed_blobs import SealedBlobError, SealedBlobStore
from storage.sealed_rows import key_id, stored_header

RETIRE_GRACE = timedelta(hours=1)


class RotationError(Permanent):
    """The rotation or the retirement cannot go on; the message says why and what to do."""


@dataclass
class RotationReport:
    key: str  # the write key everything is now sealed with
    resumed: bool = False
    documents: int = 0  # documents re-encrypted (both layers)
    blobs: int = 0  # other blobs re-encrypted (their seal)
    mails: int = 0  # outbox rows re-encrypted (or sealed: composed before sealing)
    already: int = 0  # found under the write key already
    failed: list[tuple[str, str]] = field(default_factory=list)  # (blob, reason)
    finished: bool = False
    retired: list[str] = field(default_factory=list)


def begin(keyring: Keyring, now: datetime) -> tuple[KeyringData, bool]:
    """A new write key, unless a rotation is unfinished (then that one resumes: True)."""
    path = _path(keyring)
    with locked(path):
        data, _ = read_keyring(path)
        if data.rotating is not None:
            return data, True
        new = data.with_new_write_key(AESGCM.generate_key(bit_length=KEY_SIZE * 8), now)
        write_keyring(path, new)
    keyring.reload()
    return new, False


def reencrypt(
    db: Database,
    blobs: SealedBlobStore,
    documents: DocumentStore,
    report: RotationReport,
    on_rewritten: Callable[[str], None] | None = None,
) -> RotationReport:
    """Re-encrypt what is not under the write key; `on_rewritten` is called after each file."""
    done: set[str] = set()
    with db.read() as session:
        referenced = [
            (blob_key, sha256)
            for blob_key, sha256 in session.execute(
                select(Document.blob_key, Document.sha256)
                .where(Document.blob_key.is_not(None))
                .order_by(Document.id)
            )
        ]
    for blob_key, sha256 in referenced:
        assert blob_key is not None
        done.add(blob_key)
        try:
            changed = documents.rekey(blob_key, sha256)
        except FileNotFoundError:
            continue  # purged since the query
        except DocumentIntegrityError as error:
            report.failed.append((blob_key, str(error)))
            continue
        if not changed:
            report.already += 1
            continue
        report.documents += 1
        if not _still_a_document(db, blob_key):
            blobs.delete(blob_key)  # purged while being rewritten: the rename put it back
        if on_rewritten is not None:
            on_rewritten(blob_key)
    for key in blobs.addresses():
        if key in done:
            continue
        try:
            if blobs.sealed_with(key) == blobs.keyring.data.write:
                report.already += 1
                continue
            blobs.replace(key, blobs.get(key))
        except FileNotFoundError:
            continue  # swept or purged meanwhile
        except SealedBlobError as error:
            report.failed.append((key, str(error)))
            continue
        report.blobs += 1
        if is_removed(db, key):
            blobs.delete(key)  # removed while being rewritten: the rename put it back
        if on_rewritten is not None:
            on_rewritten(key)
    report.mails += reseal_outbox(db, outbox_not_under(db, blobs.keyring.data.write))
    return report


def outbox_not_under(db: Database, write: str | None) -> list[int]:
    """Ids of outbox rows whose stored bytes are not sealed with key `write`; with None, the
    rows not sealed at all (composed before sealing)."""
    with db.read() as session:
        rows = session.execute(select(OutboxMail.id, stored_header(OutboxMail.raw)))
        headers = [(outbox_id, key_id(bytes(header or b""))) for outbox_id, header in rows]
    if write is None:
        return [outbox_id for outbox_id, kid in headers if kid is None]
    return [outbox_id for outbox_id, kid in headers if kid != write]


def reseal_outbox(db: Database, outbox_ids: list[int]) -> int:
    """Each row's bytes sealed again under the current write key (the column's type seals
    what is bound, storage/sealed_rows.py); returns how many rows were rewritten."""
    done = 0
    for outbox_id in outbox_ids:
        with db.transaction() as session:
            raw = session.scalar(
                select(OutboxMail.raw).where(OutboxMail.id == outbox_id).with_for_update()
            )
            if raw is None:
                continue  # gone meanwhile
            session.execute(update(OutboxMail).where(OutboxMail.id == outbox_id).values(raw=raw))
            done += 1
    return done


def _still_a_document(db: Database, blob_key: str) -> bool:
    with db.read() as session:
        found = session.scalar(select(Document.id).where(Document.blob_key == blob_key).limit(1))
        return found is not None


def finish(keyring: Keyring, report: RotationReport) -> None:
    """Clear the `rotating` mark once a pass completed without a failure."""
    if report.failed:
        return
    path = _path(keyring)
    with locked(path):
        data, _ = read_keyring(path)
        if data.rotating == report.key and data.write == report.key:
            write_keyring(path, KeyringData(data.keys, data.write, rotating=None))
    keyring.reload()
    report.finished = True


def rotate(
    db: Database,
    blobs: SealedBlobStore,
    documents: DocumentStore,
    now: datetime,
    on_rewritten: Callable[[str], None] | None = None,
) -> RotationReport:
    """Steps 1 and 2: a new write key (or the unfinished rotation resumed), then re-encrypt."""
    data, resumed = begin(blobs.keyring, now)
    # Before anything is sealed with it: a daemon started later with an old copy of the key
    # file refuses to start instead of quarantining what the new key seals.
    register(db, data.write, now, f"rotation of {blobs.keyring.describe()}")
    report = RotationReport(key=data.write, resumed=resumed)
    reencrypt(db, blobs, documents, report, on_rewritten)
    finish(blobs.keyring, report)
    return report


def stale(db: Database, blobs: SealedBlobStore, documents: DocumentStore) -> list[str]:
    """Blobs (or referenced documents inside them) not sealed with the write key."""
    write = blobs.keyring.data.write
    found: list[str] = []
    for key in blobs.addresses():
        try:
            if blobs.sealed_with(key) != write:
                found.append(key)
        except FileNotFoundError:
            continue
    with db.read() as session:
        keys = list(
            session.scalars(select(Document.blob_key).where(Document.blob_key.is_not(None)))
        )
    for blob_key in keys:
        assert blob_key is not None
        try:
            if documents.sealed_with(blob_key) != write and blob_key not in found:
                found.append(blob_key)
        except FileNotFoundError:
            continue
    return found


def retire(
    db: Database,
    blobs: SealedBlobStore,
    documents: DocumentStore,
    now: datetime,
    grace: timedelta = RETIRE_GRACE,
) -> RotationReport:
    """Step 3: remove every key but the write key, once nothing can still be under them."""
    keyring = blobs.keyring
    path = _path(keyring)
    keyring.reload()
    data = keyring.data
    report = RotationReport(key=data.write)
    if data.rotating is not None:
        raise RotationError(
            f"{path}: the rotation to key {data.rotating} is not finished: "
            "run `ticketd kyc rotate-key` to complete it first"
        )
    old = [entry for entry in data.keys if entry.id != data.write]
    if not old:
        return report
    for entry in old:
        stopped = entry.superseded
        if stopped is not None and now - stopped < grace:
            raise RotationError(
                f"{path}: key {entry.id} stopped sealing at {stopped.isoformat()}; it can be "
                f"retired from {(stopped + grace).isoformat()} (a message being processed "
                "when the rotation began may still be sealed with it)"
            )
    reencrypt(db, blobs, documents, report)
    left = stale(db, blobs, documents)
    left += [f"outbox row {n}" for n in outbox_not_under(db, data.write)]
    if report.failed or left:
        names = [key for key, _ in report.failed] + left
        raise RotationError(
            f"{path}: not retiring: {len(names)} blob(s) still need the old key(s), e.g. "
            f"{names[0]}" + (f" ({report.failed[0][1]})" if report.failed else "")
        )
    with locked(path):
        current, _ = read_keyring(path)
        if current.write != data.write or current.rotating is not None:
            raise RotationError(f"{path}: another rotation began meanwhile; nothing retired")
        write_keyring(path, KeyringData((current.write_entry,), current.write, rotating=None))
    keyring.reload()
    report.retired = [entry.id for entry in old]
    forget(db, report.retired)
    report.finished = True
    return report


def _path(keyring: Keyring) -> Path:
    if keyring.path is None:
        raise RotationError("this key lives in memory only: there is no key file to rotate")
    return keyring.path
