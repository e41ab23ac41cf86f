"""IMAP intake: a first sync of a large mailbox from a real Dovecot, and the IDLE delay.

Run from the repository root (Dovecot installed, see scripts/test):

    .venv/bin/python bench/imap_sync.py [--messages 10000] [--batch 100] [--idle 20]

Prints, in one run on one message set: bare parsing of the messages (the baseline), the first
sync (FETCH BODY.PEEK[] in batches, Journal.accept each, mark \\Seen, checkpoint) in messages
per second with its peak memory, and the delay from a delivery (`doveadm save`) to the journal
row and to the committed ticket while the account waits in IDLE. See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from domain.config import ImapAccountConfig
from ingest.imap_accounts import AccountRunner
from ingest.imap_checkpoints import Checkpoints
from ingest.imap_fetch import FolderSync
from ingest.imap_session import connect, mailbox_key
from ingest.parsing import parse_message
from tests.dovecot import Dovecot, start_dovecot
from tests.helpers import customer_mail, make_config
from ticketd.state import State, open_state

WORDS = [
    "para",
    "çekme",
    "talebim",
    "hesabım",
    "bonus",
    "yatırım",
    "destek",
    "lütfen",
    "acil",
    "bekliyorum",
    "kimlik",
]


def messages(count: int) -> list[bytes]:
    out = []
    for index in range(count):
        body = " ".join(WORDS[(index + k) % len(WORDS)] for k in range(20 + index % 200))
        out.append(
            customer_mail(
                sender=f"Müşteri {index} <musteri{index % 2500}@example.net>",
                subject=f"Talep {index}: {WORDS[index % len(WORDS)]}",
                body=body,
            )
        )
    return out


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--idle", type=int, default=20, help="deliveries timed with IDLE")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ticketd-bench-imap-"))
    dovecot = start_dovecot()
    try:
        raw = messages(args.messages)
        total_bytes = sum(len(m) for m in raw)
        dovecot.drop_in("destek", raw)
        (work / "pass").write_text("s3cret\n")
        account = ImapAccountConfig(
            name="bench",
            host="127.0.0.1",
            port=dovecot.imaps_port,
            security="tls",
            username="destek",
            ca_file=dovecot.ca_file,
            password_file=work / "pass",
            batch_size=args.batch,
            quiet_first_sync=True,
        )
        state = open_state(make_config(work))
        print(f"messages: {args.messages}, {total_bytes / 1e6:.1f} MB, batch {args.batch}")
        print(f"state folder: {work} (SQLite, blobs fsynced); load {os.getloadavg()[0]:.2f}")

        # The sync first: ru_maxrss only grows, so the cheaper stage is measured after it.
        before = peak_mb()
        started = time.perf_counter()
        client = connect(account, None)
        sync = FolderSync(
            client,
            account,
            mailbox_key(account),
            state.journal,
            Checkpoints(state.db, state.clock),
            state.clock,
            lambda: None,
            threading.Event(),
        )
        result = sync.run()
        client.logout()
        sync_seconds = time.perf_counter() - started
        sync_peak = peak_mb()
        assert result.journaled == args.messages, result

        started = time.perf_counter()
        for message in raw:
            parse_message(message)
        parse_seconds = time.perf_counter() - started

        # The tickets of the first sync (not acknowledged: quiet_first_sync), so that the IDLE
        # figures below time one message each, not the backlog.
        started = time.perf_counter()
        processed = len(state.worker.drain())
        drain_seconds = time.perf_counter() - started
        assert processed == args.messages, processed

        rows = [
            ("parse: ingest.parsing.parse_message", parse_seconds, None),
            ("first sync: FETCH+journal+\\Seen+checkpoint", sync_seconds, sync_peak),
            ("pipeline: Worker.drain of the synced mail", drain_seconds, peak_mb()),
        ]
        print(f"\n{'stage':46} {'msg/s':>9} {'÷ parse':>8} {'ms/msg':>7} {'peak RSS':>9}")
        for name, seconds, peak in rows:
            rate = args.messages / seconds
            ratio = rate / (args.messages / parse_seconds)
            mem = f"{peak:.0f} MB" if peak else ""
            print(
                f"{name:46} {rate:9.0f} {ratio:8.2f} {1000 * seconds / args.messages:7.2f} {mem:>9}"
            )
        print(f"peak RSS before the sync {before:.0f} MB (the message set itself)")

        delays, ticket_delays = idle_delays(
            dovecot, state, replace(account, name="idle"), args.idle
        )
        if delays:
            print(
                f"\nIDLE, delivery (doveadm save) to journal row: n={len(delays)} "
                f"p50 {1000 * statistics.median(delays):.0f} ms, max {1000 * max(delays):.0f} ms"
            )
            p50 = 1000 * statistics.median(ticket_delays)
            print(
                f"IDLE, delivery to committed ticket: p50 {p50:.0f} ms,"
                f" max {1000 * max(ticket_delays):.0f} ms"
            )
        state.close()
    finally:
        dovecot.stop()
        shutil.rmtree(dovecot.folder, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    return 0


def idle_delays(
    dovecot: Dovecot, state: State, account: ImapAccountConfig, count: int
) -> tuple[list[float], list[float]]:
    """Deliver one message at a time while the account waits in IDLE."""
    woken = threading.Event()
    runner = AccountRunner(account, state.db, state.journal, state.clock, on_journaled=woken.set)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    time.sleep(1.0)  # connected, synced (nothing new), in IDLE
    worker = state.worker
    delays: list[float] = []
    ticket_delays: list[float] = []
    for index in range(count):
        woken.clear()
        started = time.perf_counter()
        dovecot.deliver("destek", customer_mail(subject=f"idle {index}"))
        if not woken.wait(30):
            print("IDLE: no pickup within 30 s", file=sys.stderr)
            break
        delays.append(time.perf_counter() - started)
        while worker.process_next() is not None:
            pass
        ticket_delays.append(time.perf_counter() - started)
        time.sleep(0.2)
    runner.stop.set()
    thread.join(5)
    return delays, ticket_delays


if __name__ == "__main__":
    sys.exit(main())
