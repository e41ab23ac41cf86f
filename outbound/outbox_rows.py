"""Writing a mail to send: one outbox row and, where it belongs, the ticket's history entry.

Every kind of outgoing mail goes through `queue_outgoing`, inside the transaction of the ticket
change that causes it (the transactional outbox).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from domain.context import Context
from domain.templating import RenderedMail
from outbound.addresses import without_agent_addresses
from outbound.compose import Envelope, OutgoingAttachment, build_mail
from storage.models import OUTBOX_QUEUED, OutboxMail, Ticket, TicketMessage


def _is_staff(ctx: Context, address: str) -> bool:
    """An agent, an admin or an escalation contact: the people agent addresses are for."""
    team = ctx.config.team
    address = address.lower()
    return (
        team.agent(address) is not None
        or address in team.admins
        or any(address in queue.escalation for queue in team.queues)
    )


def queue_outgoing(
    ctx: Context,
    ticket: Ticket | None,
    kind: str,
    envelope: Envelope,
    body: RenderedMail,
    history_kind: str | None,
    automatic: bool,
    attachments: tuple[OutgoingAttachment, ...] = (),
    author: tuple[str, str] | None = None,
    dedupe_key: str | None = None,
    not_before: datetime | None = None,
) -> str:
    """One outbox row, and the matching outgoing message in the ticket's history (written by
    `author` (address, name) when a person wrote it, once only by `dedupe_key`). Without a
    ticket (a queue's daily digest) there is no history to write. A mail held for a later slot
    (`not_before`) is made then: sent no earlier, and counted by the rate limit at that time."""
    now = ctx.clock.now()
    wall = ctx.outbox_clock.now() if ctx.outbox_clock is not None else now
    at = wall + max(not_before - now, timedelta(0)) if not_before is not None else wall
    if not _is_staff(ctx, envelope.to):
        body = _without_agent_addresses(ctx, body)
    ctx.session.add(
        OutboxMail(
            ticket_id=ticket.id if ticket else None,
            kind=kind,
            message_id=envelope.message_id,
            sender=envelope.sender,
            recipients=[envelope.to],
            recipient=envelope.to,
            automatic=automatic,
            subject=body.subject,
            text=body.text,
            raw=build_mail(envelope, body, attachments),
            state=OUTBOX_QUEUED,
            attempts=0,
            next_attempt_at=at,
            created_at=at,
        )
    )
    if history_kind is not None and ticket is not None:
        entry = _history_entry(
            ticket,
            history_kind,
            envelope,
            body,
            attachments,
            author=author,
            dedupe_key=dedupe_key or f"mid:{envelope.message_id}",
            at=now,
        )
        ctx.session.add(entry)
    return envelope.message_id


def _without_agent_addresses(ctx: Context, body: RenderedMail) -> RenderedMail:
    """The mail as someone who is not staff may read it: no agent reply address in it."""
    desk = ctx.config.desk
    return replace(
        body,
        subject=without_agent_addresses(desk, body.subject),
        text=without_agent_addresses(desk, body.text),
        html=without_agent_addresses(desk, body.html),
    )


def _history_entry(
    ticket: Ticket,
    history_kind: str,
    envelope: Envelope,
    body: RenderedMail,
    attachments: tuple[OutgoingAttachment, ...],
    *,
    author: tuple[str, str] | None,
    dedupe_key: str,
    at: datetime,
) -> TicketMessage:
    """The outgoing message as the ticket's history shows it, from `author` (address, name) when
    a person wrote it, else from the envelope's sender."""
    return TicketMessage(
        ticket_id=ticket.id,
        journal_id=None,
        direction="out",
        kind=history_kind,
        dedupe_key=dedupe_key,
        message_id=envelope.message_id,
        from_addr=author[0] if author else envelope.sender,
        from_name=author[1] if author else envelope.sender_name,
        to_addrs=[envelope.to],
        cc_addrs=[],
        subject=body.subject,
        text=body.text,
        attachments=[
            {"filename": a.filename, "content_type": a.content_type, "size": len(a.payload)}
            for a in attachments
        ],
        created_at=at,
    )
