"""`ticketd import` beside the floors of any Python ingester, measured in the same run.

    .venv/bin/python bench/import_floor.py             # 2,000 synthetic desk mails, the corpus
    .venv/bin/python bench/import_floor.py --rounds 5  # floors and import in turn, 5 times
    .venv/bin/python bench/import_floor.py --scale 1000,10000,100000   # as the database grows
    .venv/bin/python bench/import_floor.py --profile   # cProfile of an in-process import

Floor A: the standard library parsing each message with policy.default and reading every part.
Floor C: floor A plus one SQLite row per message, committed one by one with synchronous=FULL.
`ticketd import` runs as a process on a fresh state folder, from start to exit (start-up, journal,
every message processed into its ticket), and must leave nothing pending. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import email
import email.policy
import io
import json
import os
import pstats
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from desk_mail import DESK, desk_mail

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
CORPUS = Path(os.environ.get("TICKETD_CORPUS", "/work/shared/corpus"))


def read_every_part(raw: bytes) -> None:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    for part in message.walk():
        if not part.is_multipart():
            with contextlib.suppress(Exception):  # the corpus has parts policy.default refuses
                part.get_content()


def floor_a(raws: Sequence[bytes], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for raw in raws:
            read_every_part(raw)
        best = min(best, time.perf_counter() - started)
    return len(raws) / best


def floor_c(raws: Sequence[bytes], folder: Path) -> float:
    path = folder / "floor-c.sqlite3"
    path.unlink(missing_ok=True)
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("CREATE TABLE m (id INTEGER PRIMARY KEY, size INTEGER, raw BLOB)")
    started = time.perf_counter()
    for raw in raws:
        read_every_part(raw)
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("INSERT INTO m (size, raw) VALUES (?, ?)", (len(raw), raw))
        connection.execute("COMMIT")
    seconds = time.perf_counter() - started
    connection.close()
    return len(raws) / seconds


def write_config(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "ticketd.toml"
    config.write_text(
        '[desk]\nname = "Destek"\naddress = "' + DESK + '"\nlanguage = "tr"\n\n'
        '[storage]\ndatabase = "sqlite:///var/ticketd.sqlite3"\nblobs = "var/blobs"\n\n'
        # The synthetic mail carries a DKIM pass of this receiving server, so the check for
        # a repeated request (proven senders only) runs for every new conversation.
        '[smtp_in]\nlisten = "127.0.0.1:2599"\ntrusted_authserv_ids = ["mx.example.com"]\n\n'
        '[smtp_out]\nmaildir = "var/outbox"\n',
        encoding="utf-8",
    )
    return config


def journal_states(folder: Path) -> dict[str, int]:
    connection = sqlite3.connect(f"file:{folder / 'var' / 'ticketd.sqlite3'}?mode=ro", uri=True)
    try:
        rows = connection.execute("SELECT state, count(*) FROM journal GROUP BY state")
        return {state: count for state, count in rows}
    finally:
        connection.close()


def run_import(config: Path, source: Path) -> tuple[float, int, str]:
    """Seconds, peak RSS (KiB, from /usr/bin/time: a tiny parent, so the figure is ticketd's)
    and the summary line of one `ticketd import`."""
    command = ["/usr/bin/time", "-f", "%M", str(VENV_BIN / "ticketd"), "--config", str(config)]
    started = time.perf_counter()
    done = subprocess.run([*command, "import", "--json", str(source)], capture_output=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"ticketd import failed ({done.returncode}): {done.stderr.decode()[-800:]}")
    peak = int(done.stderr.decode().strip().splitlines()[-1])
    return seconds, peak, json.dumps(json.loads(done.stdout))


def write_set(raws: Sequence[bytes], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index, raw in enumerate(raws):
        (folder / f"{index:06d}.eml").write_bytes(raw)
    return folder


def import_in_process(config: Path, source: Path) -> float:
    """Seconds of `import_path` alone: the state is opened (and its start-up paid) before."""
    from domain.config import load_config
    from ingest.importer import import_path
    from ticketd.state import open_state

    state = open_state(load_config(config))
    started = time.perf_counter()
    import_path(state, source, acknowledge=False, process=True, progress=False)
    seconds = time.perf_counter() - started
    state.close()
    return seconds


def profile_import(source: Path, folder: Path, top: int) -> None:
    from domain.config import load_config
    from ingest.importer import import_path
    from ticketd.state import open_state

    state = open_state(load_config(write_config(folder)))
    # CPU time, not wall time: on a loaded machine the wall clock mostly measures the others.
    # The fsync waits then show as nothing (the non-profiled run counts them).
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    summary = import_path(state, source, acknowledge=False, process=True, progress=False)
    profiler.disable()
    state.close()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    print(summary)
    print(out.getvalue())


# How a grown database is made from a small one: every row copied with its ids moved past the
# table's last id (and the references to them), and the unique texts given a suffix. Each
# round doubles the rows; the copies are ordinary rows the lookups must find their way past.
_CLONED: dict[str, tuple[dict[str, str], tuple[str, ...]]] = {
    "journal": ({"id": "journal"}, ("origin",)),
    "tickets": ({"id": "tickets", "merged_into_id": "tickets"}, ("ref",)),
    "participants": ({"id": "participants", "ticket_id": "tickets"}, ()),
    "messages": (
        {"id": "messages", "ticket_id": "tickets", "journal_id": "journal"},
        ("dedupe_key",),
    ),
    "outbox": ({"id": "outbox", "ticket_id": "tickets"}, ("message_id",)),
    "sla_events": ({"id": "sla_events", "ticket_id": "tickets"}, ()),
}


def _double(connection: sqlite3.Connection, round_: int) -> None:
    offsets = {
        table: connection.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]
        for table in _CLONED
    }
    for table, (moved, suffixed) in _CLONED.items():
        columns = [row[1] for row in connection.execute(f"PRAGMA table_info({table})")]
        values = [
            f"{c} + {offsets[moved[c]]}"
            if c in moved
            else f"{c} || '.{round_}'"
            if c in suffixed
            else c
            for c in columns
        ]
        connection.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(values)} FROM {table}"
        )


def grow(folder: Path, messages: int) -> int:
    """Double the rows of the desk's database until it holds at least `messages` messages."""
    path = folder / "var" / "ticketd.sqlite3"
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        count = connection.execute("SELECT count(*) FROM messages").fetchone()[0]
        round_ = 0
        while count < messages:
            round_ += 1
            connection.execute("BEGIN")
            _double(connection, round_)
            connection.execute("COMMIT")
            count = connection.execute("SELECT count(*) FROM messages").fetchone()[0]
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        connection.execute("ANALYZE")
        return int(count)
    finally:
        connection.close()


def scale(sizes: Sequence[int], batch: int, work: Path) -> None:
    """The import rate of the same `batch` new messages into databases already holding each of
    `sizes` messages (the same customers writing again, so every lookup has rows to find)."""
    base = work / "scale-base"
    # A few hundred imported, the rest doubled from them: the smallest size needs no import of
    # its own (one takes minutes on a loaded machine).
    base_raws = desk_mail(min(300, *sizes), seed=190)
    run_import(write_config(base), write_set(base_raws, work / "scale-base-set"))
    raws = desk_mail(batch, seed=191)
    source = write_set(raws, work / "scale-set")
    print(
        f"\nrate as the database grows: {batch} new messages imported (in this process, start-up"
        " left out) into a database holding"
    )
    for size in sizes:
        desk = work / f"scale-{size}"
        shutil.copytree(base, desk)
        held = grow(desk, size)
        seconds = import_in_process(desk / "ticketd.toml", source)
        states = journal_states(desk)
        print(f"  {held:8,} messages: {batch / seconds:7.1f} msg/s ({seconds:.1f} s), {states}")
        shutil.rmtree(desk)


def large_message(work: Path, megabytes: int) -> None:
    """Peak RSS of `ticketd import` of one message of `megabytes` MB (one big attachment),
    beside the import of one small message: the growth is what the large one costs."""
    from email.message import EmailMessage

    small, large = EmailMessage(), EmailMessage()
    for mail in (small, large):
        mail["From"], mail["To"], mail["Subject"] = "musteri@example.net", DESK, "Dekont"
        mail["Message-ID"] = f"<{id(mail)}@example.net>"
        mail.set_content("Ekte dekontu gönderiyorum.\n")
    # base64 makes 4 bytes of 3 in lines of 76 and CRLF: the attachment is sized so that the
    # whole message is `megabytes` MiB, under the default limit of 25 MiB.
    data = os.urandom(megabytes * 1024 * 1024 * 3 // 4 * 76 // 78 - 64 * 1024)
    large.add_attachment(data, maintype="application", subtype="pdf", filename="dekont.pdf")
    peaks = []
    for name, mail in (("small", small), ("large", large)):
        source = write_set([mail.as_bytes(policy=email.policy.SMTP)], work / f"one-{name}")
        _seconds, peak, _summary = run_import(write_config(work / f"desk-{name}"), source)
        peaks.append(peak)
    size = sum(p.stat().st_size for p in (work / "one-large").iterdir()) / 1024 / 1024
    print(f"journal after the large import: {journal_states(work / 'desk-large')}")
    growth = (peaks[1] - peaks[0]) / 1024
    print(
        f"\none message of {size:.1f} MB: ticketd import peak RSS {peaks[1] / 1024:.0f} MB, "
        f"{growth:.0f} MB above the import of a 1 KB message ({growth / size:.1f}x its size)"
    )


def compare(name: str, raws: Sequence[bytes], source: Path, work: Path, rounds: int) -> None:
    """Floor A, floor C and the import, `rounds` times in turn, each round's ratios taken
    from figures measured minutes apart at most: this machine's speed moves by half from one
    minute to the next, so only ratios within a round mean much. The medians are printed."""
    figures: list[tuple[float, float, float, int]] = []
    for round_ in range(rounds):
        rate_a = floor_a(raws)
        rate_c = floor_c(raws, work)
        desk = work / f"desk-{name}-{round_}"
        seconds, peak, _summary = run_import(write_config(desk), source)
        states = journal_states(desk)
        if states.get("pending"):
            sys.exit(f"messages left pending: {states}")
        shutil.rmtree(desk)
        figures.append((rate_a, rate_c, len(raws) / seconds, peak))
    median = sorted(figures, key=lambda f: f[2] / f[0])[len(figures) // 2]
    rate_a, rate_c, rate, peak = median
    print(f"\n{name}: {len(raws)} messages, {sum(map(len, raws)) / 1e6:.1f} MB")
    if rounds > 1:
        ratios = ", ".join(f"{f[2] / f[0]:.2f}" for f in figures)
        print(f"  import x floor A in each of {rounds} rounds: {ratios}; the median round:")
    print(f"  floor A  stdlib parse, every part       {rate_a:8.1f} msg/s  1.00")
    print(f"  floor C  parse + SQLite row, FULL sync  {rate_c:8.1f} msg/s  {rate_c / rate_a:.2f}")
    print(
        f"  ticketd import (process, start to exit) {rate:8.1f} msg/s  {rate / rate_a:.2f}"
        f"  peak RSS {peak / 1024:.0f} MB"
    )
    print(f"  journal after import: {states}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--no-corpus", action="store_true")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--scale", default="", help="sizes, e.g. 1000,10000,100000")
    parser.add_argument("--batch", type=int, default=300, help="messages imported per size")
    parser.add_argument("--large", type=int, default=0, help="MB: peak RSS for one such message")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3, help="floors and import, in turn")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-import-", dir=args.workdir))
    try:
        raws = desk_mail(args.messages)
        source = write_set(raws, work / "synth")
        if args.profile:
            profile_import(source, work / "profile", args.top)
            return
        if args.large:
            large_message(work, args.large)
            return
        if args.scale:
            scale([int(size) for size in args.scale.split(",")], args.batch, work)
            return
        load = os.getloadavg()[0]
        print(f"load average {load:.1f}; workdir {work}")
        compare("synth", raws, source, work, args.rounds)
        if not args.no_corpus:
            corpus = sorted(CORPUS.rglob("*.eml"))
            compare("corpus", [p.read_bytes() for p in corpus], CORPUS, work, args.rounds)
        print(f"\nload average at the end {os.getloadavg()[0]:.1f}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
