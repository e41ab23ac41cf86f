"""Issue 10, abuse of the SMTP listener: connection limits, slow clients, recipient and command
limits, no open relay. The daemon runs as a process; smtplib and raw sockets are the clients."""

from __future__ import annotations

import smtplib
import socket
import time
from pathlib import Path

import pytest

from tests.daemon import Relay, Start, daemon_config
from tests.helpers import DESK, customer_mail
from ticketd.config import ConfigError, load_config

pytestmark = pytest.mark.slow


def _connect(port: int, source: str = "127.0.0.1") -> smtplib.SMTP:
    # 127.0.0.0/8 is all loopback on Linux: a second source address is a second client.
    return smtplib.SMTP("127.0.0.1", port, timeout=10, source_address=(source, 0))


def _refused(port: int, source: str = "127.0.0.1") -> str:
    with pytest.raises(smtplib.SMTPConnectError) as refused:
        _connect(port, source)
    assert refused.value.smtp_code == 421
    error = refused.value.smtp_error
    return error.decode() if isinstance(error, bytes) else error


def _greeted(port: int) -> socket.socket:
    """A raw connection past its 220 greeting; waits out the start-up probe's slot."""
    deadline = time.monotonic() + 5
    while True:
        conn = socket.create_connection(("127.0.0.1", port), timeout=10)
        greeting = conn.recv(1024)
        if greeting.startswith(b"220") or time.monotonic() > deadline:
            assert greeting.startswith(b"220"), greeting
            return conn
        conn.close()
        time.sleep(0.05)


def _deliver(client: smtplib.SMTP, number: int) -> None:
    raw = customer_mail(
        sender=f"Müşteri {number} <musteri{number}@example.net>",
        subject=f"Talep {number}",
        message_id=f"<limit-{number}@example.net>",
    )
    client.sendmail(f"musteri{number}@example.net", [DESK], raw)


def test_connections_over_the_limits_get_421_while_the_others_deliver(
    start: Start, relay: Relay
) -> None:
    daemon = start("max_connections = 3\nmax_connections_per_client = 2\n")
    first = [_connect(daemon.port), _connect(daemon.port)]
    # One address over its share: refused, although total slots remain.
    assert "4.7.0" in _refused(daemon.port) and "your address" in _refused(daemon.port)
    # Another client still gets in (one abusive address does not lock out the others) ...
    second = _connect(daemon.port, "127.0.0.2")
    # ... until the total is reached.
    message = _refused(daemon.port, "127.0.0.3")
    assert "4.7.0" in message and "your address" not in message
    clients = [*first, second]
    for number, client in enumerate(clients):
        _deliver(client, number)
        client.quit()
    assert len(relay.wait_for(3)) == 3
    assert len(daemon.cli("tickets", "list", "--json")) == 3
    assert "refused a connection from 127.0.0.1" in daemon.log()
    # Closed sessions give their slots back.
    with _connect(daemon.port) as again:
        assert again.noop()[0] == 250


def test_slow_client_is_timed_out_and_frees_its_slot(start: Start, relay: Relay) -> None:
    daemon = start("idle_timeout = 1\nmax_connections_per_client = 1\n")
    with _greeted(daemon.port) as slow:
        slow.sendall(b"EHLO slow.example\r\n")
        reply = b""
        while b"\r\n250 " not in b"\r\n" + reply:  # up to the last line of the EHLO reply
            reply += slow.recv(1024)
        began = time.monotonic()
        slow.sendall(b"MAIL FROM:<slow@example.net>")  # and never the end of the line
        assert slow.recv(1024) == b""  # the server closed the connection
        assert time.monotonic() - began < 5
    # Its slot is free again: a well-behaved client delivers.
    with _connect(daemon.port) as client:
        _deliver(client, 1)
    relay.wait_for(1)


def test_recipient_and_command_limits_and_no_open_relay(start: Start) -> None:
    daemon = start("max_recipients = 2\nmax_commands = 4\n")
    with _connect(daemon.port) as client:
        client.ehlo()
        assert client.mail("ayse@musteri.com.tr")[0] == 250
        assert client.rcpt("someone@elsewhere.example")[0] == 550  # not ours: no relaying
        assert client.rcpt(DESK)[0] == 250
        assert client.rcpt("destek+a@example.com")[0] == 250
        code, reply = client.rcpt("destek+b@example.com")
        assert (code, reply[:5]) == (452, b"4.5.3")
    with _connect(daemon.port) as client:
        for _ in range(4):
            assert client.noop()[0] == 250
        code, reply = client.noop()
        assert code == 421 and b"4.7.0" in reply
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.noop()


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("max_connections = 0", "smtp_in.max_connections"),
        ("max_connections_per_client = -1", "smtp_in.max_connections_per_client"),
        ('max_recipients = "many"', "smtp_in.max_recipients"),
        ("max_commands = 0", "smtp_in.max_commands"),
        ("idle_timeout = 0", "smtp_in.idle_timeout"),
        ("max_conections = 5", "smtp_in.max_conections"),
    ],
)
def test_bad_smtp_in_limits_name_the_key(tmp_path: Path, line: str, key: str) -> None:
    path = daemon_config(tmp_path, None, extra=f'[smtp_in]\nlisten = "127.0.0.1:2525"\n{line}\n')
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert key in str(error.value)


def test_a_slow_but_steady_message_is_not_cut_off_by_the_idle_timeout(
    start: Start, relay: Relay
) -> None:
    # idle_timeout is time without a byte (like Postfix's smtpd_timeout), not a cap on DATA: a
    # large message on a slow link takes longer than it in all and must still arrive.
    daemon = start("idle_timeout = 2\n")
    with _greeted(daemon.port) as conn:
        reader = conn.makefile("rb")

        def command(line: bytes) -> bytes:
            conn.sendall(line + b"\r\n")
            reply = reader.readline()
            while reply[3:4] == b"-":
                reply = reader.readline()
            return reply

        assert command(b"EHLO slow.example").startswith(b"250")
        assert command(b"MAIL FROM:<yavas@example.net>").startswith(b"250")
        assert command(b"RCPT TO:<" + DESK.encode() + b">").startswith(b"250")
        assert command(b"DATA").startswith(b"354")
        raw = customer_mail(sender="yavas@example.net", subject="Yavaş hat", body="Merhaba")
        began = time.monotonic()
        step = len(raw) // 16 + 1
        for offset in range(0, len(raw), step):
            conn.sendall(raw[offset : offset + step])
            time.sleep(0.35)  # well within the timeout per read, far beyond it in all
        assert time.monotonic() - began > 4
        assert command(b".").startswith(b"250")
        assert command(b"QUIT").startswith(b"221")
    relay.wait_for(1)
