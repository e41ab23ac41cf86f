"""A customer's verification state (issue 6), kept in step with their identity documents.

Every change happens in the transaction of the event that causes it: an identity agent's
request (`#kyc request`, `ticketd kyc request`), documents stored by the intake, a decision.
The row is taken with a row lock (`FOR UPDATE`), so two workers handling the same customer at
once queue one after the other instead of overwriting each other; the first insert for a new
customer that collides on the unique address reads the row the other one wrote.

`expires_at` is when the state ends on its own; ticketd/kyc_service.py expires it then.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from domain.config_kyc import TYPE_NAMES, KycConfig
from domain.context import Context
from outbound.automatic import AutomaticMail, queue_automatic
from storage.models import (
    VERIFY_APPROVED,
    VERIFY_RECEIVED,
    VERIFY_REJECTED,
    VERIFY_REQUESTED,
    Ticket,
    Verification,
)

# The types a customer may send, in the words of the request mail.


def locked_verification(session: Session, customer: str, now: datetime) -> Verification:
    """The customer's row, locked for this transaction; created (state requested) if new."""
    address = customer.lower()
    query = select(Verification).where(Verification.customer == address).with_for_update()
    found = session.scalar(query)
    if found is not None:
        return found
    row = Verification(customer=address, state=VERIFY_REQUESTED, updated_at=now)
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        # Another transaction created it first (PostgreSQL made us wait for its commit); the
        # savepoint's rollback already took our row out of the session.
        found = session.scalar(query)
        assert found is not None
        return found
    return row


def request_documents(ctx: Context, ticket: Ticket, actor: str) -> str:
    """Ask the ticket's customer for their documents; returns what became of the mail."""
    now = ctx.clock.now()
    kyc = ctx.config.kyc
    row = locked_verification(ctx.session, ticket.customer, now)
    row.state = VERIFY_REQUESTED
    row.reason = None
    row.ticket_id = ticket.id
    row.requested_at = now
    row.requested_by = actor
    row.expires_at = now + timedelta(days=kyc.request_expiry_days)
    row.expired_at = None
    row.expired_from = None
    row.updated_at = now
    mail = AutomaticMail(
        "kyc_request", "kyc_request", ticket.customer, None, request_context(kyc), actor=actor
    )
    return queue_automatic(ctx, ticket, mail)


def request_context(kyc: KycConfig) -> dict[str, object]:
    return {
        "types": ", ".join(TYPE_NAMES[t] for t in kyc.accepted),
        "max_size": readable_size(kyc.max_file_size),
        "expiry_days": kyc.request_expiry_days,
    }


def readable_size(size: int) -> str:
    """The limit as the customer reads it: never rounded up past what is allowed."""
    mib = 1024 * 1024
    if size >= mib:
        return f"{size // mib} MB" if size % mib == 0 else f"{size / mib:.1f} MB"
    return f"{size} B"


def documents_received(ctx: Context, ticket: Ticket) -> None:
    """Documents proven to come from the ticket's customer were stored: they wait for a
    decision. An approval stands: mail never lowers it (the documents wait on the ticket)."""
    now = ctx.clock.now()
    row = locked_verification(ctx.session, ticket.customer, now)
    if row.state == VERIFY_APPROVED:
        return
    row.state = VERIFY_RECEIVED
    row.reason = None
    row.ticket_id = ticket.id
    row.received_at = now
    # Nobody deciding within the abandonment time: the documents are purged, the state expires.
    row.expires_at = now + timedelta(days=ctx.config.kyc.abandoned_retention_days)
    row.expired_at = None
    row.expired_from = None
    row.updated_at = now


def has_verification(ctx: Context, customer: str) -> bool:
    """Whether the customer has a verification at all (requested, received, decided or
    expired): the state that unproven mail must never change."""
    row = ctx.session.scalar(
        select(Verification.customer).where(Verification.customer == customer.lower())
    )
    return row is not None


def binds_verification(ctx: Context, ticket: Ticket) -> bool:
    """Whether a decision on this ticket's documents decides its customer's verification: only
    when proven documents of this ticket are what the verification waits for."""
    row = ctx.session.scalar(
        select(Verification)
        .where(Verification.customer == ticket.customer.lower())
        .with_for_update()
    )
    return row is not None and row.ticket_id == ticket.id and row.state == VERIFY_RECEIVED


def decided(ctx: Context, ticket: Ticket, agent: str, approved: bool, reason: str) -> None:
    now = ctx.clock.now()
    row = locked_verification(ctx.session, ticket.customer, now)
    row.state = VERIFY_APPROVED if approved else VERIFY_REJECTED
    row.reason = None if approved else reason
    row.ticket_id = ticket.id
    row.decided_at = now
    row.decided_by = agent
    valid = ctx.config.kyc.approval_valid_days
    row.expires_at = now + timedelta(days=valid) if approved and valid else None
    row.expired_at = None
    row.expired_from = None
    row.updated_at = now
