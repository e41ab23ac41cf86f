"""`ticketd webhooks list [--state S] [--limit N] [--json]`: the deliveries of `[[webhooks]]`
events, newest first, and where each stands (queued, delivered, failed)."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from storage.db import Database
from storage.models import WEBHOOK_DELIVERED, WEBHOOK_FAILED, WEBHOOK_QUEUED, Ticket
from storage.models import WebhookDelivery as Delivery
from ticketd.views import print_table

EX_OK = 0
Handler = Callable[[argparse.Namespace], int]
StateBody = Callable[[Any, argparse.Namespace], int]
# As `ticketd ... --json` everywhere: the C1 controls escaped, so a terminal shows them.
_C1 = re.compile("[\x7f-\x9f]")
COLUMNS = ["id", "event", "ticket", "url", "state", "attempts", "next_attempt_at", "last_error"]


def _iso(value: Any) -> str | None:
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


def _list(state: Any, args: argparse.Namespace) -> int:
    rows = list_deliveries(state.db, args.state, args.limit)
    if args.json:
        text = json.dumps(rows, ensure_ascii=False, indent=2)
        sys.stdout.write(_C1.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n")
    else:
        print_table(COLUMNS, rows)
    return EX_OK


def add_webhook_commands(commands: Any, reading: Callable[[StateBody], Handler]) -> None:
    hooks = commands.add_parser("webhooks", help="webhook deliveries and their state")
    w_commands = hooks.add_subparsers(dest="w_command", required=True, metavar="COMMAND")
    w_list = w_commands.add_parser("list", help="deliveries, newest first")
    w_list.add_argument(
        "--state", choices=(WEBHOOK_QUEUED, WEBHOOK_DELIVERED, WEBHOOK_FAILED), default=None
    )
    w_list.add_argument("--limit", type=int, default=200, help="at most this many (200)")
    w_list.add_argument("--json", action="store_true")
    w_list.set_defaults(handler=reading(_list))
