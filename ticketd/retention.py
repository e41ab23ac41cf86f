"""Retention of every copy (issue 16): raw messages, the outbox's bytes, closed tickets' text, and
every copy of an identity document whose retention ended.

Where copies of what a customer sent live: the journal's raw message (sealed in the blob store,
quarantined messages included), the document's own sealed blob, the outbox's stored bytes (an
agent's answer relays its attachments), files ticketd exported (`kyc export`, `customer
export`, named in the access audit) and temporary files of the blob store. This module replaces
or removes each of them:

- `remove_document_copies`: after `kyc purge` (ticketd/documents_admin.py) deleted documents'
  own blobs, every journal blob and outbox row still holding one of those files gets a copy
  without it (ingest/redact.py), and exported files holding one are deleted (a forwarded
  message's .eml holding it too, at any depth). Files another document still held has the same
  bytes of are left until that one is purged too. Every copy is read as deep as the documents
  step read the message (`reach`), or a document found 60 levels down would stay in it.
- `run_retention` (`ticketd retention run`, and the daemon once a day): raw bytes of messages
  processed more than `[retention] raw_days` ago, and outbox bytes of mail sent or given up that
  long ago, keep their text only; with `ticket_days`, a ticket closed that long has its
  messages' text and every raw copy removed (the ticket's record, statistics and audit stay).
  Outbox rows composed before the outbox was sealed (storage/sealed_rows.py) are sealed then.

A journal blob is replaced in two steps (`replace_raw`): the copy is written (a new blob, named
by its content), then one transaction makes every row naming the old blob name the copy and
notes the old blob as removed (storage/removals.py); the old file is deleted after the commit.
A row whose blob changed meanwhile (another daemon did the same) is left as the other left it.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from domain.config import Config
from ingest.mime_shape import DEFAULT_LIMITS, ShapeLimits
from ingest.redact import file_digests, headers_only, without_attachments, without_files
from outbound.maildir_files import delivered, replace_file
from storage.blobs import BlobStore
from storage.db import Database
from storage.models import (
    JOURNAL_DISMISSED,
    JOURNAL_DONE,
    JOURNAL_IGNORED,
    JOURNAL_QUARANTINED,
    OUTBOX_FAILED,
    OUTBOX_SENT,
    OUTBOX_SUPPRESSED,
    RAW_REDACTED,
    RAW_REMOVED,
    RAW_STRIPPED,
    Document,
    DocumentAccess,
    JournalEntry,
    OutboxMail,
    Ticket,
    TicketMessage,
)
from storage.removals import finish, note_removed
from storage.rotation import outbox_not_under, reseal_outbox
from storage.search import forget_removed_text
from storage.sweep import MINIMUM_GRACE
from storage.webhook_events import forget_deliveries

log = logging.getLogger("ticketd.retention")
FINISHED = (JOURNAL_DONE, JOURNAL_IGNORED, JOURNAL_QUARANTINED, JOURNAL_DISMISSED)
DELIVERED = (OUTBOX_SENT, OUTBOX_FAILED, OUTBOX_SUPPRESSED)
# Whatever is left of a copy after each step: a later step never brings back more.
_RANK = {None: 0, RAW_REDACTED: 1, RAW_STRIPPED: 2, RAW_REMOVED: 3}
Rewrite = Callable[[bytes], bytes | None]


@dataclass
class RetentionReport:
    dry_run: bool
    raw_stripped: list[int] = field(default_factory=list)  # journal ids
    raw_redacted: list[int] = field(default_factory=list)
    raw_removed: list[int] = field(default_factory=list)
    outbox_changed: list[int] = field(default_factory=list)
    tickets: list[str] = field(default_factory=list)  # refs whose text was removed
    exports_deleted: list[str] = field(default_factory=list)
    maildir: list[str] = field(default_factory=list)  # files rewritten in smtp_out.maildir
    blobs_deleted: int = 0
    temporary: int = 0
    webhooks: int = 0  # webhook deliveries removed (their bodies name the customer)
    outbox_sealed: int = 0  # outbox rows composed before sealing, sealed now


def reach(config: Config) -> ShapeLimits:
    """How far a copy is read for the files it holds: as far as the documents step reads a
    message (`[limits] max_mime_parts`, `max_mime_depth`), and never less than the defaults
    (a limit lowered since may have found the file before)."""
    limits = config.limits
    return ShapeLimits(
        parts=max(limits.max_mime_parts, DEFAULT_LIMITS.parts),
        depth=max(limits.max_mime_depth, DEFAULT_LIMITS.depth),
    )


def _later(current: str | None, new: str) -> str:
    return new if _RANK[new] > _RANK[current] else current or new


def replace_raw(
    db: Database, blobs: BlobStore, entry_id: int, rewrite: Rewrite, state: str, now: datetime
) -> bool:
    """Give the journal row (and every row sharing its blob) the copy `rewrite` makes of its
    raw bytes; False when there was nothing to change."""
    with db.read() as session:
        entry = session.get(JournalEntry, entry_id)
        if entry is None or entry.raw_state == RAW_REMOVED:
            return False
        old = entry.blob_key
    try:
        copy = rewrite(blobs.get(old))
    except FileNotFoundError:
        return False
    if copy is None:
        return False
    new = blobs.put(copy)
    with db.transaction() as session:
        rows = session.scalars(
            select(JournalEntry).where(JournalEntry.blob_key == old).with_for_update()
        ).all()
        if not rows:
            return False  # replaced meanwhile by another run
        for row in rows:
            row.blob_key, row.size = new, len(copy)
            row.raw_state, row.raw_changed_at = _later(row.raw_state, state), now
        if new != old and not session.scalar(
            select(Document.id).where(Document.blob_key == old).limit(1)
        ):
            note_removed(session, [old])
    if new != old:
        finish(db, blobs, [old])
    return True


def _replace_outbox(
    db: Database,
    outbox_id: int,
    rewrite: Rewrite,
    state: str,
    now: datetime,
    text: str | None = None,
) -> bool:
    with db.transaction() as session:
        row = session.get(OutboxMail, outbox_id, with_for_update=True)
        if row is None or row.raw_state == RAW_REMOVED:
            return False
        copy = rewrite(row.raw)
        if copy is None:
            return False
        row.raw = copy
        row.raw_state, row.raw_changed_at = _later(row.raw_state, state), now
        if text is not None:
            row.text = text
    return True


def _held_elsewhere(db: Database, digests: Collection[str]) -> set[str]:
    with db.read() as session:
        return set(
            session.scalars(
                select(Document.sha256).where(
                    Document.sha256.in_(list(digests)), Document.blob_key.is_not(None)
                )
            )
        )


def _holds_any(path: Path, digests: Collection[str], limits: ShapeLimits) -> bool:
    """The file is one of the documents, or mail holding one (a raw message, a forwarded
    message kept as an attachment, whatever its name: the sender names a message/rfc822 part)."""
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() in digests:
        return True
    try:
        return bool(file_digests(data, limits) & set(digests))
    except Exception:
        return False


def _delete_exports(
    db: Database,
    document_ids: Collection[int],
    digests: Collection[str],
    report: RetentionReport,
    limits: ShapeLimits,
) -> None:
    """Files ticketd wrote for `kyc export` or `customer export` that still hold a document."""
    with db.read() as session:
        paths = set(
            session.scalars(
                select(DocumentAccess.detail).where(
                    DocumentAccess.document_id.in_(list(document_ids)),
                    DocumentAccess.action == "export",
                )
            )
        )
    for text in sorted(p for p in paths if p):
        path = Path(text)
        try:
            if path.is_file() and not path.is_symlink() and _holds_any(path, digests, limits):
                path.unlink()
                report.exports_deleted.append(text)
        except OSError as error:  # the path names the document: not in the log
            reason = errno.errorcode.get(error.errno or 0, type(error).__name__)
            log.warning("could not delete an exported copy of a purged document: %s", reason)


def _redact_maildir(
    maildir: Path, rewrite: Rewrite, smallest: int, report: RetentionReport
) -> None:
    """Mail ticketd itself wrote into the Maildir (`smtp_out.maildir`, delivery without a
    relay), still there: the copy without the file replaces it under the same name."""
    for path in delivered(maildir):
        try:
            if path.stat().st_size < smallest:
                continue
            copy = rewrite(path.read_bytes())
            if copy is None:
                continue
            replace_file(maildir, path, copy)  # its name and mode (0640) kept
            report.maildir.append(path.name)
        except FileNotFoundError:
            continue  # taken by the Maildir's reader meanwhile


def remove_document_copies(
    db: Database,
    blobs: BlobStore,
    purged: dict[int, tuple[str, int]],
    now: datetime,
    maildir: Path | None = None,
    limits: ShapeLimits = DEFAULT_LIMITS,
) -> RetentionReport:
    """Every copy of the purged documents (id: (sha256, size)) ticketd still holds, read
    within `limits` (`reach`)."""
    report = RetentionReport(dry_run=False)
    digests = {sha for sha, _ in purged.values()}
    digests -= _held_elsewhere(db, digests)
    if not digests:
        return report
    smallest = min(size for sha, size in purged.values() if sha in digests)
    why = "the retention of an identity document ended"

    def rewrite(raw: bytes) -> bytes | None:
        return without_files(raw, digests, why, limits)

    with db.read() as session:
        entries = list(
            session.scalars(
                select(JournalEntry.id).where(
                    JournalEntry.state.in_(FINISHED),
                    JournalEntry.size >= smallest,
                    # A stripped or removed copy holds no file any more.
                    JournalEntry.raw_state.is_(None) | (JournalEntry.raw_state == RAW_REDACTED),
                )
            )
        )
        mails = list(
            session.scalars(
                select(OutboxMail.id).where(
                    func.length(OutboxMail.raw) >= smallest,
                    OutboxMail.raw_state.is_(None) | (OutboxMail.raw_state == RAW_REDACTED),
                )
            )
        )
    for entry_id in entries:
        if replace_raw(db, blobs, entry_id, rewrite, RAW_REDACTED, now):
            report.raw_redacted.append(entry_id)
    for outbox_id in mails:
        if _replace_outbox(db, outbox_id, rewrite, RAW_REDACTED, now):
            report.outbox_changed.append(outbox_id)
    _delete_exports(db, list(purged), digests, report, limits)
    if maildir is not None and maildir.is_dir():
        _redact_maildir(maildir, rewrite, smallest, report)
    report.temporary = remove_stale_temporary(blobs)
    db.forget()
    return report


def _due_raw(db: Database, before: datetime) -> tuple[list[int], list[int]]:
    with db.read() as session:
        entries = session.scalars(
            select(JournalEntry.id).where(
                JournalEntry.state.in_(FINISHED),
                JournalEntry.processed_at <= before,
                JournalEntry.raw_state.is_(None) | (JournalEntry.raw_state == RAW_REDACTED),
            )
        ).all()
        mails = session.scalars(
            select(OutboxMail.id).where(
                OutboxMail.state.in_(DELIVERED),
                OutboxMail.created_at <= before,
                OutboxMail.raw_state.is_(None) | (OutboxMail.raw_state == RAW_REDACTED),
            )
        ).all()
    return list(entries), list(mails)


def _strip_raw(
    db: Database, blobs: BlobStore, config: Config, now: datetime, report: RetentionReport
) -> None:
    days = config.retention.raw_days
    entries, mails = _due_raw(db, now - timedelta(days=days))
    why = f"retention.raw_days = {days}"
    limits = reach(config)
    if report.dry_run:
        report.raw_stripped, report.outbox_changed = entries, mails
        return

    def rewrite(raw: bytes) -> bytes | None:
        copy = without_attachments(raw, why, limits)
        return None if copy == raw else copy

    def rewrite_all(raw: bytes) -> bytes:
        return without_attachments(raw, why, limits)

    for entry_id in entries:
        changed = replace_raw(db, blobs, entry_id, rewrite, RAW_STRIPPED, now)
        if not changed:  # nothing to take out: the row says it was looked at
            _mark(db, entry_id, RAW_STRIPPED, now)
        report.raw_stripped.append(entry_id)
    for outbox_id in mails:
        _replace_outbox(db, outbox_id, rewrite_all, RAW_STRIPPED, now)
        report.outbox_changed.append(outbox_id)


def _mark(db: Database, entry_id: int, state: str, now: datetime) -> None:
    with db.transaction() as session:
        entry = session.get(JournalEntry, entry_id, with_for_update=True)
        if entry is not None:
            entry.raw_state, entry.raw_changed_at = _later(entry.raw_state, state), now


def ticket_journal_ids(session: Session, ticket_id: int) -> set[int]:
    """The journal rows of a ticket's mail: those its messages name, and those the worker
    processed into it that no message names (an agent's answer becomes an outgoing message;
    the worker's outcome, "ticket REF: ...", says where the mail went)."""
    ref = session.scalar(select(Ticket.ref).where(Ticket.id == ticket_id))
    named = session.scalars(
        select(TicketMessage.journal_id).where(
            TicketMessage.ticket_id == ticket_id, TicketMessage.journal_id.is_not(None)
        )
    )
    found = {journal_id for journal_id in named if journal_id is not None}
    if ref is not None:
        found |= set(
            session.scalars(
                select(JournalEntry.id).where(JournalEntry.reason.like(f"ticket {ref}:%"))
            )
        )
    return found


def remove_ticket_text(
    db: Database, blobs: BlobStore, ticket_id: int, why: str, now: datetime, report: RetentionReport
) -> None:
    """Every message's text and raw copy of one ticket; its record stays."""
    with db.transaction() as session:
        messages = session.scalars(
            select(TicketMessage).where(TicketMessage.ticket_id == ticket_id)
        ).all()
        journal_ids = ticket_journal_ids(session, ticket_id)
        for message in messages:
            message.text = ""
        report.webhooks += forget_deliveries(session, [ticket_id])
        session.execute(
            update(Ticket)
            .where(Ticket.id == ticket_id)
            .values(text_removed_at=now, satisfaction_comment=None, request_print=None)
        )
        mails = list(
            session.scalars(select(OutboxMail.id).where(OutboxMail.ticket_id == ticket_id))
        )
    for entry_id in sorted(journal_ids):
        if replace_raw(db, blobs, entry_id, lambda raw: headers_only(raw, why), RAW_REMOVED, now):
            report.raw_removed.append(entry_id)
    for outbox_id in mails:
        if _replace_outbox(db, outbox_id, lambda raw: headers_only(raw, why), RAW_REMOVED, now, ""):
            report.outbox_changed.append(outbox_id)


def _closed_tickets(
    db: Database, blobs: BlobStore, config: Config, now: datetime, report: RetentionReport
) -> None:
    days = config.retention.ticket_days
    if days is None:
        return
    with db.read() as session:
        due = session.execute(
            select(Ticket.id, Ticket.ref).where(
                Ticket.status.in_(("closed", "merged")),
                Ticket.text_removed_at.is_(None),
                Ticket.updated_at <= now - timedelta(days=days),
            )
        ).all()
    report.tickets += [ref for _, ref in due]
    if report.dry_run:
        return
    for ticket_id, _ in due:
        why = f"retention.ticket_days = {days}"
        remove_ticket_text(db, blobs, ticket_id, why, now, report)
    if due:
        with db.transaction() as session:
            forget_removed_text(session)  # once for all: it rewrites the whole index


def remove_stale_temporary(blobs: BlobStore) -> int:
    """Temporary files a crashed writer left in the blob store (sealed, but copies all the
    same), once older than the sweep's minimum grace: no writer takes that long."""
    cutoff = time.time() - MINIMUM_GRACE.total_seconds()
    removed = 0
    if not blobs.root.exists():
        return 0
    for path in blobs.root.glob("*/*/.*.tmp"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed


def run_retention(
    db: Database, blobs: BlobStore, config: Config, now: datetime, dry_run: bool = False
) -> RetentionReport:
    """One pass: raw copies past `raw_days`, closed tickets past `ticket_days`, then the
    blobs noted as removed that are still on disk and stale temporary files."""
    report = RetentionReport(dry_run=dry_run)
    _strip_raw(db, blobs, config, now, report)
    with db.transaction(rehearse=dry_run) as session:
        before = now - timedelta(days=config.retention.raw_days)
        report.webhooks += forget_deliveries(session, finished_before=before)
    _closed_tickets(db, blobs, config, now, report)
    if not dry_run:
        # Mail composed before the outbox was sealed (storage/sealed_rows.py) is sealed now.
        report.outbox_sealed = reseal_outbox(db, outbox_not_under(db, None))
        report.blobs_deleted = finish(db, blobs)
        report.temporary = remove_stale_temporary(blobs)
        db.forget()
    return report
