"""Mail between ticketd and the agents: notifications, an agent's answer relayed to the
customer, refusals back to the agent, and security alerts to the admins.

All of it is queued in the transaction that changes the ticket (the outbox), so the relay to
the customer and the change it goes with commit together.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from domain.config_team import AgentConfig
from domain.context import Context
from domain.labels import local_time, problem
from domain.message import DECORATION, DOCUMENT_ROLES, AttachmentInfo, ParsedMessage
from outbound.addresses import agent_reply_address, reply_address
from outbound.compose import Envelope, OutgoingAttachment, new_message_id
from outbound.outbox_rows import queue_outgoing
from outbound.sla_deadlines import next_deadline_text
from storage.models import Ticket, TicketMessage


def _thread_root(ctx: Context, ticket: Ticket) -> str:
    """A fixed Message-ID every notification of a ticket refers to: one thread per ticket in
    the agent's client."""
    return f"ticketd.{ticket.ref}.thread@{ctx.config.desk.domain}"


def _desk_envelope(
    ctx: Context, ticket: Ticket, to: str, to_name: str, auto: str | None, **extra: Any
) -> Envelope:
    desk = ctx.config.desk
    fields: dict[str, Any] = {
        "sender_name": desk.name,
        "sender": desk.address,
        "to_name": to_name,
        "to": to,
        "message_id": new_message_id(desk.secret, ticket.ref, desk.domain),
        "in_reply_to": None,
        "references": (),
        "date": ctx.clock.now(),
        "auto_submitted": auto,
        "ref": ticket.ref,
        "loop_marker": desk.address,
    }
    fields.update(extra)
    return Envelope(**fields)


# A notification carries the customer's text for reading in a mail client, not the archive of
# it: a 20 MB body would otherwise be mailed again to every agent of the queue.
NOTIFY_TEXT_LIMIT = 64 * 1024


def _not_sent_for(ctx: Context, ticket: Ticket, message: ParsedMessage) -> list[str]:
    """The notes of mail to the customer that this message caused but could not go (the
    automatic-mail gate writes them, outbound/automatic.py): the notification says so."""
    notes = ctx.session.scalars(
        select(TicketMessage.text).where(
            TicketMessage.ticket_id == ticket.id,
            TicketMessage.dedupe_key.like("note:silent:%"),
            TicketMessage.dedupe_key.endswith(f":{ticket.id}:{message.dedupe_key}"),
        )
    )
    return list(notes)


def _send_notification(
    ctx: Context,
    ticket: Ticket,
    agent: AgentConfig,
    text: str,
    files: tuple[OutgoingAttachment, ...] = (),
    **fields: Any,
) -> None:
    """The notify template to `agent`: the customer's `text` (cut to NOTIFY_TEXT_LIMIT), the
    ticket's state, threaded per ticket, with the signed agent reply address."""
    shown = text[:NOTIFY_TEXT_LIMIT]
    body = ctx.templates.render(
        "notify",
        ctx.config.desk.language,
        ref=ticket.ref,
        subject=ticket.subject,
        customer=ticket.customer,
        customer_name=ticket.customer_name or "",
        text=shown,
        text_omitted=len(text) - len(shown),
        status=ticket.status,
        category=ticket.category,
        priority=ticket.priority,
        queue=ticket.queue or "",
        assignee=ticket.assignee or "",
        sla_deadline=next_deadline_text(ticket, ctx.config.desk.timezone),
        desk_name=ctx.config.desk.name,
        # Identity agents (of a queue taking kyc) are shown the #kyc commands too.
        notify_limit=ctx.config.limits.notify_attachment_size,
        kyc_agent=any(
            q.name in agent.queues and "kyc" in q.categories for q in ctx.config.team.queues
        ),
        **{
            "new": False,
            "attachments": [],
            "not_sent": [],
            "handover": None,
            "history": [],
            "others": [],
            **fields,
        },
    )
    root = _thread_root(ctx, ticket)
    envelope = _desk_envelope(
        ctx,
        ticket,
        agent.email,
        agent.name,
        "auto-generated",
        in_reply_to=root,
        references=(root,),
        reply_to=agent_reply_address(ctx.config.desk, ticket.ref),
    )
    queue_outgoing(ctx, ticket, "notify", envelope, body, None, automatic=False, attachments=files)


