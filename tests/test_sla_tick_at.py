"""`sla tick --at TIME` decides as of TIME but its mail goes now (issue 15, point 6): a tick in
the future sends the reminders it settles, and says how many in plain words."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.daemon import DaemonProcess, Relay, daemon_config
from tests.helpers import DESK, customer_mail
from tests.test_agents import AGENT, TEAM, send, text_of, wait_for_mail


def test_a_tick_at_a_later_time_sends_its_reminders_now(tmp_path: Path, relay: Relay) -> None:
    daemon = DaemonProcess(daemon_config(tmp_path, relay.port, extra=TEAM))
    daemon.start()
    try:
        customer = "can@example.net"
        send(daemon.port, customer_mail(sender=customer, subject="Para çekme"), customer, DESK)
        wait_for_mail(relay, AGENT, 1, "(notification)")
        # 40 hours on: past 75 % of the 48-hour first answer, a reminder is due.
        later = (datetime.now(UTC) + timedelta(hours=40)).strftime("%Y-%m-%dT%H:%M:%S")
        command = [sys.executable, "-m", "ticketd.cli", "--config", str(daemon.config_path)]
        tick = subprocess.run(
            [*command, "sla", "tick", "--at", later],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert tick.returncode == 0, tick.stderr
        assert tick.stdout.splitlines()[-1] == "1 due SLA event settled", tick.stdout
        reminder = wait_for_mail(relay, AGENT, 2, "(the reminder, sent now)", timeout=20)[-1]
        assert "first" in text_of(reminder).lower() or "ilk" in text_of(reminder).lower()
    finally:
        assert daemon.stop() == 0
