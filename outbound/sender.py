"""The sender: claims due outbox rows, delivers them, records what happened.

A row is claimed by pushing its next attempt one lease into the future and committing before
the delivery starts, so a second sender (or this one after a crash) leaves it alone while it is
in flight, and takes it up again if the lease runs out. A temporary failure retries with backoff;
a permanent one marks the row failed and leaves a system message on the ticket for the agents.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from domain.clock import Clock
from domain.history import system_note
from outbound.retry import RetryPolicy
from outbound.transports import (
    CredentialsFailure,
    OutgoingMail,
    PermanentFailure,
    TemporaryFailure,
    Transport,
)
from storage.db import Database
from storage.models import OUTBOX_FAILED, OUTBOX_QUEUED, OUTBOX_SENT, OutboxMail, TicketMessage

log = logging.getLogger("ticketd.sender")


@dataclass(frozen=True)
class DeliveryResult:
    outbox_id: int
    state: str
    detail: str
    # From queued to delivered, for the latency metric; None unless it was delivered now.
    queued_seconds: float | None = None


class Sender:
    def __init__(
        self,
        db: Database,
        transport: Transport,
        clock: Clock,
        policy: RetryPolicy | None = None,
        owner: str | None = None,
    ) -> None:
        self.db = db
        self.transport = transport
        self.clock = clock
        self.policy = policy or RetryPolicy()
        self.host = socket.gethostname()
        self.owner = owner or f"{self.host}:{os.getpid()}"

    def release_orphans(self) -> int:
        """Take back deliveries that a dead sender process on this host had claimed."""
        released = 0
        now = self.clock.now()
        with self.db.transaction() as session:
            rows = session.scalars(
                select(OutboxMail).where(
                    OutboxMail.state == OUTBOX_QUEUED,
                    OutboxMail.claimed_by.startswith(f"{self.host}:"),
                    OutboxMail.next_attempt_at > now,
                )
            )
            for row in rows:
                owner = row.claimed_by or ""
                if owner != self.owner and not _process_alive(owner.rpartition(":")[2]):
                    row.next_attempt_at, row.claimed_by = now, None
                    released += 1
        if released:
            log.warning("took back %d deliveries a stopped sender had in hand", released)
        return released

    def _claim(self) -> OutgoingMail | None:
        now = self.clock.now()
        with self.db.transaction() as session:
            row = session.scalar(
                select(OutboxMail)
                .where(OutboxMail.state == OUTBOX_QUEUED, OutboxMail.next_attempt_at <= now)
                .order_by(OutboxMail.next_attempt_at, OutboxMail.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            if row is None:
                return None
            row.attempts += 1
            row.next_attempt_at = now + self.policy.lease
            row.claimed_by = self.owner
            return OutgoingMail(
                outbox_id=row.id,
                message_id=row.message_id,
                envelope_sender="" if row.automatic else row.sender,
                recipients=tuple(row.recipients),
                raw=row.raw,
            )

    def _record(self, mail: OutgoingMail, error: Exception | None, detail: str) -> DeliveryResult:
        now = self.clock.now()
        with self.db.transaction() as session:
            row = session.get(OutboxMail, mail.outbox_id)
            assert row is not None
            row.claimed_by = None
            if error is None:
                row.state, row.sent_at, row.last_error = OUTBOX_SENT, now, None
            elif isinstance(error, TemporaryFailure) and not self.policy.gives_up(
                row.created_at, now
            ):
                row.last_error = detail
                row.next_attempt_at = self.policy.next_attempt(row.attempts, now)
            else:
                row.state, row.last_error = OUTBOX_FAILED, detail
                if row.ticket_id is not None:
                    session.add(_failure_note(row, detail, now))
            queued = (now - row.created_at).total_seconds() if error is None else None
            return DeliveryResult(row.id, row.state, detail, queued)

    async def send_one(self) -> DeliveryResult | None:
        mail = await asyncio.to_thread(self._claim)
        if mail is None:
            return None
        error: Exception | None = None
        try:
            detail = await self.transport.deliver(mail)
        except (TemporaryFailure, PermanentFailure) as failure:
            error, detail = failure, str(failure)
        result = await asyncio.to_thread(self._record, mail, error, detail)
        level = logging.INFO if error is None else logging.WARNING
        if isinstance(error, CredentialsFailure):
            level = logging.DEBUG  # the transport logged the outage once, not once a mail
        log.log(
            level,
            "outbox=%s message_id=%s %s: %s",
            result.outbox_id,
            mail.message_id,
            result.state,
            detail,
        )
        return result

    async def send_due(self) -> list[DeliveryResult]:
        results: list[DeliveryResult] = []
        while (result := await self.send_one()) is not None:
            results.append(result)
        return results


def _process_alive(pid_text: str) -> bool:
    if not pid_text.isdigit():
        return True  # not ours to judge: leave it to the lease
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _failure_note(row: OutboxMail, detail: str, now: datetime) -> TicketMessage:
    assert row.ticket_id is not None
    text = f"The {row.kind} mail to {', '.join(row.recipients)} could not be delivered: {detail}"
    return system_note(
        row.ticket_id, f"Delivery failed: {row.subject}", text, f"outbox-failed:{row.id}", now
    )