def notify_agents(ctx: Context, ticket: Ticket, message: ParsedMessage, new: bool) -> int:
    """A notification to every agent of the ticket's queue (and its assignee): the customer's
    text, attachments named only, the ticket's state, and the signed agent reply address."""
    team = ctx.config.team
    recipients = list(team.agents_of(ticket.queue))
    assignee = team.agent(ticket.assignee) if ticket.assignee else None
    if assignee is not None and assignee not in recipients:
        recipients.append(assignee)
    attachments, files = _attachments(ctx, ticket, message)
    not_sent = _not_sent_for(ctx, ticket, message)
    for agent in recipients:
        _send_notification(
            ctx,
            ticket,
            agent,
            message.text,
            files,
            new=new,
            attachments=attachments,
            not_sent=not_sent,
            history=_history(ctx, ticket, message),
            others=_other_tickets(ctx, ticket),
        )
    return len(recipients)


HISTORY_MESSAGES = 5  # earlier messages of the ticket a notification quotes, newest first
HISTORY_TEXT_LIMIT = 2000  # characters of each


def _history(ctx: Context, ticket: Ticket, message: ParsedMessage) -> list[dict[str, Any]]:
    """The conversation before this message, newest first, each text quoted line by line."""
    rows = ctx.session.scalars(
        select(TicketMessage)
        .where(
            TicketMessage.ticket_id == ticket.id,
            TicketMessage.dedupe_key != message.dedupe_key,
            TicketMessage.kind.in_(("customer", "agent", "note")),
        )
        .order_by(TicketMessage.id.desc())
        .limit(HISTORY_MESSAGES)
    )
    return [
        {
            "at": local_time(row.created_at, ctx.config.desk.timezone),
            "who": row.from_name or row.from_addr,
            "kind": row.kind,
            "quoted": "\n".join("> " + line for line in row.text[:HISTORY_TEXT_LIMIT].splitlines()),
        }
        for row in rows
    ]


def _other_tickets(ctx: Context, ticket: Ticket) -> list[dict[str, str]]:
    """The customer's other tickets that are open or pending, newest first (at most 5)."""
    rows = ctx.session.scalars(
        select(Ticket)
        .where(
            Ticket.customer == ticket.customer,
            Ticket.id != ticket.id,
            Ticket.status.in_(("open", "pending")),
        )
        .order_by(Ticket.id.desc())
        .limit(5)
    )
    return [{"ref": t.ref, "status": t.status, "subject": t.subject} for t in rows]


def _attachments(
    ctx: Context, ticket: Ticket, message: ParsedMessage
) -> tuple[list[dict[str, Any]], tuple[OutgoingAttachment, ...]]:
    """The customer's files as the notification lists them (as the history has them: the type
    found in the bytes, refused ones marked) and those it attaches: every file but signature
    decorations, refused files and identity documents (those stay sealed: `kyc export`), up
    to `limits.notify_attachment_size` bytes in all (0, the default: none)."""
    recorded = ctx.session.scalar(
        select(TicketMessage).where(TicketMessage.dedupe_key == message.dedupe_key)
    )
    listed = [dict(a) for a in recorded.attachments] if recorded is not None else []
    if len(listed) != len(message.attachments):
        listed = [
            {"filename": a.filename, "content_type": a.content_type, "size": a.size}
            for a in message.attachments
        ]
    room = ctx.config.limits.notify_attachment_size
    files: list[OutgoingAttachment] = []
    for item, found in zip(listed, message.attachments, strict=True):
        why = _kept_back(ticket, item, found, room)
        item["attached"], item["why"] = why is None, why or ""
        if why is None:
            room -= len(found.payload)
            files.append(OutgoingAttachment(found.filename, found.content_type, found.payload))
    return listed, tuple(files)


def _kept_back(
    ticket: Ticket, item: dict[str, Any], found: AttachmentInfo, room: int
) -> str | None:
    """Why a file is named but not attached (a code the template words), or None."""
    if not found.payload or found.role == DECORATION:
        return "decoration"
    if item.get("refused"):
        return "refused"
    if ticket.category == "kyc" and found.role in DOCUMENT_ROLES:
        return "identity"
    return "size" if len(found.payload) > room else None  # also: attaching is off (room 0)


