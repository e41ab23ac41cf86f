"""Issue 10, fairness: one abusive client does not slow the others.

The abuser (127.0.0.2) holds every connection its address may have and drips: half of them
send a message one byte at a time inside DATA, the other half send commands one byte at a time.
Meanwhile honest clients (127.0.0.1) deliver and must hear their 250s promptly. The bounds are
generous (seconds, where a quiet machine needs milliseconds): what they catch is a listener that
serialises sessions or blocks its event loop, which would make honest mail wait for the abuser.
A huge message must not starve the worker or the sender either.
"""

from __future__ import annotations

import smtplib
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import pytest

from tests.daemon import DaemonProcess, Relay, daemon_config
from tests.helpers import DESK, customer_mail, free_port

pytestmark = pytest.mark.slow

ABUSER = "127.0.0.2"
ABUSER_CONNECTIONS = 4
ABUSE_SECONDS = 32.0
HONEST_MESSAGES = 12


@pytest.fixture
def daemon(tmp_path: Path, relay: Relay) -> Iterator[DaemonProcess]:
    extra = (
        f'[smtp_in]\nlisten = "127.0.0.1:{free_port()}"\n'
        f"max_connections_per_client = {ABUSER_CONNECTIONS}\n"
        "idle_timeout = 120\n"  # longer than the abuse: it is slow, not silent
        f"max_message_size = {40 * 1024 * 1024}\n"
    )
    process = DaemonProcess(daemon_config(tmp_path, relay.port, extra=extra))
    process.start()
    yield process
    assert process.stop() == 0, process.log()


def _reply(conn: socket.socket) -> bytes:
    """One whole (possibly multi-line) reply."""
    data = b""
    while not data.endswith(b"\r\n") or data.split(b"\r\n")[-2][3:4] == b"-":
        chunk = conn.recv(4096)
        assert chunk, f"closed by the server after {data!r}"
        data += chunk
    return data


def _command(conn: socket.socket, line: bytes, expect: bytes) -> None:
    conn.sendall(line + b"\r\n")
    reply = _reply(conn)
    assert reply.startswith(expect), (line, reply)


