"""Mail between ticketd and the agents: notifications, an agent's answer relayed to the
customer, refusals back to the agent, and security alerts to the admins.

All of it is queued in the transaction that changes the ticket (the outbox), so the relay to
the customer and the change it goes with commit together.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from domain.config_team import AgentConfig
from domain.context import Context
from domain.header_addresses import shown_name
from domain.history import add_note
from domain.labels import label, local_time, note, problem
from domain.message import (
    DECORATION,
    DOCUMENT_ROLES,
    FORWARDED,
    AttachmentInfo,
    ParsedMessage,
)
from outbound.addresses import agent_reply_address, reply_address
from outbound.compose import Envelope, OutgoingAttachment, new_message_id
from outbound.customer_thread import customer_thread
from outbound.outbox_rows import queue_outgoing
from outbound.sla_deadlines import next_deadline_text
from storage.models import AccessAudit, Document, DocumentAccess, Ticket, TicketMessage


def thread_root(ctx: Context, ticket: Ticket) -> str:
    """A fixed Message-ID every notification of a ticket refers to: one thread per ticket in
    the agent's client."""
    return f"ticketd.{ticket.ref}.thread@{ctx.config.desk.domain}"


def desk_envelope(
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


# The access_audit action of an identity document attached to an agent's mail.
MAILED_TO_AGENT = "document mailed to agent"

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
    return [note(ctx.config.desk.language, text) for text in notes]


def _send_notification(
    ctx: Context,
    ticket: Ticket,
    agent: AgentConfig,
    text: str,
    files: tuple[OutgoingAttachment, ...] = (),
    **fields: Any,
) -> None:
    """The notify template to `agent`: the `text` of a message (cut to NOTIFY_TEXT_LIMIT) and
    who wrote it (`sender`, `sender_name`; the ticket's customer unless given), the ticket's
    state, threaded per ticket, with the signed agent reply address."""
    shown = text[:NOTIFY_TEXT_LIMIT]
    defaults: dict[str, Any] = {
        "sender": ticket.customer,
        "sender_name": shown_name(ticket.customer_name, ticket.customer),
        "new": False,
        "attachments": [],
        "not_sent": [],
        "handover": None,
        "history": [],
        "others": [],
    }
    send_to_agent(
        ctx,
        ticket,
        agent,
        "notify",
        files,
        text=shown,
        text_omitted=len(text) - len(shown),
        **{**defaults, **fields},
    )


def send_to_agent(
    ctx: Context,
    ticket: Ticket,
    agent: AgentConfig,
    template: str,
    files: tuple[OutgoingAttachment, ...],
    **fields: Any,
) -> None:
    """A mail about the ticket to `agent` (`template` with the ticket's state and `fields`), in
    the ticket's thread, with the signed agent reply address."""
    body = ctx.templates.render(
        template,
        ctx.config.desk.language,
        ref=ticket.ref,
        subject=ticket.subject,
        customer=ticket.customer,
        customer_name=shown_name(ticket.customer_name, ticket.customer),
        status=ticket.status,
        category=ticket.category,
        priority=ticket.priority,
        queue=ticket.queue or "",
        assignee=ticket.assignee or "",
        sla_deadline=next_deadline_text(ticket, ctx.config.desk.timezone),
        desk_name=ctx.config.desk.name,
        notify_limit=ctx.config.limits.notify_attachment_size,
        # Identity agents (of a queue taking kyc) are shown the #kyc commands too.
        kyc_agent=is_identity_agent(ctx, agent),
        **fields,
    )
    root = thread_root(ctx, ticket)
    envelope = desk_envelope(
        ctx,
        ticket,
        agent.email,
        agent.name,
        "auto-generated",
        in_reply_to=root,
        references=(root,),
        reply_to=agent_reply_address(ctx.config.desk, ticket.ref),
    )
    queue_outgoing(ctx, ticket, template, envelope, body, None, automatic=False, attachments=files)


def notify_agents(ctx: Context, ticket: Ticket, message: ParsedMessage, new: bool) -> int:
    """A notification to every agent of the ticket's queue (and its assignee): the customer's
    text, their files (attached within the limit, identity documents only to identity agents),
    the ticket's state, and the signed agent reply address."""
    team = ctx.config.team
    recipients = list(team.agents_of(ticket.queue))
    assignee = team.agent(ticket.assignee) if ticket.assignee else None
    if assignee is not None and assignee not in recipients:
        recipients.append(assignee)
    files = _files_of(ctx, ticket, message)
    not_sent = _not_sent_for(ctx, ticket, message)
    for agent in recipients:
        attachments, attached = offer_files(ctx, ticket, agent, files)
        _send_notification(
            ctx,
            ticket,
            agent,
            message.text,
            attached,
            new=new,
            attachments=attachments,
            not_sent=not_sent,
            history=_history(ctx, ticket, message),
            others=_other_tickets(ctx, ticket),
            # Who wrote this message, not the ticket's customer: a participant's mail read as
            # hers would have the agent act on a stranger's word in her name.
            **_written_by(ctx, message.sender.email, message.sender.name),
        )
    return len(recipients)


def _written_by(ctx: Context, address: str, name: str | None) -> dict[str, Any]:
    """The notification's `sender` fields for a customer-side message from `address` (a
    message without a usable From names nobody, rather than the customer). An agent's address
    there is flagged: an agent's own mail comes to the agent reply address, so this one is no
    agent's act, whatever its From says (ingest/agent_replies.note_agent_from)."""
    return {
        "sender": address or "-",
        "sender_name": shown_name(name, address),
        "unproven_agent": ctx.config.team.agent(address) is not None,
    }


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
            "who": shown_name(row.from_name, row.from_addr) or row.from_addr,
            "kind": row.kind,
            # A customer-side message under an agent's From is no agent's (see _written_by).
            "unproven_agent": row.kind == "customer"
            and ctx.config.team.agent(row.from_addr) is not None,
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


@dataclass(frozen=True)
class CustomerFile:
    """A file of the customer's message as a notification offers it: as the history lists it
    (`item`), its bytes, and the identity document it became (None: not one)."""

    item: dict[str, Any]
    found: AttachmentInfo
    document: Document | None
    # Why the bytes were not read (`found` has none): "size" (past the room), "unavailable".
    absent: str = ""


def _files_of(ctx: Context, ticket: Ticket, message: ParsedMessage) -> list[CustomerFile]:
    """The customer's files as the history has them (the type found in the bytes, refused ones
    marked), each with the identity document stored from it."""
    recorded = ctx.session.scalar(
        select(TicketMessage).where(TicketMessage.dedupe_key == message.dedupe_key)
    )
    listed = [dict(a) for a in recorded.attachments] if recorded is not None else []
    if len(listed) != len(message.attachments):
        listed = [
            {"filename": a.filename, "content_type": a.content_type, "size": a.size}
            for a in message.attachments
        ]
    documents = documents_of(ctx, recorded.id) if recorded is not None else {}
    return [
        CustomerFile(item, found, documents.get(hashlib.sha256(found.payload).hexdigest()))
        for item, found in zip(listed, message.attachments, strict=True)
    ]


def documents_of(ctx: Context, message_id: int) -> dict[str, Document]:
    """The identity documents stored from one message of the history, by SHA-256."""
    rows = ctx.session.scalars(select(Document).where(Document.message_id == message_id))
    return {d.sha256: d for d in rows}


def is_identity_agent(ctx: Context, agent: AgentConfig) -> bool:
    """An agent of a queue that takes `kyc`: the staff whose area identity documents are."""
    return any(q.name in agent.queues and "kyc" in q.categories for q in ctx.config.team.queues)


# At most this many files attached to one agent mail, whatever their size: a mail of thousands of
# tiny parts would otherwise become a notification of thousands of MIME parts (each one held,
# encoded and stored in the outbox). The rest are named, "count".
MAX_ATTACHED_FILES = 20


def offer_files(
    ctx: Context,
    ticket: Ticket,
    agent: AgentConfig,
    files: list[CustomerFile],
    room: int | None = None,
    mail: str = "notification",
) -> tuple[list[dict[str, Any]], tuple[OutgoingAttachment, ...]]:
    """What `agent`'s mail lists (each file `attached`, or `why` not) and attaches: every file
    but signature decorations and refused files, identity documents only to identity agents,
    up to `room` bytes in all (`limits.notify_attachment_size` unless given) and
    MAX_ATTACHED_FILES files. Each identity
    document attached is audited (access_audit, and the document audit `kyc audit` shows)."""
    room = ctx.config.limits.notify_attachment_size if room is None else room
    identity_agent = is_identity_agent(ctx, agent)
    listed: list[dict[str, Any]] = []
    attached: list[OutgoingAttachment] = []
    for file in files:
        item = dict(file.item)
        why = _kept_back(ticket, file, room, identity_agent)
        if why is None and len(attached) >= MAX_ATTACHED_FILES:
            why = "count"
        item["attached"], item["why"] = why is None, why or ""
        listed.append(item)
        if why is None:
            room -= len(file.found.payload)
            attached.append(_outgoing(file))
            if _is_identity(ticket, file):
                _audit_mailed(ctx, ticket, agent, file, (attached[-1].filename, mail))
    return listed, tuple(attached)


def _outgoing(file: CustomerFile) -> OutgoingAttachment:
    """The file as attached: an identity document under its stored name (the extension of the
    type found, never the sender's) and that type; any other file as the customer sent it."""
    found = file.found
    if file.document is None:
        return OutgoingAttachment(found.filename, found.content_type, found.payload)
    detected = str(file.item.get("detected") or "unknown")
    content_type = found.content_type if detected == "unknown" else detected
    return OutgoingAttachment(file.document.filename, content_type, found.payload)


def _is_identity(ticket: Ticket, file: CustomerFile) -> bool:
    """An identity document, or on a kyc ticket any file that may be one, a forwarded message
    kept whole included: attaching it attaches the documents inside it."""
    return file.document is not None or (
        ticket.category == "kyc" and file.found.role in (*DOCUMENT_ROLES, FORWARDED)
    )


def _kept_back(ticket: Ticket, file: CustomerFile, room: int, identity_agent: bool) -> str | None:
    """Why a file is named but not attached (a code the template words), or None."""
    if file.found.role == DECORATION:
        return "decoration"
    if file.item.get("refused"):
        return "refused"
    if _is_identity(ticket, file) and not identity_agent:
        return "identity"
    if not file.found.payload:
        return file.absent or "unavailable"  # empty, or bytes no longer kept (retention)
    return "size" if len(file.found.payload) > room else None  # also: attaching is off (room 0)


def _audit_mailed(
    ctx: Context,
    ticket: Ticket,
    agent: AgentConfig,
    file: CustomerFile,
    sent: tuple[str, str],
) -> None:
    """An identity document mailed to an agent: who, when, which file (its hash), in what
    mail; `sent` is (the name it was attached under, the mail: notification, history)."""
    digest = hashlib.sha256(file.found.payload).hexdigest()
    what = f"document {file.document.id} " if file.document is not None else ""
    name, mail = sent
    detail = (
        f"{what}{name} ({len(file.found.payload)} bytes, sha256 {digest}) "
        f"attached to the {mail} mailed to {agent.email}"
    )
    now = ctx.clock.now()
    ctx.session.add(
        AccessAudit(
            actor=agent.email,
            action=MAILED_TO_AGENT,
            customer=ticket.customer,
            ticket_id=ticket.id,
            at=now,
            detail=detail,
        )
    )
    if file.document is not None:
        ctx.session.add(
            DocumentAccess(
                document_id=file.document.id,
                actor=agent.email,
                action="mailed",
                at=now,
                detail=f"attached to the {mail} mailed to {agent.email}",
            )
        )


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
    by = _written_by(ctx, last.from_addr, last.from_name) if last is not None else {}
    _send_notification(ctx, ticket, agent, text, handover=why, attachments=files, **by)


def refuse_to_agent(
    ctx: Context,
    ticket: Ticket,
    agent: AgentConfig,
    message: ParsedMessage,
    problems: Sequence[str],
    kind: str = "agent-error",
    automatic: bool = False,
) -> None:
    """The agent is told why their mail was not applied, with the ticket's agent reply address
    as Reply-To. `automatic` mail (a notice nobody's act caused) counts against the
    per-recipient limit; the caller asks it first."""
    body = ctx.templates.render(
        "agent_error",
        ctx.config.desk.language,
        ref=ticket.ref,
        subject=message.subject,
        problems=[problem(ctx.config.desk.language, p) for p in problems],
        desk_name=ctx.config.desk.name,
    )
    references = (*message.references, message.message_id) if message.message_id else ()
    envelope = desk_envelope(
        ctx,
        ticket,
        agent.email,
        agent.name,
        "auto-replied",
        in_reply_to=message.message_id,
        references=references,
        reply_to=agent_reply_address(ctx.config.desk, ticket.ref),
    )
    queue_outgoing(ctx, ticket, kind, envelope, body, None, automatic=automatic)


def alert_admins(
    ctx: Context, ticket: Ticket, message: ParsedMessage, reason: str, journal_id: int
) -> str:
    """The security alert about `message` (journal entry `journal_id`) to the admins (else the
    queue's escalation), once per entry: a retry of the quarantined entry (after a fix) tells
    them nothing new. The ticket's note says who was told and why."""
    team = ctx.config.team
    admins = team.admins or tuple(
        dict.fromkeys(a for q in team.queues if q.name == ticket.queue for a in q.escalation)
    )
    key = f"note:security:{ticket.id}:{journal_id}"
    if ctx.session.scalar(select(TicketMessage.id).where(TicketMessage.dedupe_key == key)):
        return "the admins were told before"
    told = ", ".join(admins) or "nobody (no desk.admins, no escalation)"
    add_note(ctx, ticket, "Security alert", f"{reason}; told: {told}", key)
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
        envelope = desk_envelope(ctx, ticket, admin, "", "auto-generated")
        queue_outgoing(ctx, ticket, "security", envelope, body, None, automatic=False)
    return f"{len(admins)} admins told"


def relay_to_customer(
    ctx: Context,
    ticket: Ticket,
    agent: AgentConfig,
    text: str,
    attachments: tuple[OutgoingAttachment, ...],
    dedupe_key: str,
) -> str:
    """The agent's answer, from the support address, threaded to the customer's conversation:
    In-Reply-To their latest message, References the ticket's chain (outbound/customer_thread)."""
    desk = ctx.config.desk
    body = ctx.templates.render(
        "reply", ticket.language, ref=ticket.ref, subject=ticket.subject, text=text
    )
    sender_name = (
        f"{agent.name} ({desk.name})"
        if ctx.config.team.agent_replies.show_agent_name
        else desk.name
    )
    thread = customer_thread(ctx.session, ticket)
    envelope = desk_envelope(
        ctx,
        ticket,
        ticket.customer,
        ticket.customer_name or "",
        None,  # a person's answer: no Auto-Submitted
        sender_name=sender_name,
        in_reply_to=thread.in_reply_to,
        references=thread.references,
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
    root = thread_root(ctx, ticket)
    for person in recipients:
        body = ctx.templates.render(
            "not_sent",
            ctx.config.desk.language,
            ref=ticket.ref,
            subject=ticket.subject,
            kind=label(ctx.config.desk.language, "mail", kind),
            customer=recipient or ticket.customer,
            reason=note(ctx.config.desk.language, reason),
            desk_name=ctx.config.desk.name,
        )
        envelope = desk_envelope(
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
