"""`ticketd customer erase ADDRESS [--dry-run]` (issue 16): the right to erasure.

Every copy of the customer's mail, attachments and documents goes: the raw messages (journal
blobs) of their tickets and every other message they sent (ignored or quarantined ones too)
are replaced by a note without a byte of the message; documents' blobs are deleted; the text,
subject and file names of their tickets' messages and of the mail we sent them are emptied,
and that mail's files in `smtp_out.maildir` (delivery without a relay) become a stub.
What must stay (ticket records for the statistics, SLA events, survey scores, document records
and audit rows) stays with a pseudonym (`erased-...`) instead of their address and without their
name. Their address is kept only as an HMAC (`erasures.address_key`, outbound/addresses.py), by
which automatic mail to them is suppressed from then on (outbound/automatic.py).

Crash safety: step 1 commits an `erasures` row (state started, holding the address) with the
pseudonym; step 2 changes every row in one transaction that ends with the row done and the
address gone; step 3 deletes the blobs step 2 noted as removed (storage/removals.py). A crash
before step 2's commit leaves a started row: running the command again, or the daemon's next
retention pass (`resume_erasures`), resumes it under the same pseudonym; after it, the noted
blobs are deleted by the next pass. Several daemons on PostgreSQL: step 2 locks the erasures row
(`FOR UPDATE`), so a second erasure of the same customer waits and then finds nothing left.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import asdict, dataclass, field
from datetime import datetime
from email.parser import BytesParser
from email.policy import compat32
from email.utils import getaddresses
from pathlib import Path
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from domain.config import Config
from outbound.addresses import erased_key
from outbound.maildir_files import delivered, replace_file
from storage.blobs import BlobStore
from storage.db import Database
from storage.models import (
    ERASURE_DONE,
    ERASURE_STARTED,
    JOURNAL_DISMISSED,
    JOURNAL_IGNORED,
    JOURNAL_PENDING,
    JOURNAL_QUARANTINED,
    OUTBOX_QUEUED,
    OUTBOX_SUPPRESSED,
    RAW_REMOVED,
    AccessAudit,
    Document,
    DocumentAccess,
    Erasure,
    JournalEntry,
    OutboxMail,
    Participant,
    SlaEvent,
    Suppression,
    Ticket,
    TicketMessage,
    Verification,
)
from storage.removals import finish, note_removed
from storage.search import forget_removed_text
from storage.webhook_events import forget_deliveries
from ticketd.access import ADMIN
from ticketd.customer_export import customer_tickets
from ticketd.retention import ticket_journal_ids

ERASED = "[erased]"
STUB = b"Subject: erased\r\n\r\nThe message was erased at the sender's request.\r\n"
# What a file ticketd delivered into its Maildir (to them, or about them) holds afterwards.
SENT_STUB = b"Subject: erased\r\n\r\nThis mail was erased with the data of a customer.\r\n"


@dataclass
class ErasureReport:
    customer: str  # the pseudonym
    dry_run: bool
    resumed: bool = False
    tickets: list[str] = field(default_factory=list)
    messages: int = 0
    raw_messages: int = 0
    documents: int = 0
    outbox: int = 0
    maildir: int = 0  # files ticketd delivered into smtp_out.maildir, rewritten
    webhooks: int = 0  # deliveries about their tickets, removed
    other: int = 0  # verification state, access audit and suppression rows naming them
    erased_before: bool = False  # an earlier erasure of the address was done
    blobs: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.tickets or self.messages or self.raw_messages or self.documents)

    @property
    def found(self) -> bool:
        """Anything at all was held about the address."""
        return self.changed or bool(self.outbox or self.maildir or self.webhooks or self.other)


class _Swap:
    """Replaces the address (and the names it went by) in the values that stay."""

    def __init__(self, address: str, pseudonym: str) -> None:
        self.address, self.pseudonym = address, pseudonym

    def one(self, value: str | None) -> str | None:
        return self.pseudonym if value is not None and value.lower() == self.address else value

    def many(self, values: list[str]) -> list[str]:
        return [self.pseudonym if v.lower() == self.address else v for v in values]

    def text(self, value: str | None) -> str | None:
        if value is None or self.address not in value.lower():
            return value
        start = value.lower().find(self.address)
        while start >= 0:
            value = value[:start] + self.pseudonym + value[start + len(self.address) :]
            start = value.lower().find(self.address, start + len(self.pseudonym))
        return value


def _begin(db: Database, address: str, key: str, actor: str, now: datetime) -> tuple[str, bool]:
    """Step 1: the started row and its pseudonym (an unfinished erasure's, when resumed)."""
    with db.transaction() as session:
        row = session.scalar(select(Erasure).where(Erasure.address_key == key))
        if row is not None:  # unfinished: resumed; done: only what arrived since is erased
            return row.pseudonym, row.state == ERASURE_STARTED
    pseudonym = f"erased-{secrets.token_hex(6)}"
    try:
        with db.transaction() as session:
            session.add(
                Erasure(
                    address_key=key,
                    pseudonym=pseudonym,
                    address=address,
                    state=ERASURE_STARTED,
                    actor=actor,
                    started_at=now,
                )
            )
    except IntegrityError:  # another daemon began the same erasure at this moment
        return _begin(db, address, key, actor, now)
    return pseudonym, False


def _messages(session: Session, swap: _Swap, tickets: list[Ticket], report: ErasureReport) -> None:
    """Their tickets' messages lose text, subject and file names; elsewhere, what they wrote."""
    own = {t.id for t in tickets if t.customer == swap.address}
    query = select(TicketMessage).where(
        or_(
            TicketMessage.ticket_id.in_([t.id for t in tickets]),
            TicketMessage.from_addr == swap.address,
        )
    )
    for message in session.scalars(query):
        if message.ticket_id in own or message.from_addr == swap.address:
            if message.from_addr == swap.address or message.kind != "agent":
                message.from_name = None
            message.text, message.subject = "", ERASED
            message.attachments = [{**a, "filename": ERASED} for a in message.attachments]
        message.text = swap.text(message.text) or ""  # a note elsewhere naming them
        message.from_addr = swap.one(message.from_addr) or ""
        message.to_addrs, message.cc_addrs = (
            swap.many(message.to_addrs),
            swap.many(message.cc_addrs),
        )
        report.messages += 1


def _tickets(session: Session, swap: _Swap, tickets: list[Ticket], report: ErasureReport) -> None:
    for ticket in tickets:
        if ticket.customer == swap.address:
            ticket.customer, ticket.customer_name = swap.pseudonym, None
            ticket.subject, ticket.satisfaction_comment = ERASED, None
            ticket.request_print = None  # a digest of their words
        report.tickets.append(ticket.ref)
        for event in session.scalars(select(SlaEvent).where(SlaEvent.ticket_id == ticket.id)):
            event.outcome = swap.text(event.outcome)
    for participant in session.scalars(
        select(Participant).where(Participant.email == swap.address)
    ):
        participant.email = swap.pseudonym


def _sent_them(
    session: Session, swap: _Swap, tickets: list[Ticket], report: ErasureReport
) -> list[int]:
    """The mail we sent them (or about their tickets): bytes, text and address go; the ids."""
    query = select(OutboxMail).where(
        or_(OutboxMail.ticket_id.in_([t.id for t in tickets]), OutboxMail.recipient == swap.address)
    )
    ids = []
    for mail in session.scalars(query):
        ids.append(mail.id)
        mail.raw, mail.text, mail.subject = b"", "", ERASED
        mail.raw_state = RAW_REMOVED
        mail.recipient = swap.one(mail.recipient) or ""
        mail.recipients = swap.many(mail.recipients)
        mail.last_error = swap.text(mail.last_error)
        if mail.state == OUTBOX_QUEUED:
            mail.state, mail.last_error = OUTBOX_SUPPRESSED, "the customer's data was erased"
        report.outbox += 1
    return ids


def _delivered_files(maildir: Path | None, outbox_ids: list[int], report: ErasureReport) -> None:
    """The same mail as ticketd delivered it into its Maildir (no relay), still in `new/` or
    `cur/`: rewritten under its name and mode. Before the rows' commit: a crash leaves the
    rows to a rerun, which finds the same files."""
    if maildir is None or not outbox_ids:
        return
    for path in delivered(maildir, outbox_ids):
        try:
            if path.read_bytes() == SENT_STUB:
                continue  # an erasure cut short did this one
            if not report.dry_run:
                replace_file(maildir, path, SENT_STUB)
        except FileNotFoundError:
            continue  # taken by the Maildir's reader meanwhile
        report.maildir += 1


def unlinked_from(db: Database, blobs: BlobStore, address: str) -> set[int]:
    """Ignored or quarantined messages whose From is the address (no ticket names them; an IMAP
    message has no envelope sender to find it by)."""
    with db.read() as session:
        rows = session.execute(
            select(JournalEntry.id, JournalEntry.blob_key).where(
                JournalEntry.state.in_((JOURNAL_IGNORED, JOURNAL_QUARANTINED, JOURNAL_DISMISSED)),
                JournalEntry.raw_state.is_distinct_from(RAW_REMOVED),
            )
        ).all()
    found = set()
    for entry_id, blob_key in rows:
        try:
            head = BytesParser(policy=compat32).parsebytes(blobs.get(blob_key), headersonly=True)
            senders = getaddresses([str(v) for v in head.get_all("From", [])])
        except Exception:  # unreadable: not provably theirs
            continue
        if any(email.strip().lower() == address for _, email in senders):
            found.add(entry_id)
    return found


def _journal(
    session: Session,
    swap: _Swap,
    tickets: list[Ticket],
    found: set[int],
    stub: str,
    now: datetime,
    report: ErasureReport,
) -> None:
    """Every raw message of theirs: their tickets' mail and anything else they sent."""
    ids = set(found)
    for ticket in tickets:
        if ticket.customer == swap.address:
            ids |= ticket_journal_ids(session, ticket.id)
    ids |= {
        journal_id
        for journal_id in session.scalars(
            select(TicketMessage.journal_id).where(TicketMessage.from_addr == swap.address)
        )
        if journal_id is not None
    }
    query = select(JournalEntry).where(
        or_(JournalEntry.id.in_(ids), JournalEntry.envelope_from == swap.address),
        JournalEntry.state != JOURNAL_PENDING,
    )
    for entry in session.scalars(query.with_for_update()):
        if entry.blob_key != stub:
            report.blobs.append(entry.blob_key)
        entry.blob_key, entry.size, entry.raw_state, entry.raw_changed_at = (
            stub,
            len(STUB),
            RAW_REMOVED,
            now,
        )
        entry.envelope_from = swap.one(entry.envelope_from)
        entry.reason = swap.text(entry.reason)
        report.raw_messages += 1


def _documents(
    session: Session, swap: _Swap, actor: str, now: datetime, report: ErasureReport
) -> None:
    for document in session.scalars(select(Document).where(Document.customer == swap.address)):
        if document.blob_key is not None:
            report.blobs.append(document.blob_key)
            document.blob_key, document.purged_at = None, now
        document.customer = swap.pseudonym
        document.filename = f"document.{document.detected_type}"
        session.add(
            DocumentAccess(
                document_id=document.id,
                actor=actor,
                action="erase",
                at=now,
                detail="the customer's erasure",
            )
        )
        report.documents += 1
    for row in session.scalars(select(Verification).where(Verification.customer == swap.address)):
        row.customer = swap.pseudonym
        report.other += 1
    for audit in session.scalars(select(AccessAudit).where(AccessAudit.customer == swap.address)):
        audit.customer, audit.detail = swap.pseudonym, swap.text(audit.detail)
        report.other += 1
    removed = session.execute(delete(Suppression).where(Suppression.address == swap.address))
    report.other += int(getattr(removed, "rowcount", 0) or 0)


def _erase_rows(
    db: Database,
    key: str,
    swap: _Swap,
    found: set[int],
    stub: str,
    actor: str,
    now: datetime,
    report: ErasureReport,
    maildir: Path | None = None,
) -> None:
    """Step 2, one transaction (rolled back for a dry run)."""
    with db.transaction(rehearse=report.dry_run) as session:
        row = session.scalar(select(Erasure).where(Erasure.address_key == key).with_for_update())
        tickets = customer_tickets(session, swap.address)
        # The raw mail, then the messages: both find theirs by the address `_tickets` replaces.
        _journal(session, swap, tickets, found, stub, now, report)
        _messages(session, swap, tickets, report)
        _tickets(session, swap, tickets, report)
        _delivered_files(maildir, _sent_them(session, swap, tickets, report), report)
        report.webhooks = forget_deliveries(session, [t.id for t in tickets])
        _documents(session, swap, actor, now, report)
        note_removed(session, [k for k in report.blobs if k != stub])
        if report.messages and not report.dry_run:
            forget_removed_text(session)  # their words out of the search index too
        _record(session, row, swap, actor, now, report)


def _record(
    session: Session,
    row: Erasure | None,
    swap: _Swap,
    actor: str,
    now: datetime,
    report: ErasureReport,
) -> None:
    """The erasure row done and the audit; an address nothing was ever held about gets
    neither (its started row goes: a mistyped address is not suppressed for good)."""
    first = row is not None and row.state == ERASURE_STARTED
    report.erased_before = row is not None and not first
    if row is not None:
        report.customer = row.pseudonym  # a dry run's too
    if not report.found:
        if first:
            session.delete(row)
        return
    if row is not None:
        row.state, row.address, row.finished_at = ERASURE_DONE, None, now
        row.detail = json.dumps({k: v for k, v in asdict(report).items() if k != "blobs"})
    if report.changed or first:
        session.add(
            AccessAudit(
                actor=actor,
                action="customer erase",
                customer=swap.pseudonym,
                at=now,
                detail=f"{len(report.tickets)} ticket(s), "
                f"{report.raw_messages} raw message(s), {report.documents} document(s)",
            )
        )


def erase_customer(
    db: Database,
    config: Config,
    blobs: BlobStore,
    now: datetime,
    address: str,
    dry_run: bool = False,
    actor: str = ADMIN,
) -> ErasureReport:
    address = address.strip().lower()
    key = erased_key(config.desk.secret, address)
    if dry_run:
        pseudonym, resumed = "erased-(dry run)", False
    else:
        pseudonym, resumed = _begin(db, address, key, actor, now)
    report = ErasureReport(pseudonym, dry_run, resumed)
    stub = hashlib.sha256(STUB).hexdigest() if dry_run else blobs.put(STUB)
    found = unlinked_from(db, blobs, address)
    swap = _Swap(address, pseudonym)
    # Also with a relay now: files of a time without one are ticketd's copies all the same.
    maildir = config.smtp_out.maildir
    _erase_rows(db, key, swap, found, stub, actor, now, report, maildir)
    if not dry_run:
        finish(db, blobs, report.blobs)
        db.forget()
    return report


def resume_erasures(db: Database, config: Config, blobs: BlobStore, now: datetime) -> list[str]:
    """Finish every erasure a crash left started (the daemon's retention pass runs this)."""
    with db.read() as session:
        started = session.execute(
            select(Erasure.address, Erasure.actor).where(Erasure.state == ERASURE_STARTED)
        ).all()
    done = []
    for address, actor in started:
        if address is not None:
            done.append(erase_customer(db, config, blobs, now, address, actor=actor).customer)
    return done


def report_json(report: ErasureReport) -> dict[str, Any]:
    return {**asdict(report), "blobs": len(report.blobs)}
