"""One SLA tick over many open tickets: does its time follow what is due, not the ticket count?

Run from the repository root:

    .venv/bin/python bench/sla_tick.py [--tickets 10000 100000] [--database URL]

For each size: a fresh SQLite database (or the PostgreSQL URL given, which must be empty) gets N
open tickets opened evenly over the last 36 hours, with their deadlines and due rows written the
way the pipeline writes them (outbound/sla_deadlines.py), in bulk. Then it times an idle tick
(nothing due), and ticks one minute apart (each sends the reminders that became due in that
minute, about N / 2160 with the default 48-hour first answer at 75 %). See bench/README.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, insert, select

from domain.clock import FixedClock
from outbound.sla import tick
from outbound.sla_deadlines import _recompute, event_rows, wanted_events
from storage.models import SlaEvent, Ticket
from tests.helpers import make_config
from tests.test_sla import TEAM
from ticketd.state import State, open_state

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
CHUNK = 5000


def populate(state: State, count: int) -> None:
    sla = state.config.sla
    step = timedelta(hours=36) / count
    for first in range(0, count, CHUNK):
        tickets, events = [], []
        for number in range(first, min(first + CHUNK, count)):
            created = NOW - timedelta(hours=36) + step * number
            ticket = Ticket(
                id=number + 1,
                ref=f"B{number:09d}",
                status="open",
                category="payment",
                queue="odeme",
                priority="normal",
                customer=f"c{number}@example.net",
                language="tr",
                subject="Para çekme",
                created_at=created,
                updated_at=created,
                sla_paused_seconds=0,
            )
            _recompute(ticket, sla)
            tickets.append(
                {c.key: getattr(ticket, c.key) for c in Ticket.__table__.columns if c.key != "id"}
                | {"id": ticket.id}
            )
            events.extend(event_rows(ticket.id, wanted_events(ticket, sla)))
        with state.db.transaction() as session:
            session.execute(insert(Ticket), tickets)
            session.execute(insert(SlaEvent), events)


def run(count: int, database: str | None, minutes: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        clock = FixedClock(NOW)
        state = open_state(make_config(Path(folder), database=database, extra=TEAM), clock=clock)
        try:
            started = time.perf_counter()
            populate(state, count)
            with state.db.read() as session:
                rows = session.scalar(select(func.count()).select_from(SlaEvent))
            print(
                f"{count} tickets, {rows} due rows written in {time.perf_counter() - started:.1f} s"
            )
            started = time.perf_counter()
            idle = tick(state.db, state.config, clock, state.templates)
            print(f"  idle tick: {len(idle)} due, {1000 * (time.perf_counter() - started):.1f} ms")
            for _minute in range(minutes):
                clock.advance(timedelta(minutes=1))
                started = time.perf_counter()
                actions = tick(state.db, state.config, clock, state.templates)
                elapsed = time.perf_counter() - started
                print(f"  tick a minute later: {len(actions)} reminders, {1000 * elapsed:.1f} ms")
        finally:
            state.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--database", help="an empty postgresql+psycopg:// database")
    parser.add_argument("--minutes", type=int, default=3)
    args = parser.parse_args()
    for count in args.tickets:
        run(count, args.database, args.minutes)


if __name__ == "__main__":
    main()
