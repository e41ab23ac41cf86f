"""Customers' verification states from the command line (issue 6): `kyc status` and `kyc request`.

The status is metadata only: the state, the rejection's reason, who did what and when; never a
document's content or name.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from domain.context import Context
from domain.history import add_note
from ingest.verification import request_documents
from storage.db import Database
from storage.models import Ticket, Verification
from ticketd.documents_admin import DocumentAdminError, kyc_agent, ticket_by_ref_in
from ticketd.state import State


def verification_states(db: Database, customer: str | None = None) -> list[dict[str, Any]]:
    query = (
        select(Verification, Ticket.ref)
        .outerjoin(Ticket, Ticket.id == Verification.ticket_id)
        .order_by(Verification.customer)
    )
    if customer is not None:
        query = query.where(Verification.customer == customer.strip().lower())
    with db.read() as session:
        return [
            {
                "customer": row.customer,
                "state": row.state,
                "reason": row.reason,
                "ticket": ref,
                "requested_at": row.requested_at,
                "requested_by": row.requested_by,
                "received_at": row.received_at,
                "decided_at": row.decided_at,
                "decided_by": row.decided_by,
                "expires_at": row.expires_at,
                "expired_at": row.expired_at,
                "expired_from": row.expired_from,
            }
            for row, ref in session.execute(query)
        ]


def request_from_command_line(state: State, ref: str, agent_email: str) -> str:
    """`ticketd kyc request REF --agent EMAIL`: what `#kyc request` does, from the shell."""
    agent = kyc_agent(state.config, agent_email)
    with state.db.transaction() as session:
        ticket = ticket_by_ref_in(session, ref)
        if ticket is None:
            raise DocumentAdminError(f"no ticket {ref}")
        ctx = Context(session, state.config, state.clock, state.templates)
        sent = request_documents(ctx, ticket, agent)
        add_note(
            ctx,
            ticket,
            "Identity documents requested",
            f"{agent} asked {ticket.customer} for identity documents (ticketd kyc request); "
            f"customer mail {sent}.",
            f"note:kyc-request:{ticket.id}:{ctx.clock.now().isoformat()}",
        )
        return f"{ticket.ref}: documents requested from {ticket.customer}, customer mail {sent}"
