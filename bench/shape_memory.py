"""Peak memory of the daemon for each hostile size and shape (issue 10), beside an honest mail.

A script, not a test: each case runs in a fresh daemon (`ticketd run` as a process), sent over
a raw SMTP socket in chunks; the figure is the growth of the process's VmHWM (peak resident
memory, /proc/PID/status) from just after start to after the message settled (refused, or
processed by the worker), also as a multiple of the message's size (issue 19: at most 2 for an
accepted 25 MB message). Beside it, in the same run: the growth of the daemon's parsing process
(ingest/isolation.py, a process of its own, so not in the daemon's figure), and the floor, the
growth of a bare Python process that parses the same bytes with the standard library
(`policy.default`, every leaf's `get_content()`). Run: `.venv/bin/python bench/shape_memory.py`.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.daemon import DaemonProcess, daemon_config
from tests.helpers import DESK, customer_mail, free_port
from tests.test_hostile_shapes import (
    MB,
    TEAM,
    Client,
    _kyc_mail,
    _wide,
    pdf_bomb,
    peak_rss,
    zip_bomb,
)


@dataclass(frozen=True)
class Case:
    name: str
    chunks: Callable[[int], Iterable[bytes]]  # the DATA the n-th client sends
    clients: int = 1  # each on its own connection, all at once
    rounds: int = 1  # sent again (the next client numbers), once the journal has settled


def _one(chunks: Callable[[], Iterable[bytes]]) -> Callable[[int], Iterable[bytes]]:
    return lambda n: chunks()


def _stuffed(raw: bytes) -> list[bytes]:
    return [raw.replace(b"\r\n.", b"\r\n..")]


def _honest() -> list[bytes]:
    return _stuffed(customer_mail(sender="ayse@musteri.com.tr", subject="Merhaba"))


def _big_attachment(size: float, n: int = 0) -> list[bytes]:
    """A mail with one attachment of `size` MB (base64: the mail is 1.37 times that)."""
    mail = EmailMessage()
    mail["From"] = "ayse@musteri.com.tr"
    mail["To"] = DESK
    mail["Subject"] = f"Ekstre {n}"
    mail.set_content("Ekstrem ekte.")
    payload = bytes(range(256)) * int(size * MB / 256)
    mail.add_attachment(payload, "application", "octet-stream", filename=f"ekstre{n}.bin")
    return _stuffed(mail.as_bytes(policy=SMTP))


def _huge() -> Iterable[bytes]:
    yield b"From: ayse@musteri.com.tr\r\nSubject: big\r\n\r\n"
    block = (b"A" * 998 + b"\r\n") * 1024
    for _ in range(200):
        yield block


def _long_line() -> Iterable[bytes]:
    yield b"From: ayse@musteri.com.tr\r\nSubject: line\r\n\r\n"
    for _ in range(10):
        yield b"x" * MB
    yield b"\r\n"


def _parts_bomb() -> list[bytes]:
    head = f"From: ayse@musteri.com.tr\r\nTo: {DESK}\r\nSubject: parts\r\n".encode()
    body = b"--b\r\n\r\nx\r\n" * 2_400_000
    return [head + b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + body]


def _bomb(filename: str, content_type: str, payload: bytes) -> list[bytes]:
    return _stuffed(_kyc_mail(filename, content_type, payload))


CASES: list[Case] = [
    Case("honest mail, 1 KB (baseline)", _one(_honest)),
    Case("24 MB mail, 17 MB attachment", _one(lambda: _big_attachment(17))),
    # Just under the default max_message_size of 25 MiB.
    Case("25 MB mail, 18.2 MB attachment", _one(lambda: _big_attachment(18.2))),
    # A daemon lives on: what the first large mail leaves behind must not add to the next.
    Case("24 MB mail, 4 one after the other", lambda n: _big_attachment(17, n), rounds=4),
    # The most the default max_buffered_bytes (256 MiB) lets the listener hold of such mail.
    Case("10 clients at once, 24 MB mail each", lambda n: _big_attachment(17, n), clients=10),
    Case("200 MB mail (refused, 552)", _one(_huge)),
    Case("10 MB line (refused, 500)", _one(_long_line)),
    Case("parts bomb, 24 MB of empty parts", _one(_parts_bomb)),
    Case("10,000 parts", _one(lambda: _stuffed(_wide(10_000)))),
    Case(
        "zip bomb, 4 GB in 4 MB (kyc)",
        _one(lambda: _stuffed(_kyc_mail("b.zip", "application/zip", zip_bomb()))),
    ),
    Case(
        "PDF bomb, 2 GB in 2 MB (kyc)",
        _one(lambda: _stuffed(_kyc_mail("e.pdf", "application/pdf", pdf_bomb()))),
    ),
]


def _settled(folder: Path) -> bool:
    with sqlite3.connect(folder / "var" / "ticketd.sqlite3") as db:
        (pending,) = db.execute("select count(*) from journal where state = 'pending'").fetchone()
    return int(pending) == 0


# The floor: a bare interpreter that reads the message from a file, then parses it as the
# standard library would for any program (VmHWM before and after the parse, in bytes).
STDLIB_PARSE = """
import email, email.policy, re, sys
def hwm():
    return int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read())[1]) * 1024
