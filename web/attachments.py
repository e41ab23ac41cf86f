"""`GET /api/v1/tickets/{ref}/attachments/{id}`: a file of a ticket's message, as it came.

The id is `MESSAGE-N` (the `id` `GET /api/v1/tickets/{ref}` gives each attachment): the Nth
file of that message. The bytes are read again from the message's raw copy (the journal for
mail received, the outbox for mail sent), which is where ticketd keeps them. An identity
document (a file of a kyc ticket, or one stored as a document) goes only to the agents of the
identity queue and admins; for anyone else it does not exist (404), and the refusal is audited.
Every download is a row of `access_audit`, and of `document_access` for a document.
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from domain.message import DOCUMENT_ROLES, AttachmentInfo
from ingest.mime_shape import ShapeLimits
from ingest.parsing import parse_message
from storage.models import Document, DocumentAccess, JournalEntry, OutboxMail, Ticket, TicketMessage
from web.access import audit, is_identity_reader, visible_ticket_id
from web.auth import Caller, deps_of
from web.errors import ApiError, documented, not_found
from web.services import WebDeps
from web.tokens import Principal


def _raw(deps: WebDeps, session: Session, message: TicketMessage) -> bytes | None:
    if message.journal_id is not None:
        entry = session.get(JournalEntry, message.journal_id)
        try:
            return deps.blobs.get(entry.blob_key) if entry is not None else None
        except FileNotFoundError:
            return None
    sent = session.scalar(select(OutboxMail).where(OutboxMail.message_id == message.message_id))
    return sent.raw if sent is not None and sent.raw else None


def _document(session: Session, message: TicketMessage, payload: bytes) -> Document | None:
    digest = hashlib.sha256(payload).hexdigest()
    return session.scalar(
        select(Document).where(Document.message_id == message.id, Document.sha256 == digest)
    )


# `MESSAGE-N`: ASCII digits only (str.isdigit takes "²", which int() refuses), a message id
# that fits the database's 64-bit integers (SQLite raises OverflowError beyond), N from 1.
_ID = re.compile(r"([0-9]{1,18})-0*([1-9][0-9]{0,8})")


def _parse_id(attachment_id: str) -> tuple[int, int]:
    found = _ID.fullmatch(attachment_id)
    if found is None:
        raise not_found("such attachment (ids look like 12-1)")
    return int(found.group(1)), int(found.group(2))


def _file(deps: WebDeps, session: Session, message: TicketMessage, number: int) -> AttachmentInfo:
    listed = message.attachments
    if number > len(listed):  # never one of this message's files
        raise not_found("such attachment")
    raw = _raw(deps, session, message)
    limits = deps.config().limits
    shape = ShapeLimits(parts=limits.max_mime_parts, depth=limits.max_mime_depth)
    files = list(parse_message(raw, shape).attachments) if raw is not None else []
    if number > len(files) or files[number - 1].filename != listed[number - 1]["filename"]:
        # Removed since (retention, a purge, an erasure): the history still names it.
        raise ApiError(410, "this file is no longer kept")
    return files[number - 1]


def download(
    deps: WebDeps, caller: Principal, ref: str, attachment_id: str, via: str = "api"
) -> Response:
    """The file as a download; `via` names the door (api, console) in the audit."""
    now = deps.clock.now()
    message_id, number = _parse_id(attachment_id)
    ticket_id = visible_ticket_id(deps.db, caller, ref, f"{via} file", now)
    with deps.db.transaction() as session:
        ticket = session.get(Ticket, ticket_id)
        message = session.get(TicketMessage, message_id)
        if ticket is None or message is None or message.ticket_id != ticket_id:
            raise not_found("such attachment")
        found = _file(deps, session, message, number)
        document = _document(session, message, found.payload)
        # A document goes under its stored name (an extension of the type found in its bytes),
        # never another type's: `pasaport.hta` is kept, and downloaded, as `pasaport.jpg`.
        filename = document.filename if document is not None else found.filename
        identity = document is not None or (
            ticket.category == "kyc" and found.role in DOCUMENT_ROLES
        )
        if identity and not is_identity_reader(caller, deps.config().team):
            audit(session, caller, f"{via} file refused", ticket, now, "an identity document")
            refused = True
        else:
            refused = False
            audit(session, caller, f"{via} file", ticket, now, f"{attachment_id} {filename}")
            if document is not None:
                session.add(
                    DocumentAccess(
                        document_id=document.id, actor=caller.actor, action="download", at=now
                    )
                )
    if refused:  # committed first: the refusal stays on the record
        raise not_found("such attachment")
    name = quote(filename)
    return Response(
        found.payload,
        # Bytes, whatever the mail declared: a customer's "text/html" must never be rendered
        # as a page of this site. The declared type is in the ticket's attachment list.
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{name}",
            "X-Content-Type-Options": "nosniff",
        },
    )


def install(app: FastAPI) -> None:
    @app.get(
        "/api/v1/tickets/{ref}/attachments/{attachment_id}",
        tags=["tickets"],
        response_class=Response,
        summary="a file of the ticket, as it came",
        responses={
            200: {"content": {"application/octet-stream": {}}},
            **documented(401, 404, 410, 422),
        },
    )
    def attachment(request: Request, caller: Caller, ref: str, attachment_id: str) -> Response:
        """A file of the ticket (identity documents only for the identity queue's agents)."""
        return download(deps_of(request), caller, ref, attachment_id)
