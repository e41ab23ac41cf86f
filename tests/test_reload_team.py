"""SIGHUP applies team and SLA changes live and says plainly what changed (issue 15, point 19):
a new agent of a queue is notified of the next ticket without a restart, the log names the
change in the file's terms (no Python objects), and a key that needs a restart says so."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.daemon import DaemonProcess, Relay, daemon_config
from tests.helpers import DESK, customer_mail
from tests.test_agents import mails_to, send, wait_for_mail
from tests.test_service import wait_for_log

ONE = """
[[queues]]
name = "odeme"
categories = ["payment", "other"]

[[agents]]
email = "ayse@destek.example.com"
name = "Ayşe Yılmaz"
queues = ["odeme"]

[sla]
reminders = [0.75]
"""
SECOND = """
[[agents]]
email = "mert@destek.example.com"
name = "Mert Demir"
queues = ["odeme"]
"""


def test_a_new_agent_and_sla_change_apply_on_sighup(tmp_path: Path, relay: Relay) -> None:
    config = daemon_config(tmp_path, relay.port, extra=ONE)
    daemon = DaemonProcess(config)
    daemon.start()
    try:
        assert daemon.process is not None
        text = config.read_text(encoding="utf-8")
        text = text.replace("reminders = [0.75]", "reminders = [0.5, 0.9]")
        text = text.replace("[sla]", SECOND + "\n[sla]\nenabled = false")
        config.write_text(text, encoding="utf-8")
        daemon.process.send_signal(signal.SIGHUP)
        wait_for_log(daemon, "templates re-read")
        log = daemon.log()
        assert "reloaded: no configuration change" not in log
        assert (
            "team.agents [ayse@destek.example.com] -> "
            "[ayse@destek.example.com, mert@destek.example.com]" in log
        ), log
        assert "sla.reminders [0.75] -> [0.5, 0.9]" in log
        assert "need a restart, running values kept: sla.enabled True -> False" in log
        assert "AgentConfig(" not in log and "QueueConfig(" not in log

        customer = "can@example.net"
        send(daemon.port, customer_mail(sender=customer), customer, DESK)
        wait_for_mail(relay, "mert@destek.example.com", 1, "(the new agent's notification)")
        assert len(mails_to(relay, "ayse@destek.example.com")) == 1
    finally:
        assert daemon.stop() == 0