raw = open(sys.argv[1], "rb").read()
before = hwm()
message = email.message_from_bytes(raw, policy=email.policy.default)
for part in message.walk():
    if not part.is_multipart():
        part.get_content()
print(hwm() - before)
"""


def stdlib_floor(raw: bytes) -> int:
    """The growth of a bare process's peak while the standard library parses `raw`."""
    with tempfile.NamedTemporaryFile(suffix=".eml") as file:
        file.write(raw)
        file.flush()
        out = subprocess.run(
            [sys.executable, "-c", STDLIB_PARSE, file.name], capture_output=True, check=True
        )
    return int(out.stdout)


def _hwm(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    [line] = [line for line in status.splitlines() if line.startswith("VmHWM:")]
    return int(line.split()[1]) * 1024


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def parse_process(daemon_pid: int) -> int | None:
    """The pid of the daemon's parsing process (a child of its forkserver, which is the
    daemon's child), or None."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            parent = _parent(int(entry))
            if parent is not None and parent != daemon_pid and _parent(parent) == daemon_pid:
                return int(entry)
    return None


def _wait_for_parser(daemon_pid: int) -> int | None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pid = parse_process(daemon_pid)
        if pid is not None:
            return pid
        time.sleep(0.1)
    return None


def _send_all(port: int, messages: list[Iterable[bytes]]) -> str:
    """Each message from a client of its own, all at once; the replies, joined if they differ."""
    replies: list[str] = [""] * len(messages)

    def send(n: int) -> None:
        client = Client(port)
        replies[n] = client.send(messages[n], "ayse@musteri.com.tr")
        client.close()

    threads = [threading.Thread(target=send, args=(n,)) for n in range(len(messages))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return "/".join(sorted({reply[:3] for reply in replies}))


def run_case(case: Case, relay_port: int) -> str:
    rounds = [
        [case.chunks(case.clients * r + n) for n in range(case.clients)] for r in range(case.rounds)
    ]
    data = rounds[0][0]
    whole = isinstance(data, list)  # the generated cases are sent without ever being joined
    raw = b"".join(data).replace(b"\r\n..", b"\r\n.") if whole else b""
    size = len(raw) if whole else 0
    with tempfile.TemporaryDirectory() as folder:
        extra = f'[smtp_in]\nlisten = "127.0.0.1:{free_port()}"\n{TEAM}'
        daemon = DaemonProcess(daemon_config(Path(folder), relay_port, extra=extra))
        daemon.start()
        try:
            assert daemon.process is not None
            parser = _wait_for_parser(daemon.process.pid)
            before = peak_rss(daemon)
            parser_before = _hwm(parser) if parser is not None else None
            started = time.monotonic()
            replies = set()
            for messages in rounds:
                replies.add(_send_all(daemon.port, messages))
                daemon.wait_until(lambda: _settled(Path(folder)), timeout=300, what="the journal")
            reply = "/".join(sorted(replies))
            seconds = time.monotonic() - started
            peak = peak_rss(daemon)
            parser_after = _hwm(parser) if parser is not None else None
        finally:
            daemon.stop()
    grown = peak - before
    times = f"{grown / size:6.1f}x" if size >= MB else f"{'-':>7}"  # of a large one only
    if parser_before is None or parser_after is None:
        child = f"{'?':>8}"  # the parsing process was restarted (a kill) or never found
    else:
        child = f"{(parser_after - parser_before) / MB:+4.0f}/{parser_after / MB:3.0f}"
    floor = f"{stdlib_floor(raw) / MB:+8.0f}" if whole and reply.startswith("250") else f"{'-':>8}"
    return (
        f"{case.name:36} {reply:>5} {size / MB:7.1f} {before / MB:6.0f} {peak / MB:6.0f} "
        f"{grown / MB:+8.0f} {times} {child} {floor} {seconds:7.1f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="run the cases whose name contains this")
    args = parser.parse_args()
    print(
        f"{'case':36} {'reply':>5} {'size MB':>7} {'start':>6} {'peak':>6} {'peak +MB':>8} "
        f"{'× size':>7} {'parser+':>8} {'stdlib+':>8} {'seconds':>7}"
    )
    for case in CASES:
        if args.only and args.only not in case.name:
            continue
        # No relay: outgoing mail goes to the Maildir outbox.
        print(run_case(case, 0), flush=True)
    print(
        "start, peak: the daemon's VmHWM before the message and after it settled (MB); "
        "peak +MB and × size: the growth, and it divided by one message's size (1 MB and more); "
        "parser+: the growth of the daemon's parsing process / its peak; stdlib+: a bare "
        "process parsing the same bytes with the standard library; load average "
        f"{os.getloadavg()[0]:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
