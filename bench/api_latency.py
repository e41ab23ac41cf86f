"""API latency at 100,000 tickets: list, show and search through HTTP, beside the same query
run directly on the database.

Run from the repository root:

    .venv/bin/python bench/api_latency.py [--tickets 100000] [--requests 200] [--database URL]

A fresh SQLite database (or the empty PostgreSQL database given) gets N tickets of one queue,
each with one customer message, in bulk (the search index fills by its triggers on SQLite; on
PostgreSQL the GIN index follows the rows). One word in a hundred tickets' text is `şikayet`.
Then `ticketd run` starts with `[http]`, and for each of list (`GET /api/v1/tickets?limit=50`,
newest first), show (`GET /api/v1/tickets/REF` of a random ticket) and search (`?q=sikayet`)
it times `--requests` requests over one keep-alive connection with an agent's token, and the
query those requests run, straight through SQLAlchemy (the page and its message counts;
`tickets show --json`'s view; the full-text match). The API's figure includes what the direct
one leaves out: the token check, the audit rows (one per ticket shown), JSON and HTTP.
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests
from sqlalchemy import func, insert, select

from domain.turkish import fold
from storage.db import Database
from storage.migrate import upgrade
from storage.models import Participant, Ticket, TicketMessage
from storage.search import matching_tickets, terms
from tests.helpers import free_port, write_config
from tests.web import PAYMENT_AGENT, TEAM, wait_for_port
from ticketd.views import show_ticket

START = datetime(2026, 1, 1, tzinfo=UTC)
CHUNK = 5000
WORDS = [
    "para",
    "çekme",
    "yatırım",
    "bonus",
    "hesap",
    "kilitlendi",
    "withdrawal",
    "deposit",
    "account",
    "bekliyor",
]


def populate(db: Database, count: int, rng: random.Random) -> list[str]:
    refs = []
    for first in range(0, count, CHUNK):
        tickets, messages, participants = [], [], []
        for number in range(first, min(first + CHUNK, count)):
            at = START + timedelta(seconds=number * 30)
            ref = f"B{number:09d}"
            refs.append(ref)
            customer = f"c{number}@musteri.example"
            words = rng.choices(WORDS, k=12) + (["şikayet"] if number % 100 == 0 else [])
            tickets.append(
                dict(
                    id=number + 1,
                    ref=ref,
                    status="open",
                    category="payment",
                    queue="odeme",
                    priority="normal",
                    customer=customer,
                    language="tr",
                    subject=f"Talep {number}",
                    created_at=at,
                    updated_at=at,
                    sla_paused_seconds=0,
                )
            )
            messages.append(
                dict(
                    ticket_id=number + 1,
                    direction="in",
                    kind="customer",
                    dedupe_key=f"bench-{number}",
                    from_addr=customer,
                    to_addrs=[],
                    cc_addrs=[],
                    subject=f"Talep {number}",
                    text=" ".join(words),
                    attachments=[],
                    created_at=at,
                )
            )
            participants.append(dict(ticket_id=number + 1, email=customer, role="customer"))
        with db.transaction() as session:
            session.execute(insert(Ticket), tickets)
            session.execute(insert(TicketMessage), messages)
            session.execute(insert(Participant), participants)
    return refs


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered) * 1000, p99 * 1000


def timed(call: Callable[[], object], count: int) -> list[float]:
    samples = []
    for _ in range(count):
        began = time.perf_counter()
        call()
        samples.append(time.perf_counter() - began)
    return samples


def direct_list(db: Database) -> None:
    with db.read() as session:
        ids = list(
            session.scalars(
                select(Ticket.id)
                .where(Ticket.queue == "odeme")
                .order_by(Ticket.id.desc())
                .limit(51)
            )
        )
        session.execute(
            select(TicketMessage.ticket_id, func.count(TicketMessage.id))
            .where(TicketMessage.ticket_id.in_(ids))
            .group_by(TicketMessage.ticket_id)
        ).all()


def direct_search(db: Database) -> None:
    query = matching_tickets(db.engine.dialect.name, terms(fold("sikayet")))
    with db.read() as session:
        list(
            session.scalars(
                select(Ticket.id).where(Ticket.id.in_(query)).order_by(Ticket.id.desc()).limit(51)
            )
        )


def start_daemon(folder: Path, database: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    extra = f'[http]\nlisten = "127.0.0.1:{port}"\n' + TEAM
    config = write_config(folder, database, extra=extra)
    log = (folder / "daemon.log").open("wb")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "ticketd.cli", "--config", str(config), "run"],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=folder,
    )
    wait_for_port(port, 120)
    return daemon, port


def token(folder: Path) -> str:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ticketd.cli",
            "--config",
            str(folder / "ticketd.toml"),
            "tokens",
            "create",
            "--agent",
            PAYMENT_AGENT,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def measure(folder: Path, database: str, refs: list[str], count: int, rng: random.Random) -> None:
    daemon, port = start_daemon(folder, database)
    db = Database(database)
    try:
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {token(folder)}"
        base = f"http://127.0.0.1:{port}/api/v1/tickets"
        cases: dict[str, tuple[Callable[[], object], Callable[[], object]]] = {
            "list": (
                lambda: http.get(base, params={"limit": 50}).raise_for_status(),
                lambda: direct_list(db),
            ),
            "show": (
                lambda: http.get(f"{base}/{rng.choice(refs)}").raise_for_status(),
                lambda: show_ticket(db, rng.choice(refs)),
            ),
            "search": (
                lambda: http.get(base, params={"q": "sikayet", "limit": 50}).raise_for_status(),
                lambda: direct_search(db),
            ),
        }
        print(
            f"{'':8}{'API p50':>10}{'API p99':>10}{'DB p50':>10}{'DB p99':>10}   (ms, {count} each)"
        )
        for name, (api, direct) in cases.items():
            api()  # warm: the first request opens connections
            direct()
            a50, a99 = percentiles(timed(api, count))
            d50, d99 = percentiles(timed(direct, count))
            print(f"{name:8}{a50:10.1f}{a99:10.1f}{d50:10.1f}{d99:10.1f}")
    finally:
        db.dispose()
        daemon.terminate()
        code = daemon.wait(60)
        if code != 0:
            print(f"daemon exited {code}: see {folder / 'daemon.log'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--database", help="an empty PostgreSQL database (default: SQLite)")
    args = parser.parse_args()
    rng = random.Random(20)
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        database = args.database or f"sqlite:///{folder}/var/ticketd.sqlite3"
        db = Database(database)
        upgrade(db)
        began = time.perf_counter()
        refs = populate(db, args.tickets, rng)
        db.dispose()
        print(
            f"{args.tickets} tickets written in {time.perf_counter() - began:.1f} s "
            f"({'PostgreSQL' if args.database else 'SQLite'})"
        )
        measure(folder, database, refs, args.requests, rng)
    return 0


if __name__ == "__main__":
    sys.exit(main())
