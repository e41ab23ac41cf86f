"""`ticketd webhooks list [--state S] [--limit N] [--json]`: the deliveries of `[[webhooks]]`
events, newest first, and where each stands (queued, delivered, failed)."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

from sqlalchemy import select

from storage.db import Database
from storage.models import WEBHOOK_QUEUED, Ticket
from storage.models import WebhookDelivery as Delivery
from ticketd.commands import EX_OK, print_json
from ticketd.state import ReadState
from ticketd.views import print_table

COLUMNS = ["id", "event", "ticket", "url", "state", "attempts", "next_attempt_at", "last_error"]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def list_deliveries(db: Database, state: str | None, limit: int) -> list[dict[str, Any]]:
    query = (
        select(Delivery, Ticket.ref)
        .outerjoin(Ticket, Ticket.id == Delivery.ticket_id)
        .order_by(Delivery.id.desc())
        .limit(limit)
    )
    if state is not None:
        query = query.where(Delivery.state == state)
    with db.read() as session:
        return [
            {
                "id": row.id,
                "webhook_id": row.webhook_id,
                "event": row.event,
                "ticket": ref,
                "url": row.url,
                "state": row.state,
                "attempts": row.attempts,
                # When the next try is due; for a delivered or failed one, when the last was.
                "next_attempt_at": _iso(row.next_attempt_at)
                if row.state == WEBHOOK_QUEUED
                else None,
                "last_error": row.last_error,
                "created_at": _iso(row.created_at),
                "delivered_at": _iso(row.delivered_at),
            }
            for row, ref in session.execute(query)
        ]


def list_webhooks(state: ReadState, args: argparse.Namespace) -> int:
    rows = list_deliveries(state.db, args.state, args.limit)
    if args.json:
        print_json(rows)
    else:
        print_table(COLUMNS, rows)
    return EX_OK
