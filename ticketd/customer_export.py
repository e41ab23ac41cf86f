"""`ticketd customer export ADDRESS --to DIR [--agent EMAIL]` (issue 16): the right of access.

Everything ticketd holds about one customer, in clear, in a new folder (0700) of owner-only
files (0600): each ticket they opened or took part in (its record, its messages' text, the raw
mail it was made of, the mail we sent them, the files found in that mail), their identity
documents still held (a purged one is in the manifest as a record without a file), their
verification state, survey answers and the audit rows about them, and `manifest.json` naming
every file with its SHA-256. A folder that exists and is not empty, or a symbolic link, is
refused: an export never overwrites anything, nor writes through a link.

The export is audited in the transaction that reads the data (`access_audit`, one row per
ticket, and `document_access` rows naming each file that holds a document), so the purge of a
document deletes the exported copies too (ticketd/retention.py). With `--agent`, the agent must
be an agent of every ticket's queue (or its assignee); otherwise nothing is written and the
refusal is audited. Without it, the command line acts as the desk's admin.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from domain.config import Config
from domain.message import FORWARDED, AttachmentInfo
from ingest.mime_shape import DEFAULT_LIMITS, ShapeLimits
from ingest.parsing import parse_message
from ingest.redact import file_digests
from outbound.survey import satisfaction
from storage.blobs import BlobStore
from storage.db import Database
from storage.documents import DocumentStore
from storage.models import (
    AccessAudit,
    Document,
    DocumentAccess,
    JournalEntry,
    OutboxMail,
    Participant,
    Ticket,
    TicketMessage,
    Verification,
)
from ticketd.access import AccessRefused, acting_agent, outside_area, refuse
from ticketd.documents_admin import document_record, export_name
from ticketd.retention import reach, ticket_journal_ids


class CustomerCommandError(AccessRefused):
    """What the admin asked cannot be done: the target folder, the agent's area."""


