"""Decisions on identity documents (issue 6): `#kyc approve`, `#kyc reject REASON`, and the
request for documents, `#kyc request`.

Only agents of a queue that takes the kyc category may decide or request (not merely anyone the
ticket is assigned to); each decision is in the access audit, and the customer is told, with
the reason when rejected. The customer's verification state follows (ingest/verification.py).
"""

from __future__ import annotations

from sqlalchemy import select

from domain.config_team import AgentConfig, TeamConfig
from domain.context import Context
from domain.history import add_note
from ingest.verification import binds_verification, decided, request_documents
from outbound.automatic import AutomaticMail, queue_automatic
from storage.models import (
    DOC_APPROVED,
    DOC_RECEIVED,
    DOC_REJECTED,
    Document,
    DocumentAccess,
    Ticket,
)


def is_kyc_agent(team: TeamConfig, agent: AgentConfig) -> bool:
    return any(q.name in agent.queues and "kyc" in q.categories for q in team.queues)


def waiting_documents(ctx: Context, ticket: Ticket) -> list[Document]:
    return list(
        ctx.session.scalars(
            select(Document)
            .where(Document.ticket_id == ticket.id, Document.state == DOC_RECEIVED)
            .order_by(Document.id)
        )
    )


def review_problems(
    ctx: Context, agent: AgentConfig, ticket: Ticket, argument: str = "approve"
) -> list[str]:
    if not is_kyc_agent(ctx.config.team, agent):
        return ["#kyc: only agents of the identity (kyc) queue may decide on documents"]
    if argument == "request":
        return []
    if not waiting_documents(ctx, ticket):
        return [f"#kyc: ticket {ticket.ref} has no documents waiting for a decision"]
    return []


def decide(ctx: Context, ticket: Ticket, agent: AgentConfig, argument: str) -> str:
    """Apply "approve" or "reject REASON" to the ticket's waiting documents; tell the customer."""
    decision, _, reason = argument.partition(" ")
    if decision == "request":
        return f"documents requested, customer mail {request_documents(ctx, ticket, agent.email)}"
    approved = decision == "approve"
    now = ctx.clock.now()
    documents = waiting_documents(ctx, ticket)
    for document in documents:
        document.state = DOC_APPROVED if approved else DOC_REJECTED
        document.decided_by = agent.email
        document.decided_at = now
        document.reason = None if approved else reason
        ctx.session.add(
            DocumentAccess(
                document_id=document.id,
                actor=agent.email,
                action="decide",
                at=now,
                detail=f"{decision}: {reason}" if reason else decision,
            )
        )
    if not binds_verification(ctx, ticket):
        # Telling the address "your identity is verified" (or refused) would be false: its
        # verification did not change, and the documents may be a stranger's.
        add_note(
            ctx,
            ticket,
            "Verification unchanged",
            f"The documents were {decision}d, but the verification of {ticket.customer} is "
            "unchanged: they did not come in a mail proven to be from that address. The "
            "customer was not told; ask with `#kyc request` and decide on the answer.",
            f"note:kyc-unbound:{ticket.id}:{now.isoformat()}",
        )
        unbound = f"the verification of {ticket.customer} is unchanged (unproven)"
        return f"{len(documents)} document(s) {decision}d; {unbound}, customer not told"
    decided(ctx, ticket, agent.email, approved, reason)
    template = "kyc_approved" if approved else "kyc_rejected"
    mail = AutomaticMail(
        template, template, ticket.customer, None, {"reason": reason}, actor=agent.email
    )
    sent = queue_automatic(ctx, ticket, mail)
    return f"{len(documents)} document(s) {decision}d, customer mail {sent}"
