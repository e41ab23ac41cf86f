"""Historical import tells no one and its summary counts what this run did (issue 15, point 7):
with the daemon running beside it (processing in parallel), no acknowledgement and no agent
notification go out, the summary's states add up to what it stored, and a second import of the
same file stores nothing again."""

from __future__ import annotations

import json
import mailbox
import subprocess
import sys
import time
from pathlib import Path

from tests.daemon import DaemonProcess, Relay, daemon_config
from tests.helpers import customer_mail
from tests.test_agents import AGENT, TEAM, wait_for_mail


def _import(daemon: DaemonProcess, *args: str) -> dict[str, int]:
    command = [sys.executable, "-m", "ticketd.cli", "--config", str(daemon.config_path)]
    result = subprocess.run(
        [*command, "import", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    summary: dict[str, int] = json.loads(result.stdout)
    return summary


def _mbox(path: Path, count: int, prefix: str) -> Path:
    box = mailbox.mbox(path)
    for number in range(count):
        sender = f"{prefix}{number}@example.net"
        box.add(customer_mail(sender=sender, subject=f"Para çekme {prefix}{number}"))
    box.flush()
    box.close()
    return path


def test_historical_import_beside_the_daemon_tells_no_one(tmp_path: Path, relay: Relay) -> None:
    daemon = DaemonProcess(daemon_config(tmp_path, relay.port, extra=TEAM))
    daemon.start()
    try:
        old = _mbox(tmp_path / "old.mbox", 30, "eski")
        first = _import(daemon, str(old))
        assert (first["found"], first["stored"], first["already_imported"]) == (30, 30, 0)
        # Whoever processed them (this run or the daemon), the states add up to what was stored.
        states = sum(first.get(s, 0) for s in ("done", "ignored", "quarantined", "pending"))
        assert states == 30, first
        daemon.wait_until(lambda: len(daemon.cli("tickets", "list", "--json")) == 30)
        time.sleep(2)  # anything the daemon would send has had time to reach the relay
        assert relay.handler.messages() == []  # no "Yeni talep" to agents, no acknowledgement
        again = _import(daemon, str(old))
        assert (again["found"], again["stored"], again["already_imported"]) == (30, 0, 30), again
        assert len(daemon.cli("tickets", "list", "--json")) == 30
        # Asked to treat it as new mail: customers and agents are told.
        new = _mbox(tmp_path / "new.mbox", 1, "yeni")
        assert _import(daemon, str(new), "--acknowledge")["stored"] == 1
        wait_for_mail(relay, AGENT, 1, "(the notification of mail imported as new)")
        wait_for_mail(relay, "yeni0@example.net", 1, "(its acknowledgement)")
    finally:
        assert daemon.stop() == 0
