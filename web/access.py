"""Which ticket a request may touch, and the audit of every content access.

An agent's token reaches the tickets of the agent's queues and those assigned to them (the rule
of their mail, ingest/agent_replies.may_act); any other ticket is 404, as if it did not exist
(its reference says nothing to someone outside its queue), and the refusal is audited. Every
access is a row of `access_audit`, committed with what the request did or, for a refusal, on
its own before the 404 is sent.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from domain.config_team import TeamConfig
from domain.refs import normalise
from ingest.agent_replies import may_act
from ingest.documents_review import is_kyc_agent
from storage.db import Database
from storage.models import AccessAudit, Ticket
from web.errors import not_found
from web.tokens import Principal


def canonical_ref(ref: str) -> str:
    return normalise(ref.strip().lstrip("#").strip("[]#")) or ref.strip().upper()


def find_ticket(session: Session, ref: str) -> Ticket | None:
    """The ticket `ref` names; a merged ticket's reference leads to its survivor."""
    ticket = session.scalar(select(Ticket).where(Ticket.ref == canonical_ref(ref)))
    seen: set[int] = set()
    while ticket is not None and ticket.merged_into_id is not None and ticket.id not in seen:
        seen.add(ticket.id)
        ticket = session.get(Ticket, ticket.merged_into_id)
    return ticket


def may_see(principal: Principal, ticket: Ticket) -> bool:
    return principal.agent is None or may_act(principal.agent, ticket)


def is_identity_reader(principal: Principal, team: TeamConfig) -> bool:
    """Identity documents: the agents of a queue that takes kyc, and admins."""
    return principal.agent is None or is_kyc_agent(team, principal.agent)


def audit(
    session: Session,
    principal: Principal,
    action: str,
    ticket: Ticket | None,
    now: datetime,
    detail: str | None = None,
    customer: str | None = None,
) -> None:
    session.add(
        AccessAudit(
            actor=principal.actor,
            action=action,
            customer=ticket.customer if ticket is not None else customer,
            ticket_id=ticket.id if ticket is not None else None,
            at=now,
            detail=detail,
        )
    )


def visible_ticket_id(
    db: Database, principal: Principal, ref: str, action: str, now: datetime
) -> int:
    """The id of the ticket `ref` names for this principal, or 404: none, or one outside the
    agent's area (audited, in a transaction of its own, before the 404)."""
    with db.read() as session:
        ticket = find_ticket(session, ref)
        if ticket is None:
            raise not_found("such ticket")
        ticket_id = ticket.id
        if may_see(principal, ticket):
            return ticket_id
    with db.transaction() as session:
        refused = session.get(Ticket, ticket_id)
        audit(session, principal, f"{action} refused", refused, now, "outside the agent's queues")
    raise not_found("such ticket")
