"""The service unit verifies and is hardened; the daemon speaks systemd's notify protocol."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.daemon import DaemonProcess, Relay, daemon_config

UNIT = Path(__file__).resolve().parents[1] / "systemd" / "ticketd.service"
needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


def unit_for_this_machine(tmp_path: Path) -> Path:
    # verify checks that ExecStart exists: point it at this checkout's ticketd.
    ticketd = Path(sys.executable).with_name("ticketd")
    unit = tmp_path / "ticketd.service"
    unit.write_text(UNIT.read_text().replace("/opt/ticketd/bin/ticketd", str(ticketd)))
    return unit


@needs_systemd_analyze
def test_unit_verifies_without_a_single_remark(tmp_path: Path) -> None:
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit_for_this_machine(tmp_path))],
        capture_output=True,
        text=True,
    )
    # verify exits 0 even for unknown keys: any output is a failure.
    assert result.returncode == 0 and result.stdout + result.stderr == ""


@needs_systemd_analyze
def test_unit_is_hardened(tmp_path: Path) -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(unit_for_this_machine(tmp_path))],
        capture_output=True,
        text=True,
    )
    score = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
    assert score is not None, result.stdout + result.stderr
    assert float(score.group(1)) <= 2.0, result.stdout


def test_unit_bounds_the_memory_of_the_daemon_and_its_parsing_process() -> None:
    # Issue 22: 100 sessions of 24 MB took the daemon to 3.4 GB; the unit sets a ceiling above
    # what the listener may hold ([smtp_in] max_buffered_bytes) and what a parse takes.
    settings = dict(
        line.split("=", 1)
        for line in UNIT.read_text().splitlines()
        if "=" in line and line[0] != "#"
    )
    assert settings.get("MemoryMax") == "2G"
    assert settings.get("MemoryHigh") == "1536M"


def test_daemon_reports_ready_pings_the_watchdog_and_says_stopping(
    tmp_path: Path, relay: Relay, monkeypatch: pytest.MonkeyPatch
) -> None:
    address = f"/tmp/ticketd-notify-{os.getpid()}-{time.monotonic_ns()}.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(address)
    listener.settimeout(20)
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    monkeypatch.setenv("WATCHDOG_USEC", "300000")
    daemon = DaemonProcess(daemon_config(tmp_path, relay.port))
    try:
        daemon.start()
        first = listener.recv(4096).decode()
        assert "READY=1" in first and "listening on" in first
        # The listener is bound by the time READY is sent.
        socket.create_connection(("127.0.0.1", daemon.port), timeout=2).close()
        pings = [listener.recv(4096).decode() for _ in range(3)]
        assert all(p == "WATCHDOG=1" for p in pings)
        assert daemon.process is not None
        daemon.process.send_signal(signal.SIGTERM)
        messages: list[str] = []
        while "STOPPING=1" not in "".join(messages):
            messages.append(listener.recv(4096).decode())
        assert daemon.stop() == 0
    finally:
        listener.close()
        os.unlink(address)
        if daemon.process is not None:
            daemon.stop()
