"""Read-side queries for the command line: plain dicts ready for JSON or a table."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from domain.clock import Clock
from domain.refs import normalise
from outbound.sla_deadlines import sla_summary
from outbound.survey import satisfaction
from storage.db import Database
from storage.models import (
    JOURNAL_DISMISSED,
    JOURNAL_PENDING,
    JOURNAL_QUARANTINED,
    AccessAudit,
    JournalEntry,
    OutboxMail,
    Ticket,
    TicketMessage,
)


def _as_shown(attachment: dict[str, Any]) -> dict[str, Any]:
    """An attachment as `tickets show --json` gives it: `content_type` is the type found in the
    bytes when they show one (a renamed executable is not an image/jpeg to a script reading
    it), `declared_type` what the mail said."""
    shown = dict(attachment)
    declared = str(attachment.get("content_type") or "")
    detected = str(attachment.get("detected") or "unknown")
    shown["declared_type"] = declared
    shown["content_type"] = detected if detected != "unknown" else declared
    return shown


def list_tickets(
    db: Database,
    status: str | None = None,
    queue: str | None = None,
    assignee: str | None = None,
    customer: str | None = None,
) -> list[dict[str, Any]]:
    """Every ticket, or those with this status, queue, assignee and customer (addresses in any
    case)."""
    with db.transaction() as session:
        counts = (
            select(TicketMessage.ticket_id, func.count(TicketMessage.id).label("n"))
            .group_by(TicketMessage.ticket_id)
            .subquery()
        )
        query = (
            select(Ticket, func.coalesce(counts.c.n, 0))
            .outerjoin(counts, counts.c.ticket_id == Ticket.id)
            .order_by(Ticket.id)
        )
        if status:
            query = query.where(Ticket.status == status)
        if queue:
            query = query.where(Ticket.queue == queue)
        if assignee:
            query = query.where(func.lower(Ticket.assignee) == assignee.lower())
        if customer:
            query = query.where(func.lower(Ticket.customer) == customer.lower())
        return [
            {
                "ref": ticket.ref,
                "status": ticket.status,
                "category": ticket.category,
                "queue": ticket.queue,
                "assignee": ticket.assignee,
                "priority": ticket.priority,
                "customer": ticket.customer,
                "subject": ticket.subject,
                "messages": int(count),
                "language": ticket.language,
                "created_at": ticket.created_at.isoformat(),
                "updated_at": ticket.updated_at.isoformat(),
            }
            for ticket, count in session.execute(query)
        ]


def show_ticket(db: Database, ref: str) -> dict[str, Any] | None:
    canonical = normalise(ref.strip().lstrip("#").strip("[]#")) or ref.strip().upper()
    with db.transaction() as session:
        ticket = session.scalar(
            select(Ticket)
            .where(Ticket.ref == canonical)
            .options(selectinload(Ticket.messages), selectinload(Ticket.participants))
        )
        if ticket is None:
            return None
        asked_for = ticket.ref
        seen = {ticket.id}
        while ticket.merged_into_id is not None and ticket.merged_into_id not in seen:
            # A merged ticket's reference leads to the survivor.
            seen.add(ticket.merged_into_id)
            following = session.get(Ticket, ticket.merged_into_id)
            if following is None:
                break
            ticket = following
        outbox = {
            row.message_id: row
            for row in session.scalars(select(OutboxMail).where(OutboxMail.ticket_id == ticket.id))
        }
        messages = []
        for message in ticket.messages:
            item: dict[str, Any] = {
                "direction": message.direction,
                "kind": message.kind,
                "from": message.from_addr,
                "to": list(message.to_addrs),
                "cc": list(message.cc_addrs),
                "subject": message.subject,
                "text": message.text,
                "attachments": [_as_shown(a) for a in message.attachments],
                "message_id": message.message_id,
                "at": message.created_at.isoformat(),
            }
            sent = outbox.get(message.message_id or "")
            if sent is not None:
                item["delivery"] = {"state": sent.state, "error": sent.last_error}
            messages.append(item)
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
            "claimed_ref": ticket.claimed_ref,
            "requested_ref": asked_for,
            "participants": [p.email for p in ticket.participants],
            "created_at": ticket.created_at.isoformat(),
            "sla": sla_summary(ticket),
            "satisfaction": satisfaction(ticket),
            "messages": messages,
        }


def list_quarantine(db: Database) -> list[dict[str, Any]]:
    with db.transaction() as session:
        rows = session.scalars(
            select(JournalEntry)
            .where(JournalEntry.state == JOURNAL_QUARANTINED)
            .order_by(JournalEntry.id)
        )
        return [
            {
                "id": row.id,
                "received_at": row.received_at.isoformat(),
                "source": row.source,
                "size": row.size,
                "attempts": row.attempts,
                "step": row.step,  # the pipeline step that quarantined it (ingest/runner.py)
                "reason": row.reason,
            }
            for row in rows
        ]


def dismiss(db: Database, clock: Clock, journal_id: int, reason: str, actor: str) -> str | None:
    """Clear a quarantined message for good: its state becomes dismissed, its reason keeps what
    it was and why it was dismissed, and `access_audit` has a row (`quarantine-dismiss`). The
    message itself stays (retention removes it like any other). The old reason, or None when
    there is no quarantined message `journal_id`."""
    now = clock.now()
    with db.transaction() as session:
        row = session.get(JournalEntry, journal_id)
        if row is None or row.state != JOURNAL_QUARANTINED:
            return None
        before = row.reason or ""
        row.state = JOURNAL_DISMISSED
        row.reason = f"dismissed by {actor} at {now:%Y-%m-%d %H:%M} UTC: {reason} (was: {before})"
        row.processed_at = now
        session.add(
            AccessAudit(
                actor=actor,
                action="quarantine-dismiss",
                at=now,
                detail=f"journal {journal_id}: {reason}; was: {before}",
            )
        )
        return before


def requeue(
    db: Database, journal_id: int, actor: str | None = None, now: datetime | None = None
) -> bool:
    """A quarantined message back to pending (the worker takes it again); with an actor, a
    row of `access_audit` (`quarantine-retry`) says who. False when there is no quarantined
    message `journal_id`."""
    with db.transaction() as session:
        row = session.get(JournalEntry, journal_id)
        if row is None or row.state != JOURNAL_QUARANTINED:
            return False
        row.state = JOURNAL_PENDING
        if actor is not None and now is not None:
            detail = f"journal {journal_id}; was: {row.reason or ''}"
            session.add(AccessAudit(actor=actor, action="quarantine-retry", at=now, detail=detail))
        return True


def list_outbox(db: Database) -> list[dict[str, Any]]:
    with db.transaction() as session:
        rows = session.scalars(select(OutboxMail).order_by(OutboxMail.id))
        return [
            {
                "id": row.id,
                "to": ", ".join(row.recipients),
                "subject": row.subject,
                "kind": row.kind,
                "state": row.state,
                "attempts": row.attempts,
                "last_error": row.last_error,
                "created_at": row.created_at.isoformat(),
                "sent_at": row.sent_at.isoformat() if row.sent_at else None,
            }
            for row in rows
        ]


# What a terminal acts on instead of showing: the C0 controls but tab and newline (ESC starts
# every escape sequence: a window title, a cleared screen, an OSC 8 hyperlink; CR overwrites the
# line), DEL, the C1 controls (U+0080-U+009F: 8-bit CSI and OSC), and the bidirectional
# overrides that make text read in another order than it is.
_TERMINAL_CONTROLS = re.compile(
    r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def for_terminal(value: object) -> str:
    """`value` as text a terminal prints and never obeys: its controls written out (`\\x1b`)."""
    return _TERMINAL_CONTROLS.sub(_escaped, "" if value is None else str(value))


def print_table(columns: Sequence[str], rows: Sequence[Mapping[str, object]]) -> None:
    console = Console()
    if not console.is_terminal:
        # In a pipe or a file: one tab-separated line per row, every value whole (a table would
        # be cut to 80 columns, addresses and subjects with it).
        print("\t".join(columns))
        for row in rows:
            print("\t".join(_cell(row.get(c)) for c in columns))
        return
    table = Table(*columns)
    for row in rows:
        # Text, not markup: a subject like "[#7KQM-X3P9]" must not be read as a rich style.
        table.add_row(*(Text(for_terminal(row.get(c))) for c in columns))
    console.print(table)


def _cell(value: object) -> str:
    """A value on one line of tab-separated output, its terminal controls written out."""
    return "" if value is None else for_terminal(" ".join(str(value).split()))


# How `ticketd show` marks attachments that are not plain files (roles from ingest/parsing.py).
_ROLE_LABELS = {
    "inline": " [in the body]",
    "enclosed": " [inside a forwarded message]",
    "decoration": " [signature image]",
    "message": " [forwarded message]",
}


def print_ticket(ticket: dict[str, Any]) -> None:
    """What a customer wrote is printed with its terminal controls written out (for_terminal):
    a subject must not retitle the agent's window, clear the screen or hide a link."""
    console = Console(highlight=False)
    say = for_terminal
    head = (
        f"  {ticket['status']}  {ticket['category']}  {say(ticket['customer'])}  queue "
        f"{ticket.get('queue') or '-'}  assignee {ticket.get('assignee') or '-'}  priority "
        f"{ticket.get('priority') or '-'}"
    )
    console.print(Text.assemble((str(ticket["ref"]), "bold"), head))
    console.print(say(ticket["subject"]), markup=False)
    console.print("participants: " + say(", ".join(ticket["participants"])), markup=False)
    console.print(
        "SLA: " + ", ".join(f"{k} {v}" for k, v in ticket["sla"].items() if v), markup=False
    )
    score = ticket.get("satisfaction")
    if score:
        comment = say(score["comment"] or "")
        console.print(f"satisfaction: {score['score']}/5 {comment}".rstrip(), markup=False)
    for message in ticket["messages"]:
        arrow = "<-" if message["direction"] == "in" else "->"
        delivery = message.get("delivery")
        state = f" [{delivery['state']}]" if delivery else ""
        heading = f"{arrow} {message['kind']} {say(message['from'])} {message['at']}{state}"
        console.rule(Text(heading), style="dim")
        console.print(say(message["text"]), markup=False)
        for attachment in message["attachments"]:
            role = _ROLE_LABELS.get(str(attachment.get("role", "")), "")
            declared = str(attachment.get("declared_type") or attachment["content_type"])
            detected = str(attachment.get("detected") or declared)
            found = f", content {say(detected)}" if detected != declared else ""
            refused = (
                f" REFUSED: {say(str(attachment['refused']))}" if attachment.get("refused") else ""
            )
            console.print(
                f"  attachment: {say(attachment['filename'])} "
                f"({say(declared)}{found}, {attachment['size']} bytes){role}{refused}",
                markup=False,
            )
