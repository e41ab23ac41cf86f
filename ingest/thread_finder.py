"""Which ticket a message continues, with proof; strangers cannot write into a ticket.

In order of strength:
1. it answers one of our mails: In-Reply-To/References names a Message-ID we signed or sent;
2. it was sent to the ticket's signed reply address (`destek+<ref>.<sig>@...`);
3. it names a Message-ID the ticket received, and the sender is a participant of the ticket
   (the Message-IDs of received mail are no secret: anyone in a Cc, any list archive has them);
4. its subject carries the reference and the sender is a participant of the ticket;
5. it repeats a request the same customer made lately, nearly word for word, and the sender is
   proven to be that customer (ingest/sender_proof.py): a forged From with the same words opens
   its own ticket, and nothing about hers. "Lately" is between the two requests' own dates
   (domain/requests.py), so an import of old mail is measured in its time.
A reference in the subject from anyone else opens a new ticket that remembers the claim.
A merged ticket's reference leads to the ticket that absorbed it. Only 1 and 2 prove that the
sender reads the ticket's mail (`Threading.proof`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from rapidfuzz import fuzz
from sqlalchemy import bindparam, func, select

from domain.context import Context
from domain.message import ParsedMessage
from domain.refs import find_references
from domain.requests import normalised, request_print, written_at
from outbound.addresses import ref_from_address
from outbound.compose import verify_message_id
from storage.models import OutboxMail, Ticket, TicketMessage

OPEN_STATUSES = ("open", "pending")
# How alike two requests must be to count as the same one (rapidfuzz's ratio, an exact
# 2 * common characters / both lengths, as difflib's ratio estimates it; 0 to 1).
SAME_REQUEST_RATIO = 0.9
# A customer's recent open tickets compared at most.
_CANDIDATES = 20

# Built once: building a statement (and its cache key) per message cost more than running it.
_BY_REF = select(Ticket).where(Ticket.ref == bindparam("ref"))
_OURS = (
    select(OutboxMail.ticket_id)
    .where(OutboxMail.message_id.in_(bindparam("ids", expanding=True)))
    .limit(1)
)
_RECEIVED = (
    select(TicketMessage.ticket_id)
    .where(TicketMessage.message_id.in_(bindparam("ids", expanding=True)))
    .limit(20)
)
_RECENT = (
    select(Ticket)
    .where(
        Ticket.customer == bindparam("customer"),
        Ticket.request_at >= bindparam("since"),
        Ticket.request_at <= bindparam("moment"),
        Ticket.status.in_(OPEN_STATUSES),
        Ticket.merged_into_id.is_(None),
    )
    .order_by(Ticket.request_at.desc(), Ticket.id.desc())
    .limit(_CANDIDATES)
)


@dataclass(frozen=True)
class Threading:
    ticket: Ticket | None  # the ticket this message continues, None for a new one
    claimed_ref: str | None  # a reference in the subject we did not honour
    how: str
    repeated_request: bool = False
    # The sender answered a mail only the ticket's recipients got: our signed Message-ID or
    # the signed reply address.
    proof: bool = False


def survivor(ctx: Context, ticket: Ticket) -> Ticket:
    """Follow merges to the ticket that lives on (bounded: merges never form a cycle)."""
    seen = {ticket.id}
    while ticket.merged_into_id is not None:
        following = ctx.session.get(Ticket, ticket.merged_into_id)
        if following is None or following.id in seen:
            break
        seen.add(following.id)
        ticket = following
    return ticket


def ticket_by_ref(ctx: Context, ref: str) -> Ticket | None:
    ticket = ctx.session.scalar(_BY_REF, {"ref": ref})
    return survivor(ctx, ticket) if ticket is not None else None


def is_participant(ticket: Ticket, email: str) -> bool:
    return any(p.email == email for p in ticket.participants)


def _by_message_ids(ctx: Context, ids: Sequence[str], sender: str) -> Threading | None:
    for message_id in ids:
        ref = verify_message_id(ctx.config.desk.secret, message_id)
        ticket = ticket_by_ref(ctx, ref) if ref is not None else None
        if ticket is not None:
            return Threading(ticket, None, f"answers our mail <{message_id}>", proof=True)
    if not ids:
        return None
    ours = ctx.session.scalar(_OURS, {"ids": list(ids)})
    ticket = ctx.session.get(Ticket, ours) if ours is not None else None
    if ticket is not None:  # ours under a secret since rotated: still only its recipients had it
        return Threading(survivor(ctx, ticket), None, "answers a mail of ours", proof=True)
    received = ctx.session.scalars(_RECEIVED, {"ids": list(ids)})
    for ticket_id in dict.fromkeys(received):
        found = ctx.session.get(Ticket, ticket_id)
        ticket = survivor(ctx, found) if found is not None else None
        if ticket is not None and is_participant(ticket, sender):
            return Threading(ticket, None, "answers a message of the ticket, from a participant")
    return None


def _by_reply_address(ctx: Context, recipients: Sequence[str]) -> Threading | None:
    for address in recipients:
        ref = ref_from_address(ctx.config.desk, address)
        ticket = ticket_by_ref(ctx, ref) if ref is not None else None
        if ticket is not None:
            return Threading(ticket, None, f"sent to the reply address of {ticket.ref}", proof=True)
    return None


def _by_subject(ctx: Context, message: ParsedMessage) -> Threading | None:
    for ref in find_references(message.subject):
        ticket = ticket_by_ref(ctx, ref)
        if ticket is None:
            continue
        if is_participant(ticket, message.sender.email):
            return Threading(ticket, None, f"reference {ref} in the subject from a participant")
        # A stranger naming someone else's ticket: a new ticket that remembers the claim; the
        # owner of the named ticket learns nothing.
        return Threading(None, ref, f"reference {ref} claimed by a non-participant")
    return None


def _recent_requests(ctx: Context, customer: str, moment: datetime) -> list[Ticket]:
    """The customer's open tickets whose first request was written in the window before
    `moment`, newest first: a range of the (customer, request_at) index, never a scan."""
    since = moment - timedelta(minutes=ctx.config.threading.duplicate_window_minutes)
    return list(
        ctx.session.scalars(_RECENT, {"customer": customer, "since": since, "moment": moment})
    )


def _first_requests(ctx: Context, tickets: Sequence[Ticket]) -> dict[int, str]:
    """The normalised first customer message of each ticket, in one query by index."""
    first = (
        select(func.min(TicketMessage.id))
        .where(TicketMessage.ticket_id.in_([t.id for t in tickets]))
        .where(TicketMessage.kind == "customer")
        .group_by(TicketMessage.ticket_id)
    )
    rows = ctx.session.execute(
        select(TicketMessage.ticket_id, TicketMessage.subject, TicketMessage.text).where(
            TicketMessage.id.in_(first)
        )
    )
    return {ticket_id: normalised(subject, text) for ticket_id, subject, text in rows}


def _by_repeated_request(ctx: Context, message: ParsedMessage, opening: str) -> Threading | None:
    """The same words (the fingerprint), or nearly (rapidfuzz's ratio), as a request the
    customer wrote within the window before this one was written."""
    if not ctx.config.threading.duplicate_window_minutes or not message.sender.email:
        return None
    candidates = _recent_requests(ctx, message.sender.email, written_at(message, ctx.clock.now()))
    if not candidates:
        return None  # before the text is worked out: most senders have no recent request
    # The text as a ticket's opening keeps it (step_record), which is what each first request
    # was kept as: a forward compared by its words, not by its marker line.
    words = normalised(message.subject, opening)
    if not words:
        return None
    digest = request_print(words)
    same = next((t for t in candidates if t.request_print == digest), None)
    if same is None:
        texts = _first_requests(ctx, candidates)
        same = next(
            (
                t
                for t in candidates
                if t.id in texts
                and fuzz.ratio(texts[t.id], words, score_cutoff=SAME_REQUEST_RATIO * 100)
            ),
            None,
        )
    return Threading(same, None, f"repeats the request of {same.ref}", True) if same else None


def find_thread(
    ctx: Context,
    message: ParsedMessage,
    envelope_to: Sequence[str],
    proven_opening: str | None = None,
) -> Threading:
    """`proven_opening`: the text the message would open a ticket with (ingest/text_readings),
    given only when an aligned DKIM/SPF pass proves the From (ingest/sender_proof.py): only
    then may a repeated request join the customer's open ticket."""
    recipients = [*envelope_to, *(a.email for a in (*message.to, *message.cc))]
    ids = (*message.in_reply_to, *reversed(message.references))
    return (
        _by_message_ids(ctx, ids, message.sender.email)
        or _by_reply_address(ctx, recipients)
        or _by_subject(ctx, message)
        or (
            _by_repeated_request(ctx, message, proven_opening)
            if proven_opening is not None
            else None
        )
        or Threading(None, None, "new conversation")
    )