def notify_handover(
    ctx: Context,
    ticket: Ticket,
    agent: AgentConfig,
    why: dict[str, str],
    last: TicketMessage | None,
) -> None:
    """The ticket is now `agent`'s (assigned to them, or moved to their queue): its
    notification, with the customer's last message, says why."""
    text = last.text if last is not None else ""
    files = list(last.attachments) if last is not None else []
    _send_notification(ctx, ticket, agent, text, handover=why, attachments=files)


def refuse_to_agent(
    ctx: Context,
    ticket: Ticket,
    agent: AgentConfig,
    message: ParsedMessage,
    problems: Sequence[str],
) -> None:
    body = ctx.templates.render(
        "agent_error",
        ctx.config.desk.language,
        ref=ticket.ref,
        subject=message.subject,
        problems=[problem(ctx.config.desk.language, p) for p in problems],
        desk_name=ctx.config.desk.name,
    )
    references = (*message.references, message.message_id) if message.message_id else ()
    envelope = _desk_envelope(
        ctx,
        ticket,
        agent.email,
        agent.name,
        "auto-replied",
        in_reply_to=message.message_id,
        references=references,
        reply_to=agent_reply_address(ctx.config.desk, ticket.ref),
    )
    queue_outgoing(ctx, ticket, "agent-error", envelope, body, None, automatic=False)


def alert_admins(ctx: Context, ticket: Ticket, message: ParsedMessage, reason: str) -> int:
    team = ctx.config.team
    admins = team.admins or tuple(
        dict.fromkeys(a for q in team.queues if q.name == ticket.queue for a in q.escalation)
    )
    for admin in admins:
        body = ctx.templates.render(
            "security_alert",
            ctx.config.desk.language,
            ref=ticket.ref,
            sender=message.sender.email or "(none)",
            mail_subject=message.subject,
            reason=reason,
            desk_name=ctx.config.desk.name,
        )
        envelope = _desk_envelope(ctx, ticket, admin, "", "auto-generated")
        queue_outgoing(ctx, ticket, "security", envelope, body, None, automatic=False)
    return len(admins)


def relay_to_customer(
    ctx: Context,
    ticket: Ticket,
    agent: AgentConfig,
    text: str,
    attachments: tuple[OutgoingAttachment, ...],
    answering: TicketMessage | None,
    dedupe_key: str,
) -> str:
    """The agent's answer, from the support address, threaded to the customer's conversation."""
    desk = ctx.config.desk
    body = ctx.templates.render(
        "reply", ticket.language, ref=ticket.ref, subject=ticket.subject, text=text
    )
    sender_name = (
        f"{agent.name} ({desk.name})"
        if ctx.config.team.agent_replies.show_agent_name
        else desk.name
    )
    in_reply_to = answering.message_id if answering is not None else None
    envelope = _desk_envelope(
        ctx,
        ticket,
        ticket.customer,
        ticket.customer_name or "",
        None,  # a person's answer: no Auto-Submitted
        sender_name=sender_name,
        in_reply_to=in_reply_to,
        references=(in_reply_to,) if in_reply_to else (),
        reply_to=reply_address(desk, ticket.ref),
    )
    return queue_outgoing(
        ctx,
        ticket,
        "agent",
        envelope,
        body,
        "agent",
        False,
        attachments,
        author=(agent.email, agent.name),
        dedupe_key=dedupe_key,
    )


def tell_agents_not_sent(
    ctx: Context, ticket: Ticket, kind: str, recipient: str, reason: str, actor: str | None
) -> int:
    """A mail to the customer that could not go: told to the agent who caused it, else the
    assignee, else the agents of the queue; how many were told."""
    team = ctx.config.team
    agent = team.agent(actor) if actor else None
    assignee = team.agent(ticket.assignee) if ticket.assignee else None
    recipients = (agent,) if agent else (assignee,) if assignee else team.agents_of(ticket.queue)
    root = _thread_root(ctx, ticket)
    for person in recipients:
        body = ctx.templates.render(
            "not_sent",
            ctx.config.desk.language,
            ref=ticket.ref,
            subject=ticket.subject,
            kind=kind,
            customer=recipient or ticket.customer,
            reason=reason,
            desk_name=ctx.config.desk.name,
        )
        envelope = _desk_envelope(
            ctx,
            ticket,
            person.email,
            person.name,
            "auto-generated",
            in_reply_to=root,
            references=(root,),
            reply_to=agent_reply_address(ctx.config.desk, ticket.ref),
        )
        queue_outgoing(ctx, ticket, "not-sent", envelope, body, None, automatic=False)
    return len(recipients)
