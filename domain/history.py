"""Writing to a ticket's history: messages in and out, and system notes agents read."""

from __future__ import annotations

from datetime import datetime

import filetype
from sqlalchemy.exc import IntegrityError

from domain.context import Context
from domain.errors import Ignored, Temporary
from domain.message import ParsedMessage
from domain.requests import normalised, request_print, written_at
from storage.direct_insert import attach, insert_row
from storage.models import Base, JournalEntry, Ticket, TicketMessage


def found_type(payload: bytes) -> str:
    """The MIME type the bytes show (`filetype`), or "unknown"."""
    kind = filetype.guess(payload) if payload else None
    return str(kind.mime) if kind is not None else "unknown"


def record_incoming(
    ctx: Context, ticket: Ticket, entry: JournalEntry, message: ParsedMessage, kind: str
) -> TicketMessage:
    record = TicketMessage(
        journal_id=entry.id,
        direction="in",
        kind=kind,
        dedupe_key=message.dedupe_key,
        message_id=message.message_id,
        from_addr=message.sender.email,
        from_name=message.sender.name or None,
        to_addrs=[a.email for a in message.to],
        cc_addrs=[a.email for a in message.cc],
        subject=message.subject,
        text=message.text,
        attachments=[
            {
                "filename": a.filename,
                "content_type": a.content_type,
                # What the bytes are, whatever the name and the declared type say.
                "detected": found_type(a.payload),
                "size": a.size,
                "role": a.role,
            }
            for a in message.attachments
        ],
        created_at=ctx.clock.now(),
    )
    if kind == "customer" and ticket.request_at is None:
        # The ticket's first request: a repeat of it is found by these two (thread_finder).
        ticket.request_at = written_at(message, record.created_at)
        ticket.request_print = request_print(normalised(message.subject, message.text))
    try:
        # Its unique dedupe key is where a concurrent worker that recorded the same message
        # collides (on PostgreSQL the insert waits for that worker's commit). A new ticket
        # and its participants go in first, so only a collision on the dedupe key is that
        # duplicate; another (a participant a concurrent worker added) is tried again later,
        # when it is no collision any more.
        if ticket.id is None:
            _insert_opened(ctx, ticket, record)
        else:
            record.ticket_id = ticket.id
            insert_row(ctx.session, record)
            attach(ctx.session, [record], ())
    except IntegrityError as error:
        if "dedupe_key" in str(error.orig):
            raise Ignored("duplicate: recorded concurrently") from error
        raise Temporary(f"a concurrent change of ticket {ticket.ref}: {error.orig}") from error
    return record


def _insert_opened(ctx: Context, ticket: Ticket, record: TicketMessage) -> None:
    """A ticket opened by this message (built by the caller, in no session yet), the
    participants the caller gave it and the message, each one statement
    (storage/direct_insert.py: the unit of work's flush of the three was a fifth of a
    message's time)."""
    participants = list(ticket.participants)
    insert_row(ctx.session, ticket)
    for participant in participants:
        participant.ticket_id = ticket.id
        insert_row(ctx.session, participant)
    record.ticket_id = ticket.id
    insert_row(ctx.session, record)
    loaded: list[tuple[Base, str, object]] = [
        (ticket, "participants", participants),
        (ticket, "messages", [record]),
        (record, "ticket", ticket),
    ]
    loaded += [(participant, "ticket", ticket) for participant in participants]
    attach(ctx.session, [ticket, *participants, record], loaded)


def system_note(
    ticket_id: int,
    subject: str,
    text: str,
    dedupe_key: str,
    at: datetime,
    journal_id: int | None = None,
) -> TicketMessage:
    """A note by ticketd itself in a ticket's history (not mail)."""
    return TicketMessage(
        ticket_id=ticket_id,
        journal_id=journal_id,
        direction="in",
        kind="system",
        dedupe_key=dedupe_key,
        message_id=None,
        from_addr="ticketd",
        from_name="ticketd",
        to_addrs=[],
        cc_addrs=[],
        subject=subject,
        text=text,
        attachments=[],
        created_at=at,
    )


def add_note(
    ctx: Context,
    ticket: Ticket,
    subject: str,
    text: str,
    dedupe_key: str,
    journal_id: int | None = None,
) -> None:
    """A system note on the ticket: why something was or was not sent, a bounce.

    `dedupe_key` makes it once only: a bounce passes its own message's key, so the same report
    arriving twice is caught by the pipeline's duplicate check."""
    ctx.session.add(system_note(ticket.id, subject, text, dedupe_key, ctx.clock.now(), journal_id))
