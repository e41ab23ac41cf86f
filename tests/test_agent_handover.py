"""A new assignee or queue is told, and every applied command leaves a note (issue 15, points 5
and 15): `#ata` and `#kategori` reach the agents who now own the ticket, with its reply address,
and commands sent together with an answer are on the ticket like command-only ones."""

from __future__ import annotations

from pathlib import Path

from tests.daemon import DaemonProcess, Relay, daemon_config
from tests.helpers import DESK, customer_mail
from tests.test_agents import agent_reply, mails_to, send, text_of, wait_for_mail

AYSE, MERT, ZEYNEP = (
    "ayse@destek.example.com",
    "mert@destek.example.com",
    "zeynep@destek.example.com",
)
TEAM = f"""
[[queues]]
name = "odeme"
categories = ["payment"]
[[queues]]
name = "genel"
categories = ["other", "account", "bonus", "technical", "complaint"]
[[queues]]
name = "kimlik"
categories = ["kyc"]

[[agents]]
email = "{AYSE}"
name = "Ayşe Yılmaz"
queues = ["odeme"]
[[agents]]
email = "{MERT}"
name = "Mert Demir"
queues = ["genel"]
[[agents]]
email = "{ZEYNEP}"
name = "Zeynep Kaya"
queues = ["kimlik"]

[agent_replies]
require_authentication = false  # not about sender proof (tests/test_sender_auth.py)
"""


def test_the_new_owner_is_told_and_every_command_is_noted(tmp_path: Path, relay: Relay) -> None:
    daemon = DaemonProcess(daemon_config(tmp_path, relay.port, extra=TEAM))
    daemon.start()
    try:
        customer = "can@example.net"
        body = "Para çekme talebim 3 gündür beklemede."
        send(daemon.port, customer_mail(sender=customer, body=body), customer, DESK)
        [first] = wait_for_mail(relay, AYSE, 1, "(notification)")
        ref = daemon.cli("tickets", "list", "--json")[0]["ref"]
        assert mails_to(relay, MERT) == [] and mails_to(relay, ZEYNEP) == []

        # #ata with an answer: Mert, of another queue, now has it and is told.
        send(
            daemon.port,
            agent_reply(first, AYSE, "#ata Mert\n\nMerhaba, inceliyoruz."),
            AYSE,
            str(first["Reply-To"]),
        )
        [assigned] = wait_for_mail(relay, MERT, 1, "(the new assignee's notification)")
        assert "size Ayşe Yılmaz tarafından atandı" in text_of(assigned)
        assert body in text_of(assigned)  # the customer's last message
        assert str(assigned["Reply-To"]) == str(first["Reply-To"])  # he can answer it

        # #kategori: the ticket moves to the identity queue; its agent is told.
        send(
            daemon.port, agent_reply(first, AYSE, "#kategori kimlik"), AYSE, str(first["Reply-To"])
        )
        [moved] = wait_for_mail(relay, ZEYNEP, 1, "(the new queue's notification)")
        assert "kimlik kuyruğuna taşındı" in text_of(moved)
        shown = daemon.cli("tickets", "show", ref, "--json")
        assert (shown["queue"], shown["assignee"]) == ("kimlik", MERT)
        # Both commands are on the ticket, the one sent with an answer too.
        notes = [m["text"] for m in shown["messages"] if m["kind"] == "system"]
        assert any("#assign mert" in n.lower() for n in notes), notes
        assert any("#category kyc" in n for n in notes), notes
        assert len(mails_to(relay, AYSE)) == 1  # the one who moved it is not told again
    finally:
        assert daemon.stop() == 0
