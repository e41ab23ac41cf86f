"""Peak memory of the daemon for each hostile size and shape (issue 10), beside an honest mail.

A script, not a test: each case runs in a fresh daemon (`ticketd run` as a process), sent over
a raw SMTP socket in chunks; the figure is the growth of the process's VmHWM (peak resident
memory, /proc/PID/status) from just after start to after the message settled (refused, or
processed by the worker). Run: `.venv/bin/python bench/shape_memory.py`.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
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

Case = tuple[str, Callable[[], Iterable[bytes]]]


def _stuffed(raw: bytes) -> list[bytes]:
    return [raw.replace(b"\r\n.", b"\r\n..")]


def _honest() -> list[bytes]:
    return _stuffed(customer_mail(sender="ayse@musteri.com.tr", subject="Merhaba"))


def _big_attachment() -> list[bytes]:
    mail = EmailMessage()
    mail["From"] = "ayse@musteri.com.tr"
    mail["To"] = DESK
    mail["Subject"] = "Ekstre"
    mail.set_content("Ekstrem ekte.")
    mail.add_attachment(bytes(range(256)) * (17 * MB // 256), "application", "octet-stream")
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
    ("honest mail, 1 KB (baseline)", _honest),
    ("24 MB mail, 17 MB attachment", _big_attachment),
    ("200 MB mail (refused, 552)", _huge),
    ("10 MB line (refused, 500)", _long_line),
    ("parts bomb, 24 MB of empty parts", _parts_bomb),
    ("10,000 parts", lambda: _stuffed(_wide(10_000))),
    (
        "zip bomb, 4 GB in 4 MB (kyc)",
        lambda: _stuffed(_kyc_mail("b.zip", "application/zip", zip_bomb())),
    ),
    (
        "PDF bomb, 2 GB in 2 MB (kyc)",
        lambda: _stuffed(_kyc_mail("e.pdf", "application/pdf", pdf_bomb())),
    ),
]


def _settled(folder: Path) -> bool:
    with sqlite3.connect(folder / "var" / "ticketd.sqlite3") as db:
        (pending,) = db.execute("select count(*) from journal where state = 'pending'").fetchone()
    return int(pending) == 0


def run_case(name: str, chunks: Callable[[], Iterable[bytes]], relay_port: int) -> str:
    with tempfile.TemporaryDirectory() as folder:
        extra = f'[smtp_in]\nlisten = "127.0.0.1:{free_port()}"\n{TEAM}'
        daemon = DaemonProcess(daemon_config(Path(folder), relay_port, extra=extra))
        daemon.start()
        try:
            client = Client(daemon.port)
            before = peak_rss(daemon)
            started = time.monotonic()
            reply = client.send(chunks(), "ayse@musteri.com.tr")
            client.close()
            daemon.wait_until(lambda: _settled(Path(folder)), timeout=300, what="the journal")
            seconds = time.monotonic() - started
            grown = peak_rss(daemon) - before
            return f"{name:40} {reply[:3]:>5} {before / MB:8.0f} {grown / MB:+8.0f} {seconds:7.1f}"
        finally:
            daemon.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="run the cases whose name contains this")
    args = parser.parse_args()
    print(f"{'case':40} {'reply':>5} {'start MB':>8} {'peak +MB':>8} {'seconds':>7}")
    for name, chunks in CASES:
        if args.only and args.only not in name:
            continue
        # No relay: outgoing mail goes to the Maildir outbox.
        print(run_case(name, chunks, 0), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
