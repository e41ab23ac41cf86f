"""SMTP load: ticketd's listener under many concurrent clients, beside a bare aiosmtpd listener.

Run from the repository root:

    .venv/bin/python bench/smtp_load.py [--messages N] [--clients K] [--workdir DIR]

Both listeners run as their own process on loopback and get the same messages from the same
clients (aiosmtplib, K concurrent connections, one message per connection, each client from its
own 127.x.y.z address so the per-address connection limit does not refuse anyone). The bare
listener only writes each message to a file and fsyncs it before its 250; `ticketd run` journals
(sealed blob, fsync, committed row) and its worker makes tickets at the same time. Printed per
listener: accepted messages per second, the time from connecting to the 250 after DATA (p50,
p90, p99, max) and the process's peak memory (VmHWM). See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path
from typing import Any

import aiosmtplib

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.daemon import DaemonProcess
from tests.helpers import DESK, free_port, write_config

LOOPBACK = "127.0.0.1"
MAX_SIZE = 25 * 1024 * 1024


# --------------------------------------------------------------------------------------------
# The bare baseline: aiosmtpd, each message to its own file, fsynced before the 250.


def serve_bare(port: int, folder: Path) -> None:
    from aiosmtpd.smtp import SMTP, Envelope, Session

    numbers = itertools.count(1)

    def write(path: Path, data: bytes) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    class DiskWriter:
        async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
            data = envelope.original_content or envelope.content
            assert isinstance(data, bytes)
            # In a thread, as ticketd does, so fsync does not stop the event loop.
            await asyncio.to_thread(write, folder / f"{next(numbers)}.eml", data)
            return "250 2.0.0 OK"

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        handler = DiskWriter()
        server = await loop.create_server(
            lambda: SMTP(handler, data_size_limit=MAX_SIZE, decode_data=False, hostname="bare"),
            host=LOOPBACK,
            port=port,
        )
        await stop.wait()
        server.close()
        await server.wait_closed()

    asyncio.run(main())


# --------------------------------------------------------------------------------------------
# The messages


@dataclass(frozen=True)
class Message:
    sender: str
    raw: bytes


_WORDS = (
    "merhaba", "hesabım", "para", "çekme", "talebim", "gündür", "beklemede", "lütfen",
    "yardımcı", "olur", "musunuz", "teşekkürler", "kartım", "şifre", "kilitlendi", "iade",
    "fatura", "hello", "account", "withdrawal", "pending", "please", "help", "thanks",
)  # fmt: skip


def make_messages(count: int, seed: int) -> list[Message]:
    """Customer mail of 0.5-8 KB of text; one in ten with a 64-256 KB attachment."""
    rng = random.Random(seed)
    messages = []
    for number in range(count):
        customer = f"musteri{rng.randrange(max(count // 4, 1))}@example.net"
        mail = EmailMessage()
        mail["From"] = f"Müşteri <{customer}>"
        mail["To"] = DESK
        mail["Subject"] = f"Talep {number}: " + " ".join(rng.choices(_WORDS, k=4))
        mail["Message-ID"] = f"<load-{seed}-{number}@example.net>"
        words = rng.randrange(80, 1300)
        mail.set_content(" ".join(rng.choices(_WORDS, k=words)) + "\n")
        if rng.random() < 0.1:
            mail.add_attachment(
                rng.randbytes(rng.randrange(64, 257) * 1024),
                maintype="application",
                subtype="pdf",
                filename=f"dekont-{number}.pdf",
            )
        messages.append(Message(customer, mail.as_bytes(policy=SMTP_POLICY)))
    return messages


# --------------------------------------------------------------------------------------------
# The clients


@dataclass
class LoadResult:
    accepted: int
    refused: dict[str, int]  # first word of the reply (or the error) -> how many
    latencies: list[float]  # seconds from connecting to the 250 after DATA
    seconds: float  # first connect to the last 250


def client_address(index: int) -> str:
    return f"127.0.{1 + index // 250}.{1 + index % 250}"


async def _client(
    index: int, port: int, queue: asyncio.Queue[Message], result: LoadResult
) -> float:
    last = 0.0
    while True:
        try:
            message = queue.get_nowait()
        except asyncio.QueueEmpty:
            return last
        began = time.perf_counter()
        client = aiosmtplib.SMTP(
            hostname=LOOPBACK,
            port=port,
            source_address=(client_address(index), 0),
            timeout=120,
            start_tls=False,
        )
        try:
            await client.connect()
            await client.sendmail(message.sender, [DESK], message.raw)
            last = time.perf_counter()
            result.latencies.append(last - began)
            result.accepted += 1
        except aiosmtplib.SMTPResponseException as error:
            key = f"{error.code}"
            result.refused[key] = result.refused.get(key, 0) + 1
        except (aiosmtplib.SMTPException, OSError) as error:
            key = type(error).__name__
            result.refused[key] = result.refused.get(key, 0) + 1
        finally:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await client.quit()


async def _load(port: int, messages: Sequence[Message], clients: int) -> LoadResult:
    queue: asyncio.Queue[Message] = asyncio.Queue()
    for message in messages:
        queue.put_nowait(message)
    result = LoadResult(0, {}, [], 0.0)
    began = time.perf_counter()
    lasts = await asyncio.gather(*(_client(i, port, queue, result) for i in range(clients)))
    result.seconds = max(lasts, default=began) - began
    return result


def run_load(port: int, messages: Sequence[Message], clients: int) -> LoadResult:
    return asyncio.run(_load(port, messages, clients))


# --------------------------------------------------------------------------------------------
# Measuring the servers


def vm_hwm(pid: int) -> int:
    """Peak resident memory of a process in bytes (VmHWM from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_listening(port: int, process: subprocess.Popen[Any], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the listener exited {process.returncode}")
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


@dataclass
class Row:
    name: str
    load: LoadResult
    peak: int
    cpu: float
    note: str = ""


def bench_bare(workdir: Path, messages: Sequence[Message], clients: int) -> Row:
    folder = workdir / "bare"
    folder.mkdir()
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve-bare", str(port), str(folder)],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_listening(port, process)
        time.sleep(0.2)  # the probe's session ends
        cpu_before = cpu_seconds(process.pid)
        load = run_load(port, messages, clients)
        peak, cpu = vm_hwm(process.pid), cpu_seconds(process.pid) - cpu_before
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    written = len(list(folder.iterdir()))
    return Row("bare aiosmtpd: write+fsync", load, peak, cpu, f"{written} files written")


def _pending(database: Path) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        row = db.execute("SELECT count(*) FROM journal WHERE state = 'pending'").fetchone()
        return int(row[0])


def bench_ticketd(workdir: Path, messages: Sequence[Message], clients: int) -> Row:
    folder = workdir / "ticketd"
    folder.mkdir()
    extra = (
        f'[smtp_in]\nlisten = "{LOOPBACK}:{free_port()}"\n'
        f"max_connections = {max(100, clients + 20)}\n"
        f"max_message_size = {MAX_SIZE}\n"
    )
    daemon = DaemonProcess(write_config(folder, extra=extra))
    daemon.start()
    assert daemon.process is not None
    pid = daemon.process.pid
    database = Path(daemon.config.storage.database.removeprefix("sqlite:///"))
    try:
        time.sleep(0.2)
        cpu_before = cpu_seconds(pid)
        load = run_load(daemon.port, messages, clients)
        backlog, cpu, peak_load = _pending(database), cpu_seconds(pid) - cpu_before, vm_hwm(pid)
        settle_began = time.perf_counter()
        while _pending(database) and time.perf_counter() - settle_began < 600:
            time.sleep(0.2)
        settled = time.perf_counter() - settle_began
        # The peak of the whole run, the worker's catching up included.
        peak, cpu_all = vm_hwm(pid), cpu_seconds(pid) - cpu_before
    finally:
        code = daemon.stop()
    note = (
        f"VmHWM {peak_load / 2**20:.0f} MB at the last 250; worker backlog then {backlog}"
        f" messages, all processed {settled:.1f} s later ({cpu_all:.1f} CPU s in all);"
        f" exit status {code}"
    )
    return Row("ticketd run (journal+worker)", load, peak, cpu, note)


# --------------------------------------------------------------------------------------------
# Report


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def report(rows: Sequence[Row], messages: Sequence[Message], clients: int) -> None:
    size = sum(len(m.raw) for m in messages)
    print(f"{len(messages)} messages ({size / 1e6:.1f} MB), {clients} concurrent clients")
    print()
    header = (
        f"{'listener':<30} {'accepted':>8} {'msg/s':>7} {'÷ bare':>6} {'p50 ms':>7} "
        f"{'p90 ms':>7} {'p99 ms':>7} {'max ms':>7} {'VmHWM':>7} {'CPU s':>6}"
    )
    print(header)
    print("-" * len(header))
    bare_rate = None
    for row in rows:
        load = row.load
        rate = load.accepted / load.seconds if load.seconds else 0.0
        bare_rate = bare_rate or rate
        ms = [1000 * percentile(load.latencies, f) for f in (0.5, 0.9, 0.99, 1.0)]
        print(
            f"{row.name:<30} {load.accepted:>8} {rate:>7.0f} {rate / bare_rate:>6.2f} "
            f"{ms[0]:>7.0f} {ms[1]:>7.0f} {ms[2]:>7.0f} {ms[3]:>7.0f} "
            f"{row.peak / 2**20:>5.0f}MB {row.cpu:>6.1f}"
        )
    print()
    for row in rows:
        refused = ", ".join(f"{k}: {v}" for k, v in sorted(row.load.refused.items())) or "none"
        print(f"{row.name}: {row.load.seconds:.1f} s; not accepted: {refused}; {row.note}")
    print(f"load average after the run: {os.getloadavg()[0]:.2f}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seed", type=int, default=10)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the state folders")
    parser.add_argument("--serve-bare", nargs=2, metavar=("PORT", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_bare:
        serve_bare(int(args.serve_bare[0]), Path(args.serve_bare[1]))
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="ticketd-smtp-load-", dir=args.workdir))
    filesystem = subprocess.run(
        ["df", "--output=fstype", str(workdir)], capture_output=True, text=True, check=False
    ).stdout.split()[-1:]
    print(f"state in {workdir} ({''.join(filesystem) or '?'}), {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    messages = make_messages(args.messages, args.seed)
    try:
        rows = [
            bench_bare(workdir, messages, args.clients),
            bench_ticketd(workdir, messages, args.clients),
        ]
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    report(rows, messages, args.clients)
    complete = all(row.load.accepted == len(messages) for row in rows)
    return 0 if complete and "exit status 0" in rows[1].note else 1


if __name__ == "__main__":
    sys.exit(main())
