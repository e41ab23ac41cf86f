"""`ticketd sla recompute`: every open ticket's deadlines computed again from the current `[sla]`.

Deadlines are computed when something happens to a ticket, so a changed policy (other hours for
a category, a new holiday) only reaches a ticket at its next event, and tickets opened before the
SLA clock existed (migration 0005) have none at all. This brings every open ticket in line with
the configuration now: deadlines recomputed and the reminder and escalation rows reconciled,
reminders already sent staying sent (outbound/sla_deadlines.reconcile_events).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from domain.config_sla import SlaConfig
from outbound.sla_deadlines import STOPPED, refresh
from storage.db import Database
from storage.models import Ticket

_TARGETS = ("first_answer", "next_answer", "resolution")


@dataclass(frozen=True)
class Moved:
    ref: str
    target: str
    before: datetime | None
    after: datetime | None

    def as_dict(self) -> dict[str, str | None]:
        def text(moment: datetime | None) -> str | None:
            return moment.isoformat() if moment else None

        return {
            "ref": self.ref,
            "target": self.target,
            "before": text(self.before),
            "after": text(self.after),
        }


def recompute(db: Database, sla: SlaConfig, dry_run: bool = False) -> list[Moved]:
    """The deadlines that moved, per open ticket and target; with `dry_run`, nothing is saved."""
    moved: list[Moved] = []
    with db.transaction(rehearse=dry_run) as session:
        open_tickets = session.scalars(
            select(Ticket).where(Ticket.status.not_in(STOPPED)).order_by(Ticket.id)
        ).all()
        for ticket in open_tickets:
            before = {t: getattr(ticket, f"sla_{t}_due") for t in _TARGETS}
            refresh(session, ticket, sla)
            for target in _TARGETS:
                after = getattr(ticket, f"sla_{target}_due")
                if after != before[target]:
                    moved.append(Moved(ticket.ref, target, before[target], after))
    return moved
