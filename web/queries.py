"""`GET /api/v1/tickets`: filters, the agent's area, full-text search and cursor paging.

Newest first. The cursor is the id of the last ticket of the page (opaque to clients): the next
page is the tickets below it, so paging stays right while new tickets arrive. Every ticket on a
page is a row of `access_audit` (subjects and addresses are the customers' data).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from domain.turkish import fold
from storage.db import Database
from storage.models import TICKET_STATUSES, AccessAudit, Ticket, TicketMessage
from storage.search import matching_tickets, terms
from web.errors import ApiError, bad_request
from web.tokens import Principal

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


@dataclass(frozen=True)
class TicketFilter:
    status: str | None = None
    queue: str | None = None
    assignee: str | None = None
    customer: str | None = None
    q: str | None = None
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None
    statuses: tuple[str, ...] = ()  # any of these (the console's open and pending)


def checked(wanted: TicketFilter, queues: Iterable[str]) -> TicketFilter:
    """The filter with `status` and `queue` as stored (any case given), or ApiError 422 naming
    the parameter and the values it takes: an unknown value is a mistake, not an empty list."""
    status, queue, problems = wanted.status, wanted.queue, []
    if status:
        status = status.strip().lower()
        if status not in TICKET_STATUSES:
            known = ", ".join(TICKET_STATUSES)
            problems.append(f"status: {wanted.status!r} is not one of {known}")
    if queue:
        names = list(queues)
        queue = next((n for n in names if n.lower() == queue.strip().lower()), None)
        if queue is None:
            problems.append(f"queue: no queue {wanted.queue!r} (queues: {', '.join(names)})")
    if problems:
        raise ApiError(422, "; ".join(problems))
    return replace(wanted, status=status, queue=queue)


def encode_cursor(ticket_id: int) -> str:
    return base64.urlsafe_b64encode(f"t{ticket_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if text.startswith("t") and text[1:].isdigit():
            return int(text[1:])
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise bad_request("cursor: not a cursor this API gave (next_cursor of a page)")


def in_area(principal: Principal) -> Any:
    """The SQL condition of the principal's tickets: their queues, and those assigned to them
    (the rule of agents' mail, ingest/agent_replies.may_act)."""
    agent = principal.agent
    if agent is None:
        return None
    # Any case, as may_act: a ticket assigned under another spelling is still theirs.
    return or_(Ticket.queue.in_(agent.queues), func.lower(Ticket.assignee) == agent.email)


def _filtered(query: Select[Any], dialect: str, wanted: TicketFilter) -> Select[Any]:
    if wanted.status:
        query = query.where(Ticket.status == wanted.status)
    if wanted.statuses:
        query = query.where(Ticket.status.in_(wanted.statuses))
    if wanted.queue:
        query = query.where(Ticket.queue == wanted.queue)
    if wanted.assignee:
        query = query.where(func.lower(Ticket.assignee) == wanted.assignee.strip().lower())
    if wanted.customer:
        query = query.where(Ticket.customer == wanted.customer.strip().lower())
    if wanted.q is not None:
        words = terms(fold(wanted.q))
        if not words:
            raise bad_request("q: no word to search for")
        query = query.where(Ticket.id.in_(matching_tickets(dialect, words)))
    return query


def _counts(session: Session, ids: list[int]) -> dict[int, int]:
    if not ids:
        return {}
    rows = session.execute(
        select(TicketMessage.ticket_id, func.count(TicketMessage.id))
        .where(TicketMessage.ticket_id.in_(ids))
        .group_by(TicketMessage.ticket_id)
    )
    return {ticket_id: int(count) for ticket_id, count in rows}


def ticket_item(ticket: Ticket, messages: int) -> dict[str, Any]:
    """A ticket as `tickets list --json` gives it (queue, assignee and priority included)."""
    return {
        "ref": ticket.ref,
        "status": ticket.status,
        "category": ticket.category,
        "queue": ticket.queue,
        "assignee": ticket.assignee,
        "priority": ticket.priority,
        "customer": ticket.customer,
        "subject": ticket.subject,
        "messages": messages,
        "language": ticket.language,
        "created_at": ticket.created_at.isoformat(),
        "updated_at": ticket.updated_at.isoformat(),
    }


def list_page(
    db: Database,
    principal: Principal,
    wanted: TicketFilter,
    now: datetime,
    action: str = "api list",
) -> dict[str, Any]:
    """One page: `items` and `next_cursor` (None on the last page); each ticket on it a row
    of `access_audit` named `action`."""
    query = select(Ticket).order_by(Ticket.id.desc()).limit(wanted.limit + 1)
    area = in_area(principal)
    if area is not None:
        query = query.where(area)
    if wanted.cursor is not None:
        query = query.where(Ticket.id < decode_cursor(wanted.cursor))
    query = _filtered(query, db.engine.dialect.name, wanted)
    with db.transaction() as session:
        tickets = list(session.scalars(query))
        more = len(tickets) > wanted.limit
        tickets = tickets[: wanted.limit]
        counts = _counts(session, [t.id for t in tickets])
        items = [ticket_item(t, counts.get(t.id, 0)) for t in tickets]
        session.add_all(
            AccessAudit(
                actor=principal.actor,
                action=action,
                customer=t.customer,
                ticket_id=t.id,
                at=now,
            )
            for t in tickets
        )
    next_cursor = encode_cursor(tickets[-1].id) if more and tickets else None
    return {"items": items, "next_cursor": next_cursor}
