"""Issue 10, storage faults under the running daemon: the database briefly unreachable (SQLite
locked by another process for longer than the busy timeout; PostgreSQL stopped, then started)
and the disk full. Each time SMTP answers 451 4.3.0, so the sending MTA keeps the message and
tries again; nothing is accepted that is not durable, and once storage is back the retry is
accepted and becomes exactly one ticket."""

from __future__ import annotations

import os
import pwd
import shutil
import smtplib
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.daemon import DaemonProcess, Relay, daemon_config
from tests.helpers import DESK, customer_mail, free_port, write_config
from tests.pg import SUPERUSER, PostgresServer, find_bindir

pytestmark = pytest.mark.slow

# Holds SQLite's write lock until told to let go (a line on stdin), as a stuck batch job would.
LOCKER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
db.execute("ROLLBACK")
"""


def _send(port: int, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=120) as client:
        client.sendmail("ayse@musteri.com.tr", [DESK], raw)


def _refused_with_451(port: int, raw: bytes) -> str:
    with pytest.raises(smtplib.SMTPDataError) as refused:
        _send(port, raw)
    assert refused.value.smtp_code == 451
    reply = refused.value.smtp_error
    text = reply.decode() if isinstance(reply, bytes) else reply
    assert text.startswith("4.3.0"), text
    return text


def _failure_lines(daemon: DaemonProcess) -> list[str]:
    return [line for line in daemon.log().splitlines() if "could not store a message" in line]


def test_sqlite_locked_longer_than_the_busy_timeout(daemon: DaemonProcess, relay: Relay) -> None:
    database = daemon.config.storage.database.removeprefix("sqlite:///")
    locker = subprocess.Popen(
        [sys.executable, "-c", LOCKER, database],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert locker.stdin is not None and locker.stdout is not None
    try:
        assert locker.stdout.readline() == b"locked\n"
        raw = customer_mail(message_id="<locked@musteri.com.tr>")
        began = time.monotonic()
        _refused_with_451(daemon.port, raw)  # after waiting out the 30 s busy timeout
        assert time.monotonic() - began >= 25
    finally:
        locker.stdin.write(b"go\n")
        locker.stdin.close()
        assert locker.wait(30) == 0
        locker.stdout.close()
    [line] = _failure_lines(daemon)
    assert "database unavailable: database is locked" in line, line
    _send(daemon.port, raw)  # the MTA's retry, with the database back
    relay.wait_for(1)
    assert len(daemon.cli("tickets", "list", "--json")) == 1


@pytest.fixture
def own_postgresql() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test's own, which it may stop and start at will."""
    bindir = find_bindir()
    if bindir is None:
        pytest.fail("PostgreSQL server binaries not found: apt-get install postgresql")
    folder = Path(tempfile.mkdtemp(prefix="ticketd-pg-fault-", dir="/tmp"))
    run_as = None
    if os.geteuid() == 0:
        account = pwd.getpwnam(SUPERUSER)
        os.chown(folder, account.pw_uid, account.pw_gid)
        run_as = SUPERUSER
    server = PostgresServer(bindir, folder, free_port(), run_as)
    try:
        server.initdb()
        server.start()
        with psycopg.connect(server.conninfo(), autocommit=True) as connection:
            connection.execute("CREATE DATABASE ticketd")
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def test_postgresql_stopped_then_started(
    tmp_path: Path, own_postgresql: PostgresServer, relay: Relay
) -> None:
    smtp_out = f'[smtp_out]\nrelay = "127.0.0.1:{relay.port}"\n'
    path = write_config(tmp_path, database=own_postgresql.url("ticketd"), extra=smtp_out)
    daemon = DaemonProcess(path)
    daemon.start()
    try:
        _send(daemon.port, customer_mail(message_id="<before@musteri.com.tr>"))
        relay.wait_for(1)
        own_postgresql.stop()
        raw = customer_mail(
            sender="Mehmet Kaya <mehmet@example.net>", message_id="<while-down@example.net>"
        )
        _refused_with_451(daemon.port, raw)
        assert "database unavailable" in _failure_lines(daemon)[0]
        own_postgresql.start()
        _send(daemon.port, raw)  # the MTA's retry
        relay.wait_for(2)
        assert len(daemon.cli("tickets", "list", "--json")) == 2
    finally:
        assert daemon.stop() == 0, daemon.log()


def _mount_tmpfs(folder: Path, size: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("a full disk is simulated with a small tmpfs, and mounting one needs root")
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=True)


def test_disk_full_answers_451_and_says_so_in_one_log_line(tmp_path: Path, relay: Relay) -> None:
    path = daemon_config(tmp_path, relay.port)
    daemon = DaemonProcess(path)
    blobs = daemon.config.storage.blobs
    _mount_tmpfs(blobs, "1m")
    try:
        daemon.start()
        try:
            filler = blobs / "filler"
            fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
            try:  # fill the disk to the last block
                while os.write(fd, b"\0" * 4096):
                    pass
            except OSError:
                pass
            finally:
                os.close(fd)
            raw = customer_mail(body="Ekte dosya var.\n" + "x" * 200_000)
            _refused_with_451(daemon.port, raw)
            [line] = _failure_lines(daemon)
            assert "disk full: No space left on device (ENOSPC)" in line, line
            assert str(blobs) in line
            # The partial blob was removed: nothing but the filler holds the space.
            leftovers = [p for p in blobs.rglob("*") if p.is_file() and p != filler]
            assert leftovers == []
            filler.unlink()  # the admin frees space
            _send(daemon.port, raw)  # the MTA's retry
            relay.wait_for(1)
            assert len(daemon.cli("tickets", "list", "--json")) == 1
        finally:
            if daemon.process is not None:
                assert daemon.stop() == 0, daemon.log()
    finally:
        subprocess.run(["umount", str(blobs)], check=True)
