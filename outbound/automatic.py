"""The gate every automatic mail passes (promise 4): whom we may answer, and how often.

Counted across all kinds of automatic mail to one recipient: at most `auto_replies_per_hour` in
an hour and never two within `auto_reply_interval_seconds`; nothing to an address that bounced
permanently while its suppression lasts; nothing to ourselves. The answer is a reason to stay
silent, recorded on the ticket, or None.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ingest.context import Context
from ingest.history import add_note
from ingest.parsing import ParsedMessage
from outbound.addresses import erased_key, reply_address
from outbound.compose import Envelope, new_message_id
from outbound.outbox_rows import queue_outgoing
from storage.models import Erasure, OutboxMail, Suppression, Ticket
from ticketd.clock import Clock
from ticketd.config import Config


def silence_reason(session: Session, config: Config, clock: Clock, recipient: str) -> str | None:
    if not recipient:
        return "no address to answer"
    if config.desk.owns(recipient):
        return f"{recipient} is an address of the desk"
    erased = session.scalar(
        select(Erasure.id).where(Erasure.address_key == erased_key(config.desk.secret, recipient))
    )
    if erased is not None:
        return f"{recipient} asked for the erasure of their data: no automatic mail"
    now = clock.now()
    suppressed = session.scalar(
        select(Suppression).where(Suppression.address == recipient, Suppression.until > now)
    )
    if suppressed is not None:
        return f"{recipient} is suppressed until {suppressed.until:%Y-%m-%d %H:%M} UTC: " + (
            suppressed.reason
        )
    limits = config.limits
    recent = select(func.count(OutboxMail.id), func.max(OutboxMail.created_at)).where(
        OutboxMail.recipient == recipient,
        OutboxMail.automatic.is_(True),
        OutboxMail.created_at >= now - timedelta(hours=1),
    )
    count, latest = session.execute(recent).one()
    if int(count or 0) >= limits.auto_replies_per_hour:
        return f"rate limit: {count} automatic mails to {recipient} in the last hour"
    if latest is not None and now - latest < timedelta(seconds=limits.auto_reply_interval_seconds):
        return f"rate limit: an automatic mail went to {recipient} at {latest:%H:%M:%S} UTC"
    return None


@dataclass(frozen=True)
class AutomaticMail:
    """An automatic mail about a ticket, answering `answering` (the customer's message)."""

    kind: str  # ack, duplicate, ...
    template: str
    recipient: str
    answering: ParsedMessage | None
    # What the template needs beyond the ticket (the files of a document receipt, a reason).
    context: Mapping[str, object] = field(default_factory=dict)


def queue_automatic(ctx: Context, ticket: Ticket, mail: AutomaticMail) -> str:
    """Queue it in the ticket's transaction, or record on the ticket why it stays unsent."""
    reason = silence_reason(ctx.session, ctx.config, ctx.clock, mail.recipient)
    if reason is not None:
        add_note(
            ctx,
            ticket,
            f"No {mail.kind} mail sent",
            f"No {mail.kind} mail went to {mail.recipient or 'anyone'}: {reason}.",
            f"note:silent:{mail.kind}:{ticket.id}:"
            + (mail.answering.dedupe_key if mail.answering else secrets.token_hex(8)),
        )
        return f"not sent: {reason}"
    body = ctx.templates.render(
        mail.template,
        ticket.language,
        ref=ticket.ref,
        subject=ticket.subject,
        customer_name=ticket.customer_name or "",
        desk_name=ctx.config.desk.name,
        **mail.context,
    )
    envelope = _envelope(
        ctx,
        mail,
        ticket.ref,
        ticket.customer_name or "",
        reply_address(ctx.config.desk, ticket.ref),
    )
    queue_outgoing(ctx, ticket, mail.kind, envelope, body, "auto", automatic=True)
    # Flushed now, so the next message in this transaction's view counts it for the limit.
    ctx.session.flush()
    return "sent"


def queue_without_ticket(ctx: Context, mail: AutomaticMail, language: str) -> str | None:
    """An automatic mail about no ticket (a held message from a stranger), under the same
    limits and with the same loop headers; the reason it stays unsent, or None once queued."""
    reason = silence_reason(ctx.session, ctx.config, ctx.clock, mail.recipient)
    if reason is not None:
        return reason
    answering = mail.answering
    name = answering.sender.name if answering else ""
    body = ctx.templates.render(
        mail.template,
        language,
        ref="",
        subject=answering.subject if answering else "",
        customer_name=name or "",
        desk_name=ctx.config.desk.name,
        **mail.context,
    )
    envelope = _envelope(ctx, mail, "-", name or "", None)
    queue_outgoing(ctx, None, mail.kind, envelope, body, None, automatic=True)
    ctx.session.flush()  # counted by the rate limit of the next message in this transaction
    return None


def _envelope(
    ctx: Context, mail: AutomaticMail, ref: str, to_name: str, reply_to: str | None
) -> Envelope:
    """Ours, answering `mail.answering` in its thread, marked automatic and looped back to us."""
    desk = ctx.config.desk
    answering = mail.answering
    in_reply_to = answering.message_id if answering else None
    references = (*answering.references, in_reply_to) if answering and in_reply_to else ()
    return Envelope(
        sender_name=desk.name,
        sender=desk.address,
        to_name=to_name,
        to=mail.recipient,
        message_id=new_message_id(desk.secret, ref, desk.domain),
        in_reply_to=in_reply_to,
        references=references,
        date=ctx.clock.now(),
        auto_submitted="auto-replied",
        ref=ref,
        reply_to=reply_to,
        loop_marker=desk.address,
    )
