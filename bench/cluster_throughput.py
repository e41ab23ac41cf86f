"""Throughput with one, two and three daemons on PostgreSQL, beside one daemon on SQLite.

Run: .venv/bin/python bench/cluster_throughput.py [--messages N] [--clients K]

Each run starts the daemons as processes (`ticketd run`) on a fresh database, sends the same N
customer messages over SMTP from K client threads spread over the daemons' listeners, and
measures from the first send until every message is a committed ticket message. PostgreSQL is a
real server started here (initdb under /tmp, as in the test suite). Loopback only.
"""

from __future__ import annotations

import argparse
import itertools
import os
import pwd
import shutil
import smtplib
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from storage.db import Database
from storage.models import TicketMessage
from tests.daemon import DaemonProcess
from tests.helpers import DESK, customer_mail, free_port, write_config
from tests.pg import SUPERUSER, PostgresServer, find_bindir


def start_postgresql() -> tuple[PostgresServer, Path]:
    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL server binaries not found: apt-get install postgresql")
    folder = Path(tempfile.mkdtemp(prefix="ticketd-bench-pg-", dir="/tmp"))
    run_as = None
    if os.geteuid() == 0:
        account = pwd.getpwnam(SUPERUSER)
        os.chown(folder, account.pw_uid, account.pw_gid)
        run_as = SUPERUSER
    server = PostgresServer(bindir, folder, free_port(), run_as)
    server.initdb()
    server.start()
    return server, folder


def new_database(server: PostgresServer, name: str) -> str:
    with psycopg.connect(server.conninfo(), autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return server.url(name)


def send_all(ports: Sequence[int], messages: int, clients: int) -> None:
    numbers = iter(range(messages))
    lock = threading.Lock()

    def client() -> None:
        while True:
            with lock:
                number = next(numbers, None)
            if number is None:
                return
            raw = customer_mail(
                sender=f"c{number}@example.net",
                subject=f"Talep {number}",
                body=f"Para çekme talebim {number} beklemede",
                message_id=f"<bench-{number}@example.net>",
            )
            with smtplib.SMTP("127.0.0.1", ports[number % len(ports)], timeout=30) as smtp:
                smtp.sendmail(f"c{number}@example.net", [DESK], raw)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def run(label: str, url: str, daemons: int, messages: int, clients: int, root: Path) -> float:
    blobs = root / f"{label}-blobs"
    processes: list[DaemonProcess] = []
    for index in range(daemons):
        folder = root / f"{label}-{index}"
        folder.mkdir()
        shared_key = f'[kyc]\nkey_file = "{root / f"{label}-kyc.key"}"\n'
        config = write_config(folder, database=url, extra=shared_key)
        config.write_text(config.read_text().replace('blobs = "var/blobs"', f'blobs = "{blobs}"'))
        processes.append(DaemonProcess(config))
    db_url = (
        url
        if not url.startswith("sqlite:///var")
        else (f"sqlite:///{root / f'{label}-0' / 'var' / 'ticketd.sqlite3'}")
    )
    try:
        for process in processes:
            process.start(timeout=60)
        db = Database(db_url)
        started = time.monotonic()
        send_all([p.port for p in processes], messages, clients)
        while True:
            with db.read() as session:
                done = session.scalar(
                    select(func.count(TicketMessage.id)).where(TicketMessage.direction == "in")
                )
            if int(done or 0) >= messages:
                break
            time.sleep(0.05)
        seconds = time.monotonic() - started
        db.dispose()
        return seconds
    finally:
        for process in processes:
            if process.process is not None:
                process.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--clients", type=int, default=6)
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="ticketd-bench-cluster-"))
    server, pg_folder = start_postgresql()
    names = itertools.count(1)
    results: list[tuple[str, int, float]] = []
    try:
        results.append(
            (
                "SQLite",
                1,
                run(
                    "sqlite", "sqlite:///var/ticketd.sqlite3", 1, args.messages, args.clients, root
                ),
            )
        )
        for daemons in (1, 2, 3):
            url = new_database(server, f"bench_{next(names)}")
            results.append(
                (
                    "PostgreSQL",
                    daemons,
                    run(f"pg{daemons}", url, daemons, args.messages, args.clients, root),
                )
            )
    finally:
        server.stop()
        shutil.rmtree(pg_folder, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
    baseline = args.messages / results[0][2]
    print(
        f"{args.messages} messages over SMTP from {args.clients} clients, "
        f"{os.cpu_count()} cores; from the first send to the last committed ticket message"
    )
    print(f"{'database':<12}{'daemons':>8}{'seconds':>10}{'msg/s':>9}{'vs SQLite':>11}")
    for database, daemons, seconds in results:
        rate = args.messages / seconds
        print(f"{database:<12}{daemons:>8}{seconds:>10.1f}{rate:>9.1f}{rate / baseline:>11.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
