"""The whole ticket mailed to the agent who asks for it (`#geçmiş` / `#history`).

Every message of the ticket, newest first, each with who wrote it and when (in the desk's zone)
and its text quoted line by line; the files of each message are attached as a notification
attaches them (outbound/agent_mail.py `offer_files`): within `[limits] notify_attachment_size`
in all, identity documents only to identity agents, each one mailed audited. The files are read
back by the caller (ingest/history_files.py), which knows how to parse a raw message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select

from domain.config_team import AgentConfig
from domain.context import Context
from domain.header_addresses import shown_name
from domain.labels import local_time, note
from outbound.agent_mail import CustomerFile, offer_files, send_to_agent
from outbound.compose import OutgoingAttachment
from storage.models import Ticket, TicketMessage

# A ticket of hundreds of messages is still one mail a client opens: each text is cut here,
# with the cut said, and `tickets show` has the rest.
HISTORY_TEXT_LIMIT = 20_000


def _quoted(text: str) -> str:
    shown = text[:HISTORY_TEXT_LIMIT]
    return "\n".join("> " + line if line else ">" for line in shown.splitlines())


def _entry(
    ctx: Context, row: TicketMessage, attachments: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    # ticketd's own notes are stored in English; the agent reads them in the desk's language.
    language = ctx.config.desk.language
    worded = (lambda text: note(language, text)) if row.kind == "system" else (lambda t: t)
    text = worded(row.text)
    return {
        "at": local_time(row.created_at, ctx.config.desk.timezone),
        "who": shown_name(row.from_name, row.from_addr) or row.from_addr,
        "address": row.from_addr,
        "kind": row.kind,
        "direction": row.direction,
        "subject": worded(row.subject),
        "quoted": _quoted(text),
        "omitted": max(len(text) - HISTORY_TEXT_LIMIT, 0),
        "attachments": list(attachments),
    }


def mail_history(
    ctx: Context,
    ticket: Ticket,
    agent: AgentConfig,
    files: Mapping[int, list[CustomerFile]],
) -> int:
    """Queue the ticket's whole history to `agent`; `files` holds each message's files (by
    the history row's id). Returns how many files were attached."""
    rows = ctx.session.scalars(
        select(TicketMessage)
        .where(TicketMessage.ticket_id == ticket.id)
        .order_by(TicketMessage.created_at.desc(), TicketMessage.id.desc())
    )
    room = ctx.config.limits.notify_attachment_size
    entries: list[dict[str, Any]] = []
    attached: list[OutgoingAttachment] = []
    for row in rows:
        listed, sent = offer_files(ctx, ticket, agent, files.get(row.id, []), room, "history")
        room -= sum(len(a.payload) for a in sent)
        attached += sent
        entries.append(_entry(ctx, row, listed))
    send_to_agent(ctx, ticket, agent, "history", tuple(attached), messages=entries)
    return len(attached)
