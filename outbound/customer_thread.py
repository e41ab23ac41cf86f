"""How every mail to a ticket's customer threads with the ticket's conversation.

The acknowledgement, a relayed agent answer, a KYC decision or request, a document receipt, an
SLA follow-up, the automatic close, the survey: each is In-Reply-To the customer's latest
message (or the one it answers) and its References hold the chain, bounded as threading
readers expect (RFC 5322 section 3.6.4; the netnews rule of trimming keeps the first): the
ticket's first message and the last ones before the parent, then the parent. Clients that
thread by References (Outlook, Gmail) keep the ticket in one conversation; those that thread by
In-Reply-To see the answer under the customer's mail.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from domain.message import ParsedMessage
from storage.models import Ticket, TicketMessage

# At most this many ids in References: the first and the last ones.
REFERENCES_KEPT = 10
# The messages the customer saw: theirs, and ours to them (agent answers, automatic mail).
_CONVERSATION = frozenset({("in", "customer"), ("out", "agent"), ("out", "auto")})


@dataclass(frozen=True)
class Thread:
    in_reply_to: str | None
    references: tuple[str, ...]


def bounded(ids: Iterable[str], kept: int = REFERENCES_KEPT) -> tuple[str, ...]:
    """`ids` without repeats (the last one stays last), cut to the first and the last ones."""
    unique = list(dict.fromkeys(i for i in ids if i))
    if len(unique) <= kept:
        return tuple(unique)
    return (unique[0], *unique[len(unique) - kept + 1 :])


def customer_thread(
    session: Session, ticket: Ticket, answering: ParsedMessage | None = None
) -> Thread:
    """The threading headers of a mail to the ticket's customer: answering `answering` (the
    message being processed) when given, else the customer's latest message of the ticket."""
    rows = [
        (row.id, row.message_id, row.kind)
        for row in session.execute(
            select(
                TicketMessage.id,
                TicketMessage.message_id,
                TicketMessage.direction,
                TicketMessage.kind,
            )
            .where(TicketMessage.ticket_id == ticket.id, TicketMessage.message_id.is_not(None))
            .order_by(TicketMessage.id)
        )
        if (row.direction, row.kind) in _CONVERSATION
    ]
    theirs = [(i, m) for i, m, kind in rows if kind == "customer"]
    own: tuple[str, ...] = ()
    if answering is not None and answering.message_id:
        parent: str | None = answering.message_id
        own = answering.references
    else:
        parent = theirs[-1][1] if theirs else None
    at = max((i for i, m in theirs if m == parent), default=None)
    before = [m for i, m, _kind in rows if at is None or i < at]
    if parent is None:
        return Thread(None, bounded(before))
    chain = [m for m in (*before, *own) if m != parent]
    return Thread(parent, bounded((*chain, parent)))
