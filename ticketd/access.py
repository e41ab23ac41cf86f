"""Staff see their area only (issue 16): the commands that show content act for an agent.

`tickets show`, `kyc export` and `customer export` take the acting agent (`--agent EMAIL`);
without one the command line acts as the desk's admin. An agent may see a ticket of their queues
or one assigned to them (the rule agents' mail commands follow, ingest/agent_replies.py); any
other is refused. Every access and every refusal is a row of `access_audit`, written in a
transaction of its own before anything is shown, so a refusal is recorded even though nothing
else happens.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from domain.config import Config
from domain.errors import Permanent
from ingest.agent_replies import may_act
from storage.db import Database
from storage.models import AccessAudit, Ticket

ADMIN = "admin (command line)"


class AccessRefused(Permanent):
    """The acting agent may not see this: not an agent, or a ticket outside their queues."""


def acting_agent(config: Config, email: str | None) -> str:
    """The actor the audit names: the agent's configured address, or the admin."""
    if email is None:
        return ADMIN
    agent = config.team.agent(email)
    if agent is None:
        raise AccessRefused(f"{email} is not a configured agent")
    return agent.email


def outside_area(config: Config, actor: str, tickets: list[Ticket]) -> list[Ticket]:
    """The tickets the actor may not see (none for the admin)."""
    agent = config.team.agent(actor)
    if agent is None:
        return []
    return [t for t in tickets if not may_act(agent, t)]


def refuse(
    db: Database,
    actor: str,
    customer: str,
    outside: list[tuple[int, str]],
    now: datetime,
    what: str,
) -> None:
    """Audit the refusal of these (id, ref) tickets, then raise."""
    with db.transaction() as session:
        for ticket_id, _ in outside:
            session.add(
                AccessAudit(
                    actor=actor,
                    action=f"{what} refused",
                    customer=customer,
                    ticket_id=ticket_id,
                    at=now,
                    detail="outside the agent's queues",
                )
            )
    refs = ", ".join(ref for _, ref in outside)
    raise AccessRefused(f"{actor} is not an agent of the queue of ticket(s) {refs}")


def check_ticket(
    db: Database, config: Config, now: datetime, ref: str, agent_email: str | None, what: str
) -> str:
    """May the actor see ticket `ref` (a canonical reference)? Audited either way; returns the
    actor, raises AccessRefused."""
    actor = acting_agent(config, agent_email)
    with db.read() as session:
        ticket = session.scalar(select(Ticket).where(Ticket.ref == ref))
        if ticket is None:
            raise AccessRefused(f"no ticket {ref}")
        ticket_id, customer = ticket.id, ticket.customer
        refused = bool(outside_area(config, actor, [ticket]))
    if refused:
        refuse(db, actor, customer, [(ticket_id, ref)], now, what)
    with db.transaction() as session:
        session.add(
            AccessAudit(actor=actor, action=what, customer=customer, ticket_id=ticket_id, at=now)
        )
    return actor
