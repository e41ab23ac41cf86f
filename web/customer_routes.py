"""`GET /api/v1/customers/{address}` and `POST /api/v1/tickets` (a ticket opened on a
customer's behalf, from a chat or a phone call).

A new ticket is a message from the customer written into the journal (source `api`) and taken
through the pipeline like mail: routed by its words, acknowledged with its reference, the queue's
agents told, the SLA clock started, the webhooks' ticket.created written. The answer waits for
the worker (a few seconds at most) to give the reference; a retry with the same
`Idempotency-Key` header finds the same message instead of opening a second ticket.
"""

from __future__ import annotations

import json
import time
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, getaddresses, make_msgid, parseaddr
from typing import Annotated, Any

from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import select

from domain.header_folding import SMTP_POLICY
from ingest.journal import Arrival, Journal, OriginTaken
from storage.models import JOURNAL_PENDING, JournalEntry, Ticket, TicketMessage
from web.access import audit, is_identity_reader, may_see
from web.auth import Caller, deps_of
from web.bodies import NewTicketBody
from web.errors import ApiError, bad_request, documented, not_found
from web.queries import ticket_item
from web.services import WebDeps
from web.ticket_routes import keyed, one_line_ending, shown_ticket
from web.tokens import Principal


class Pending(BaseModel):
    """`POST /api/v1/tickets` answered before the worker made the ticket."""

    journal_id: int = Field(description="the message's row: `ticketd journal list`")
    state: str = Field(description="pending")


# How long `POST /api/v1/tickets` waits for the worker before answering 202.
CREATE_WAIT_SECONDS = 15.0


def customer_view(deps: WebDeps, caller: Principal, address: str) -> dict[str, Any]:
    customer = address.strip().lower()
    now = deps.clock.now()
    with deps.db.transaction() as session:
        tickets = [
            t
            for t in session.scalars(
                select(Ticket).where(Ticket.customer == customer).order_by(Ticket.id.desc())
            )
            if may_see(caller, t)
        ]
        if not tickets and not caller.admin:
            raise not_found("such customer in your queues")
        for ticket in tickets:
            audit(session, caller, "api customer", ticket, now)
        if not tickets:
            audit(session, caller, "api customer", None, now, customer=customer)
        items = [ticket_item(t, len(t.messages)) for t in tickets]
    # Identity verification is the identity queue's business (and the admins').
    reader = is_identity_reader(caller, deps.config().team)
    verification = deps.views.verification(customer) if reader else None
    return {
        "customer": customer,
        "tickets": items,
        "verification": verification,
        "verification_shown": reader,
    }


def _mail(deps: WebDeps, caller: Principal, body: NewTicketBody) -> bytes:
    value = body.customer.strip()
    name, address = parseaddr(value)
    # Two addresses (`a@b, c@d`, or `a@b <c@d>` as the standard library reads it): parseaddr
    # gives the first and drops the rest.
    several = len(getaddresses([value])) != 1
    if name or several or "@" not in address or any(c.isspace() for c in address):
        raise bad_request("customer: one plain email address")
    desk = deps.config().desk
    mail = EmailMessage()
    mail["From"] = formataddr((body.name or "", address.lower()))
    mail["To"] = desk.address
    mail["Subject"] = body.subject
    mail["Date"] = format_datetime(deps.clock.now())
    mail["Message-ID"] = make_msgid("api", desk.domain)
    mail["X-Ticketd-Opened-By"] = caller.actor  # who wrote it down, for the raw copy
    mail.set_content(one_line_ending(body.text))
    return mail.as_bytes(policy=SMTP_POLICY)


def _ticket_of(deps: WebDeps, journal_id: int) -> tuple[str, str | None]:
    """The journal row's state and, once processed, its ticket's reference."""
    with deps.db.read() as session:
        entry = session.get(JournalEntry, journal_id)
        state = entry.state if entry is not None else "missing"
        ref = session.scalar(
            select(Ticket.ref)
            .join(TicketMessage, TicketMessage.ticket_id == Ticket.id)
            .where(TicketMessage.journal_id == journal_id)
            .limit(1)
        )
        return state, ref


def _origin(
    caller: Principal, body: NewTicketBody, key: str | None
) -> tuple[str | None, str | None]:
    """The journal origin of a request with an `Idempotency-Key` (this endpoint, the token, the
    key and the body's hash) and the family of every body with that key; (None, None) without
    a key."""
    if not key:
        return None, None
    said = [body.customer.strip().lower(), body.name, body.subject, one_line_ending(body.text)]
    return keyed(f"api:create:{caller.token_id}", key, json.dumps(said))


def open_ticket(deps: WebDeps, caller: Principal, body: NewTicketBody, key: str | None) -> Any:
    """The key again with the same body finds its message (the same ticket), even at the same
    moment as the first (the journal's turns, storage/key_turns.py); with another body it is
    refused (422): it would otherwise answer with the first body's ticket and drop this one."""
    origin, family = _origin(caller, body, key)
    arrival = Arrival(
        raw=_mail(deps, caller, body),
        source=f"api:{caller.actor}"[:200],
        envelope_from=body.customer.strip().lower(),
        envelope_to=(deps.config().desk.address,),
        origin=origin,
        origin_family=family,
    )
    try:
        journal_id = Journal(deps.db, deps.blobs, deps.clock).accept(arrival)
    except OriginTaken as error:
        raise ApiError(
            422,
            "Idempotency-Key: already used for another ticket (another customer, name, subject "
            "or text); send a new key for a new ticket",
        ) from error
    deps.message_journaled()
    deadline = time.monotonic() + CREATE_WAIT_SECONDS
    state, ref = _ticket_of(deps, journal_id)
    while state == JOURNAL_PENDING and time.monotonic() < deadline:
        time.sleep(0.1)
        state, ref = _ticket_of(deps, journal_id)
    if ref is not None:
        with deps.db.read() as session:
            made = session.scalar(select(Ticket).where(Ticket.ref == ref))
            visible = made is not None and may_see(caller, made)
        # Routed to a queue that is not the agent's: only its reference is theirs to see.
        shown = shown_ticket(deps, caller, ref, "api create") if visible else {"ref": ref}
        return JSONResponse(shown, status_code=201)
    if state == JOURNAL_PENDING:
        return JSONResponse({"journal_id": journal_id, "state": state}, status_code=202)
    raise ApiError(422, f"the message was {state}, no ticket: `ticketd journal list` says why")


def install(app: FastAPI) -> None:
    @app.get(
        "/api/v1/customers/{address}",
        tags=["customers"],
        summary="a customer's tickets and verification state",
        responses=documented(401, 404, 422),
    )
    def customer(request: Request, caller: Caller, address: str) -> dict[str, Any]:
        """The customer's tickets (those the token may see) and verification state."""
        return customer_view(deps_of(request), caller, address)

    @app.post(
        "/api/v1/tickets",
        tags=["tickets"],
        status_code=201,
        summary="a ticket opened on a customer's behalf",
        responses={
            202: {"model": Pending, "description": "journaled; the worker has not made it yet"},
            **documented(400, 401, 422),
        },
    )
    def create(
        request: Request,
        caller: Caller,
        body: NewTicketBody,
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> Any:
        """A ticket opened on a customer's behalf: through the pipeline, like their mail."""
        return open_ticket(deps_of(request), caller, body, idempotency_key)
