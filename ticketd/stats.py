"""`ticketd stats`: tickets per status and per category (per queue once queues exist)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from storage.db import Database
from storage.models import Ticket


def ticket_stats(db: Database) -> dict[str, Any]:
    with db.read() as session:
        rows = session.execute(
            select(Ticket.status, Ticket.category, func.count(Ticket.id)).group_by(
                Ticket.status, Ticket.category
            )
        ).all()
    by_status: dict[str, int] = {}
    by_category: dict[str, int] = {}
    for status, category, count in rows:
        by_status[status] = by_status.get(status, 0) + int(count)
        by_category[category] = by_category.get(category, 0) + int(count)
    return {
        "tickets": sum(by_status.values()),
        "by_status": dict(sorted(by_status.items())),
        "by_category": dict(sorted(by_category.items())),
    }


def print_stats(stats: dict[str, Any]) -> None:
    console = Console()
    console.print(f"tickets: {stats['tickets']}", highlight=False)
    for title in ("status", "category"):
        table = Table(title, "tickets")
        for name, count in stats[f"by_{title}"].items():
            table.add_row(name, str(count))
        console.print(table)
