"""Identity documents from the command line (issue 6): list, export, audit and purge.

Every export and purge is written to the access audit in the same transaction that reads or
changes the documents. Nothing here prints or logs a document's content: only its metadata.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from domain.config import Config
from domain.errors import Permanent
from domain.refs import normalise
from ingest.documents_review import is_kyc_agent
from ingest.filenames import typed_filename
from storage.blobs import BlobStore
from storage.db import Database
from storage.documents import DocumentStore
from storage.models import (
    DOC_APPROVED,
    DOC_EXPIRED,
    DOC_RECEIVED,
    DOC_REJECTED,
    Document,
    DocumentAccess,
    Ticket,
)
from storage.removals import finish, note_removed
from ticketd.access import AccessRefused, check_ticket
from ticketd.retention import reach, remove_document_copies


class DocumentAdminError(Permanent):
    """Something an admin asked for that cannot be done: no ticket, not an identity agent."""


def ticket_by_ref_in(session: Session, ref: str) -> Ticket | None:
    return session.scalar(select(Ticket).where(Ticket.ref == (normalise(ref) or ref)))


def document_record(document: Document) -> dict[str, Any]:
    """What a listing or an export says of one document: the record that stays after a purge."""
    return {
        "filename": document.filename,
        "type": document.detected_type,
        "size": document.size,
        "sha256": document.sha256,
        "state": document.state,
        "decided_by": document.decided_by,
        "decided_at": document.decided_at,
        "reason": document.reason,
        "received_at": document.received_at,
        "purged_at": document.purged_at,
    }


def _row(document: Document, ref: str) -> dict[str, Any]:
    return {
        "id": document.id,
        "ticket": ref,
        "customer": document.customer,
        **document_record(document),
    }


def list_documents(db: Database, ref: str) -> list[dict[str, Any]]:
    with db.read() as session:
        ticket = ticket_by_ref_in(session, ref)
        if ticket is None:
            raise DocumentAdminError(f"no ticket {ref}")
        documents = session.scalars(
            select(Document).where(Document.ticket_id == ticket.id).order_by(Document.id)
        )
        return [_row(d, ticket.ref) for d in documents]


def kyc_agent(config: Config, email: str) -> str:
    """The agent's configured address, when they are an agent of the identity (kyc) queue."""
    agent = config.team.agent(email)
    if agent is None or not is_kyc_agent(config.team, agent):
        raise DocumentAdminError(f"{email} is not an agent of the identity (kyc) queue")
    return agent.email


def export_name(document: Document) -> str:
    """The id first, so two customers' "kimlik.jpg" never overwrite each other; the name made
    safe (ingest/filenames.py) with an extension of the detected type, never another type's."""
    return f"{document.id}-{typed_filename(document.filename, document.detected_type)}"


def _write_private(target: Path, content: bytes) -> None:
    """Write `target` for its owner only (0600, whatever mode a file there had), never through
    a symbolic link at that name (it would write wherever the link points) nor into a FIFO or
    a device."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
    try:
        fd = os.open(target, flags, 0o600)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise DocumentAdminError(f"{target} is a symbolic link: refused") from error
        raise DocumentAdminError(f"{target}: {error.strerror}") from error
    with os.fdopen(fd, "wb") as out:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise DocumentAdminError(f"{target} is not a regular file: refused")
        os.fchmod(fd, 0o600)
        out.truncate()
        out.write(content)


def export_documents(
    db: Database,
    config: Config,
    blobs: BlobStore,
    now: datetime,
    ref: str,
    folder: Path,
    agent_email: str,
) -> list[Path]:
    """Decrypt the ticket's stored documents into `folder` (owner-only files), audited."""
    agent = kyc_agent(config, agent_email)
    with db.read() as session:
        found = ticket_by_ref_in(session, ref)
        if found is None:
            raise DocumentAdminError(f"no ticket {ref}")
        canonical = found.ref
    try:  # an identity agent, and the ticket in their queues (ticketd/access.py)
        check_ticket(db, config, now, canonical, agent, "kyc export")
    except AccessRefused as error:
        raise DocumentAdminError(str(error)) from error
    store = DocumentStore.open(blobs, config.kyc.key_file)
    if folder.is_symlink():
        raise DocumentAdminError(f"{folder} is a symbolic link: refused")
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with db.transaction() as session:
        ticket = ticket_by_ref_in(session, ref)
        if ticket is None:
            raise DocumentAdminError(f"no ticket {ref}")
        documents = session.scalars(
            select(Document)
            .where(Document.ticket_id == ticket.id, Document.blob_key.is_not(None))
            .order_by(Document.id)
        )
        for document in documents:
            assert document.blob_key is not None
            content = store.get(document.blob_key, document.sha256)
            target = folder / export_name(document)
            _write_private(target, content)
            session.add(
                DocumentAccess(
                    document_id=document.id,
                    actor=agent,
                    action="export",
                    at=now,
                    detail=str(target),
                )
            )
            written.append(target)
    return written


