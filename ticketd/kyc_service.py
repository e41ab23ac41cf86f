"""The identity-document housekeeping (issue 6): purge and expiry, run by the daemon's scheduler.

One job, every `[kyc] housekeeping_hours` (24 by default) and once at start to catch up after
downtime, does two things:

- the purge `ticketd kyc purge` does (ticketd/documents_admin.py): content whose retention
  ended, abandoned documents (received, never decided) sooner; each purge in the access audit;
- the expiry of verification states whose `expires_at` passed: an unanswered request, documents
  nobody decided on, an approval past its validity. The customer is told and the ticket noted,
  in the transaction that sets the state, so it happens once.

What is due lives in the database, never in APScheduler's job store. Rows are claimed with
`FOR UPDATE SKIP LOCKED` on PostgreSQL (SQLite's `BEGIN IMMEDIATE` serialises writers), so
several daemons on one database, or a run repeated after a restart, never purge, expire or mail
anything twice.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import select

from domain.clock import Clock, FixedClock
from domain.config import Config
from domain.context import Context
from domain.history import add_note
from domain.templating import Templates
from ingest.verification import request_context
from outbound.automatic import AutomaticMail, queue_automatic
from storage.blobs import BlobStore
from storage.db import Database
from storage.models import (
    VERIFY_APPROVED,
    VERIFY_EXPIRED,
    VERIFY_RECEIVED,
    VERIFY_REQUESTED,
    Ticket,
    Verification,
)
from ticketd.documents_admin import Purged, purge
from ticketd.scheduling import add_periodic, run_until_stopped
from ticketd.state import State

log = logging.getLogger("ticketd.kyc")
BATCH = 200
JOB_ID = "kyc-housekeeping"
SCHEDULED_ACTOR = "ticketd (scheduled)"
# What each state's expiry means, for the ticket's note.
_EXPIRY_NOTES = {
    VERIFY_REQUESTED: "no documents arrived within kyc.request_expiry_days",
    VERIFY_RECEIVED: "nobody decided on the documents within kyc.abandoned_retention_days",
    VERIFY_APPROVED: "the approval's validity (kyc.approval_valid_days) ended",
}


@dataclass(frozen=True)
class Expired:
    customer: str
    ticket: str | None
    expired_from: str
    mail: str  # "sent", or why not


@dataclass(frozen=True)
class HousekeepingRun:
    purged: list[Purged]
    expired: list[Expired]


def expire_due(db: Database, config: Config, clock: Clock, templates: Templates) -> list[Expired]:
    """Expire every verification whose state ran out, in batches; each customer told once."""
    done: list[Expired] = []
    while True:
        with db.transaction() as session:
            ctx = Context(session, config, clock, templates)
            batch = _expire_batch(ctx)
        done += batch
        if len(batch) < BATCH:
            return done


def _expire_batch(ctx: Context) -> list[Expired]:
    now = ctx.clock.now()
    due = (
        select(Verification)
        .where(
            Verification.state.in_(list(_EXPIRY_NOTES)),
            Verification.expires_at.is_not(None),
            Verification.expires_at <= now,
        )
        .order_by(Verification.expires_at, Verification.id)
        .limit(BATCH)
        .with_for_update(skip_locked=True)
    )
    return [_expire(ctx, row, now) for row in ctx.session.scalars(due).all()]


def _expire(ctx: Context, row: Verification, now: datetime) -> Expired:
    before = row.state
    row.state = VERIFY_EXPIRED
    row.expired_from = before
    row.expired_at = now
    row.updated_at = now
    ticket = ctx.session.get(Ticket, row.ticket_id) if row.ticket_id is not None else None
    if ticket is None:
        return Expired(row.customer, None, before, "not sent: no ticket to write on")
    add_note(
        ctx,
        ticket,
        "Identity verification expired",
        f"The verification of {row.customer} expired ({before}): {_EXPIRY_NOTES[before]}.",
        f"note:kyc-expired:{row.id}:{now.isoformat()}",
    )
    context = {**request_context(ctx.config.kyc), "cause": before}
    mail = AutomaticMail("kyc_expired", "kyc_expired", ticket.customer, None, context)
    return Expired(row.customer, ticket.ref, before, queue_automatic(ctx, ticket, mail))


def housekeeping(
    db: Database, config: Config, clock: Clock, templates: Templates, blobs: BlobStore
) -> HousekeepingRun:
    """The scheduled job's work: the purge, then the expiry of states that ran out.

    Both at one moment: a customer told that their undecided documents were deleted had them
    deleted by this very run."""
    now = FixedClock(clock.now())
    purged = purge(db, config, blobs, now.now(), actor=SCHEDULED_ACTOR)
    return HousekeepingRun(purged, expire_due(db, config, now, templates))


class _Daemon(Protocol):
    state: State
    stopping: asyncio.Event
    mail_ready: asyncio.Event


async def run_housekeeping(daemon: _Daemon) -> None:
    """The job itself: a failure is logged and what is due stays due for the next run."""
    state = daemon.state  # read each time: a SIGHUP may have replaced config and templates
    try:
        run = await asyncio.to_thread(
            housekeeping, state.db, state.config, state.clock, state.templates, state.blobs
        )
    except Exception:
        log.exception("KYC housekeeping failed; what is due stays due for the next run")
        return
    if run.purged or run.expired:
        log.info(
            "KYC housekeeping: %d document(s) purged, %d verification(s) expired",
            len(run.purged),
            len(run.expired),
        )
    if any(e.mail.startswith("sent") for e in run.expired):
        daemon.mail_ready.set()


def add_housekeeping_job(scheduler: Any, daemon: _Daemon) -> None:
    # A first run at start: catch up after downtime.
    every = timedelta(hours=daemon.state.config.kyc.housekeeping_hours)
    add_periodic(scheduler, run_housekeeping, every, timedelta(0), daemon, job_id=JOB_ID)


async def run_kyc_housekeeping(daemon: _Daemon) -> None:
    await run_until_stopped(daemon.stopping, lambda s: add_housekeeping_job(s, daemon))