class Abuser:
    """Holds its address's connections and drips one byte at a time on each, in a thread."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conns: list[socket.socket] = []
        self.pending: list[bytes] = []  # what each connection still has to drip
        self.stop = threading.Event()
        self.dripped = 0
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._drip, daemon=True)

    def open(self) -> None:
        deadline = time.monotonic() + 5
        for number in range(ABUSER_CONNECTIONS):
            while True:
                conn = socket.create_connection(
                    ("127.0.0.1", self.port), timeout=10, source_address=(ABUSER, 0)
                )
                greeting = _reply(conn)
                if greeting.startswith(b"220") or time.monotonic() > deadline:
                    break  # (a 421 only while the start-up probe still holds a slot)
                conn.close()
                time.sleep(0.05)
            assert greeting.startswith(b"220"), greeting
            _command(conn, b"EHLO abuser.example", b"250")
            if number % 2 == 0:  # the DATA drip: a message that never seems to end
                _command(conn, b"MAIL FROM:<slow@abuser.example>", b"250")
                _command(conn, f"RCPT TO:<{DESK}>".encode(), b"250")
                _command(conn, b"DATA", b"354")
                head = f"From: Yavaş <slow{number}@abuser.example>\r\nSubject: Yavaş {number}\r\n"
                self.pending.append(head.encode() + b"\r\n" + b"drip " * 10_000)
            else:  # the command drip: NOOPs one byte at a time
                self.pending.append(b"NOOP\r\n" * 10_000)
            self.conns.append(conn)
        self.thread.start()

    def _drip(self) -> None:
        try:
            while not self.stop.is_set():
                for index, conn in enumerate(self.conns):
                    conn.sendall(self.pending[index][:1])
                    self.pending[index] = self.pending[index][1:]
                    if index % 2 == 1:
                        conn.setblocking(False)  # swallow the NOOP replies as they come
                        try:
                            while conn.recv(4096):
                                pass
                        except BlockingIOError:
                            pass
                        finally:
                            conn.setblocking(True)
                self.dripped += 1
                time.sleep(0.05)
        except BaseException as error:  # reported by the test, not lost in the thread
            self.error = error

    def finish(self) -> list[bytes]:
        """Stop dripping; end the slow messages properly. Returns the DATA replies."""
        self.stop.set()
        self.thread.join(10)
        assert self.error is None, f"the server cut the abuser off: {self.error!r}"
        replies = []
        for index, conn in enumerate(self.conns):
            if index % 2 == 0:
                conn.sendall(b"\r\n.\r\n")
                replies.append(_reply(conn))
            else:  # the rest of the NOOP under way
                conn.sendall(self.pending[index].partition(b"\r\n")[0] + b"\r\n")
            conn.sendall(b"QUIT\r\n")
            conn.close()
        return replies


def _honest(port: int, number: int) -> float:
    """Deliver one message; seconds from connecting to the 250 for DATA."""
    began = time.monotonic()
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        raw = customer_mail(
            sender=f"Müşteri {number} <musteri{number}@example.net>",
            subject=f"Dürüst talep {number}",
            message_id=f"<honest-{number}@example.net>",
        )
        client.sendmail(f"musteri{number}@example.net", [DESK], raw)
    return time.monotonic() - began


def test_one_dripping_client_does_not_slow_honest_mail(daemon: DaemonProcess, relay: Relay) -> None:
    abuser = Abuser(daemon.port)
    abuser.open()
    began = time.monotonic()
    time.sleep(2)  # the abuse is well under way
    honest_began = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        times = list(pool.map(lambda n: _honest(daemon.port, n), range(HONEST_MESSAGES)))
    honest_took = time.monotonic() - honest_began
    assert honest_took < 10, f"honest mail took {honest_took:.1f}s beside the abuser: {times}"
    # The honest mail also went all the way: tickets and acknowledgements.
    relay.wait_for(HONEST_MESSAGES, timeout=30)
    # The abuser keeps going the whole time, never cut off (it is slow, not silent) ...
    while time.monotonic() - began < ABUSE_SECONDS:
        assert abuser.error is None, abuser.error
        time.sleep(0.5)
    assert abuser.dripped > 100
    # ... and its slow messages, once ended, are accepted like any other: nothing is lost.
    replies = abuser.finish()
    assert all(reply.startswith(b"250 ") for reply in replies), replies
    tickets = daemon.wait_until(
        lambda: (
            (t := daemon.cli("tickets", "list", "--json"))
            and len(t) == HONEST_MESSAGES + ABUSER_CONNECTIONS // 2
            and t
        ),
        what="every message a ticket",
    )
    assert sum(1 for t in tickets if t["subject"].startswith("Dürüst")) == HONEST_MESSAGES


def _huge_message(megabytes: int) -> bytes:
    mail = EmailMessage()
    mail["From"] = "Büyük Dosya <buyuk@example.net>"
    mail["To"] = DESK
    mail["Subject"] = "Çok büyük ek"
    mail["Message-ID"] = "<huge@example.net>"
    mail.set_content("Ekteki dosya.")
    mail.add_attachment(
        bytes(range(256)) * (megabytes * 4096),
        maintype="application",
        subtype="octet-stream",
        filename="yedek.bin",
    )
    return mail.as_bytes(policy=SMTP)


def test_a_huge_message_does_not_starve_the_worker_or_the_sender(
    daemon: DaemonProcess, relay: Relay
) -> None:
    huge = _huge_message(25)  # 25 MB of attachment, about 34 MB on the wire
    accepted = threading.Event()

    def send_huge() -> None:
        with smtplib.SMTP("127.0.0.1", daemon.port, timeout=120) as client:
            client.sendmail("buyuk@example.net", [DESK], huge)
        accepted.set()

    sender = threading.Thread(target=send_huge)
    sender.start()
    # Honest mail keeps flowing through the listener while the huge message arrives, and
    # through the worker and the sender while it is parsed and stored (it is journaled
    # before the last few honest ones, so they queue behind it).
    honest = 0
    try:
        while not accepted.is_set() and honest < 200:
            assert _honest(daemon.port, honest) < 10
            honest += 1
        for _ in range(4):
            assert _honest(daemon.port, honest) < 10
            honest += 1
    finally:
        sender.join(120)
    assert accepted.is_set(), daemon.log()
    relay.wait_for(honest + 1, timeout=120)  # every one acknowledged, the huge one too
    subjects = [t["subject"] for t in daemon.cli("tickets", "list", "--json")]
    assert "Çok büyük ek" in subjects and len(subjects) == honest + 1