def audit(db: Database) -> list[dict[str, Any]]:
    with db.read() as session:
        rows = session.execute(
            select(DocumentAccess, Document, Ticket.ref)
            .join(Document, Document.id == DocumentAccess.document_id)
            .join(Ticket, Ticket.id == Document.ticket_id)
            .order_by(DocumentAccess.id)
        )
        return [
            {
                "at": access.at,
                "actor": access.actor,
                "action": access.action,
                "document": document.id,
                "ticket": ref,
                "filename": document.filename,
                "detail": access.detail,
            }
            for access, document, ref in rows
        ]


@dataclass(frozen=True)
class Purged:
    document: int
    ticket: str
    state: str
    decided_at: datetime | None


# The [kyc] setting that bounds each state's retention: approved and rejected documents count
# from the decision, received ones (never decided) from their arrival.
_RETENTION_RULES = {
    DOC_APPROVED: "retention_days",
    DOC_REJECTED: "rejected_retention_days",
    DOC_RECEIVED: "abandoned_retention_days",
}


def _retention_ended(config: Config, now: datetime) -> ColumnElement[bool]:
    """A document whose state's retention has run out by `now`."""
    cutoff = {
        state: now - timedelta(days=getattr(config.kyc, rule))
        for state, rule in _RETENTION_RULES.items()
    }
    return or_(
        (Document.state == DOC_APPROVED) & (Document.decided_at <= cutoff[DOC_APPROVED]),
        (Document.state == DOC_REJECTED) & (Document.decided_at <= cutoff[DOC_REJECTED]),
        (Document.state == DOC_RECEIVED) & (Document.received_at <= cutoff[DOC_RECEIVED]),
    )


def _purge_content(
    session: Session, config: Config, document: Document, now: datetime, actor: str
) -> str:
    """Unlink one document's content from its record and audit it; the blob key to delete."""
    rule = _RETENTION_RULES[document.state]
    blob_key = document.blob_key
    assert blob_key is not None
    if document.state == DOC_RECEIVED:  # abandoned: nobody decided in time
        document.state = DOC_EXPIRED
    document.blob_key = None
    document.purged_at = now
    session.add(
        DocumentAccess(
            document_id=document.id,
            actor=actor,
            action="purge",
            at=now,
            detail=f"kyc.{rule} = {getattr(config.kyc, rule)}",
        )
    )
    return blob_key


def purge(
    db: Database,
    config: Config,
    blobs: BlobStore,
    now: datetime,
    dry_run: bool = False,
    actor: str = "ticketd",
) -> list[Purged]:
    """Delete the content of documents whose retention ended; the records stay.

    Approved ones `retention_days` after the decision, rejected ones `rejected_retention_days`
    after it, and abandoned ones (received, never decided) `abandoned_retention_days` after
    they arrived: those become expired. Rows are taken with `FOR UPDATE SKIP LOCKED`, so two
    daemons purging at once split the work instead of purging (and auditing) a file twice.
    """
    gone: list[str] = []
    copies: dict[int, tuple[str, int]] = {}
    found: list[Purged] = []
    due = (
        select(Document, Ticket.ref)
        .join(Ticket, Ticket.id == Document.ticket_id)
        .where(Document.blob_key.is_not(None), _retention_ended(config, now))
        .order_by(Document.id)
        .with_for_update(skip_locked=True, of=Document)
    )
    with db.transaction() as session:
        for document, ref in session.execute(due):
            found.append(Purged(document.id, ref, document.state, document.decided_at))
            if dry_run:
                continue
            copies[document.id] = (document.sha256, document.size)
            gone.append(_purge_content(session, config, document, now, actor))
        note_removed(session, gone)
    # After the commit: a failed transaction must not leave records pointing at deleted
    # blobs. A crash between the two leaves the blobs noted as removed; the next purge or
    # retention pass deletes them (storage/removals.py).
    finish(db, blobs, gone)
    if copies:
        # The same file in raw mail, the outbox, exports, the Maildir (ticketd/retention.py).
        maildir = config.smtp_out.maildir
        remove_document_copies(db, blobs, copies, now, maildir, reach(config))
    return found