@dataclass
class Export:
    folder: Path
    customer: str
    actor: str
    at: datetime
    files: list[dict[str, Any]] = field(default_factory=list)
    # (path, SHA-256s of identity documents the file holds), for the purge's cleanup.
    holding: list[tuple[str, set[str]]] = field(default_factory=list)
    # The audit rows, written once every file is.
    audit: list[AccessAudit | DocumentAccess] = field(default_factory=list)
    # How far mail is read for the files it holds (ticketd/retention.py `reach`).
    limits: ShapeLimits = DEFAULT_LIMITS

    def write(self, relative: str, data: bytes, kind: str, ticket: str | None = None) -> Path:
        path = self.folder / relative
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        fd = os.open(path, flags, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        digest = hashlib.sha256(data).hexdigest()
        self.files.append(
            {"path": relative, "kind": kind, "ticket": ticket, "size": len(data), "sha256": digest}
        )
        return path

    def write_json(self, relative: str, value: Any, kind: str, ticket: str | None = None) -> None:
        text = json.dumps(value, ensure_ascii=False, indent=2, default=str) + "\n"
        self.write(relative, text.encode("utf-8"), kind, ticket)


def prepare_folder(folder: Path) -> None:
    """A new folder (0700), or an empty one that is not a symbolic link."""
    if folder.is_symlink():
        raise CustomerCommandError(f"{folder} is a symbolic link: give a real folder")
    if folder.exists():
        if not folder.is_dir():
            raise CustomerCommandError(f"{folder} exists and is not a folder")
        if any(folder.iterdir()):
            raise CustomerCommandError(f"{folder} is not empty: an export never overwrites")
        folder.chmod(0o700)
        return
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.mkdir(mode=0o700)


def customer_tickets(session: Session, customer: str) -> list[Ticket]:
    """The tickets a customer opened or took part in, oldest first."""
    joined = select(Participant.ticket_id).where(Participant.email == customer)
    return list(
        session.scalars(
            select(Ticket)
            .where(or_(Ticket.customer == customer, Ticket.id.in_(joined)))
            .order_by(Ticket.id)
        )
    )


def _ticket_record(ticket: Ticket) -> dict[str, Any]:
    return {
        "ref": ticket.ref,
        "status": ticket.status,
        "category": ticket.category,
        "queue": ticket.queue,
        "assignee": ticket.assignee,
        "priority": ticket.priority,
        "customer": ticket.customer,
        "customer_name": ticket.customer_name,
        "language": ticket.language,
        "subject": ticket.subject,
        "created_at": ticket.created_at,
        "updated_at": ticket.updated_at,
        "text_removed_at": ticket.text_removed_at,
        "sla": {
            "first_answer_due": ticket.sla_first_answer_due,
            "next_answer_due": ticket.sla_next_answer_due,
            "resolution_due": ticket.sla_resolution_due,
            "first_answered_at": ticket.sla_first_answered_at,
        },
        "satisfaction": satisfaction(ticket),
    }


def _message_record(message: TicketMessage) -> dict[str, Any]:
    return {
        "direction": message.direction,
        "kind": message.kind,
        "from": message.from_addr,
        "from_name": message.from_name,
        "to": list(message.to_addrs),
        "cc": list(message.cc_addrs),
        "subject": message.subject,
        "text": message.text,
        "attachments": list(message.attachments),
        "message_id": message.message_id,
        "at": message.created_at,
    }


def _write_mail(export: Export, relative: str, raw: bytes, kind: str, ref: str) -> list[Any]:
    """A raw mail as an .eml file; returns the files ticketd's parser finds in it."""
    path = export.write(relative, raw, kind, ref)
    found = list(parse_message(raw, export.limits).attachments)
    export.holding.append((str(path), {hashlib.sha256(a.payload).hexdigest() for a in found}))
    return found


def _held_by(export: Export, attachment: AttachmentInfo) -> set[str]:
    """The SHA-256s of what an exported attachment holds: its own bytes, and for a forwarded
    message (an .eml) every file inside it, at any depth, so the purge of a document found in
    a forward deletes that .eml too."""
    held = {hashlib.sha256(attachment.payload).hexdigest()}
    if attachment.role == FORWARDED:
        held |= file_digests(attachment.payload, export.limits)
    return held


def _raw_mail(export: Export, session: Session, blobs: BlobStore, ticket: Ticket) -> None:
    """The raw mail the ticket was made of, and the files in it; the mail we sent them."""
    base = f"tickets/{ticket.ref}"
    for journal_id in sorted(ticket_journal_ids(session, ticket.id)):
        entry = session.get(JournalEntry, journal_id)
        try:
            raw = blobs.get(entry.blob_key) if entry is not None else None
        except FileNotFoundError:
            raw = None
        if raw is None:
            continue
        found = _write_mail(export, f"{base}/raw/{journal_id}.eml", raw, "raw message", ticket.ref)
        for number, attachment in enumerate(found, 1):
            name = f"{base}/attachments/{journal_id}-{number}-{attachment.filename}"
            written = export.write(name, attachment.payload, "attachment", ticket.ref)
            export.holding.append((str(written), _held_by(export, attachment)))
    sent = session.scalars(
        select(OutboxMail).where(
            OutboxMail.ticket_id == ticket.id, OutboxMail.recipient == export.customer
        )
    )
    for mail in sent:
        if mail.raw:
            _write_mail(export, f"{base}/sent/{mail.id}.eml", mail.raw, "sent mail", ticket.ref)


def _tickets(export: Export, session: Session, blobs: BlobStore, tickets: list[Ticket]) -> None:
    for ticket in tickets:
        base = f"tickets/{ticket.ref}"
        export.write_json(f"{base}/ticket.json", _ticket_record(ticket), "ticket", ticket.ref)
        messages = session.scalars(
            select(TicketMessage)
            .where(TicketMessage.ticket_id == ticket.id)
            .order_by(TicketMessage.id)
        )
        records = [_message_record(m) for m in messages]
        export.write_json(f"{base}/messages.json", records, "messages", ticket.ref)
        _raw_mail(export, session, blobs, ticket)
        export.audit.append(
            AccessAudit(
                actor=export.actor,
                action="customer export",
                customer=export.customer,
                ticket_id=ticket.id,
                at=export.at,
                detail=str(export.folder),
            )
        )


def _documents(export: Export, session: Session, store: DocumentStore) -> list[dict[str, Any]]:
    documents = session.scalars(
        select(Document).where(Document.customer == export.customer).order_by(Document.id)
    )
    records = []
    for document in documents:
        record: dict[str, Any] = {"id": document.id, **document_record(document), "file": None}
        if document.blob_key is not None:
            content = store.get(document.blob_key, document.sha256)
            relative = f"documents/{export_name(document)}"
            export.write(relative, content, "identity document")
            record["file"] = relative
        records.append(record)
    return records


def _audit_rows(session: Session, customer: str) -> list[dict[str, Any]]:
    own = select(Document.id).where(Document.customer == customer)
    rows: list[dict[str, Any]] = [
        {
            "at": a.at,
            "actor": a.actor,
            "action": a.action,
            "document": a.document_id,
            "detail": a.detail,
        }
        for a in session.scalars(
            select(DocumentAccess)
            .where(DocumentAccess.document_id.in_(own))
            .order_by(DocumentAccess.id)
        )
    ]
    rows += [
        {
            "at": a.at,
            "actor": a.actor,
            "action": a.action,
            "ticket_id": a.ticket_id,
            "detail": a.detail,
        }
        for a in session.scalars(
            select(AccessAudit).where(AccessAudit.customer == customer).order_by(AccessAudit.id)
        )
    ]
    return rows


def _verification(session: Session, customer: str) -> dict[str, Any] | None:
    row = session.scalar(select(Verification).where(Verification.customer == customer))
    if row is None:
        return None
    names = (
        "state",
        "reason",
        "requested_at",
        "requested_by",
        "received_at",
        "decided_at",
        "decided_by",
        "expires_at",
        "expired_at",
        "expired_from",
    )
    return {name: getattr(row, name) for name in names}


def _record_document_files(export: Export, records: list[dict[str, Any]]) -> None:
    """Each exported file holding a document, in that document's audit: the purge deletes it."""
    for record in records:
        paths = [str(export.folder / record["file"])] if record["file"] else []
        paths += [path for path, digests in export.holding if record["sha256"] in digests]
        for path in paths:
            export.audit.append(
                DocumentAccess(
                    document_id=record["id"],
                    actor=export.actor,
                    action="export",
                    at=export.at,
                    detail=path,
                )
            )


def export_customer(
    db: Database,
    config: Config,
    blobs: BlobStore,
    now: datetime,
    customer: str,
    folder: Path,
    agent_email: str | None = None,
) -> Export:
    """Write the export; audited once every file is written (a failure removes the folder)."""
    customer = customer.strip().lower()
    actor = acting_agent(config, agent_email)
    store = DocumentStore.open(blobs, config.kyc.key_file)
    # Read without the write lock (on SQLite the listener keeps journaling meanwhile).
    with db.read() as session:
        tickets = outside_area(config, actor, customer_tickets(session, customer))
        outside = [(t.id, t.ref) for t in tickets]
    if outside:
        refuse(db, actor, customer, outside, now, "customer export")
    prepare_folder(folder)
    export = Export(folder, customer, actor, now, limits=reach(config))
    try:
        with db.read() as session:
            _write_all(export, session, blobs, store)
        with db.transaction() as session:
            session.add_all(export.audit)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return export


def _write_all(export: Export, session: Session, blobs: BlobStore, store: DocumentStore) -> None:
    customer = export.customer
    tickets = customer_tickets(session, customer)
    _tickets(export, session, blobs, tickets)
    documents = _documents(export, session, store)
    export.write_json("documents.json", documents, "documents")
    export.write_json("verification.json", _verification(session, customer), "verification")
    surveys = [{"ticket": t.ref, **(satisfaction(t) or {})} for t in tickets if satisfaction(t)]
    export.write_json("survey.json", surveys, "survey answers")
    export.write_json("audit.json", _audit_rows(session, customer), "audit")
    _record_document_files(export, documents)
    manifest = {
        "customer": customer,
        "exported_at": export.at,
        "exported_by": export.actor,
        "tickets": [t.ref for t in tickets],
        "documents": documents,
        "files": list(export.files),
    }
    export.write_json("manifest.json", manifest, "manifest")
