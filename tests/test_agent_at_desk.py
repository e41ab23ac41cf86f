"""An agent who writes to the plain desk address is staff, not a customer.

Ayşe, an agent, answered from a fresh mail to destek@ (not to the ticket's agent reply address)
with `RE: [#REF] ...` and `#kapat`: the mail opened a ticket with her as its customer and
participant, and she got the customers' acknowledgement ("Talebiniz alındı"). As the README
says, mail under an agent's From that does not come to the agent reply address is no agent's
act, whatever its proof (an aligned DKIM pass included): its commands never run. But she is not
acknowledged, not made a participant, and the ticket's note says her commands were not applied;
she gets one notice (an automatic mail, under the per-recipient limit) with the agent reply
address of the ticket she named, so her next answer counts.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from domain.clock import FixedClock
from domain.config import load_config
from outbound.addresses import agent_reply_address
from tests.helpers import DESK, customer_mail, free_port, write_config
from tests.test_agents import AGENT, GATEWAY, TEAM, proven
from tests.test_threading import deliver
from ticketd.state import State, open_state
from ticketd.views import list_outbox, list_tickets, show_ticket

CUSTOMER = "musteri@example.net"


@pytest.fixture
def desk(tmp_path: Path, clock: FixedClock) -> Iterator[State]:
    extra = (
        f'[smtp_in]\nlisten = "127.0.0.1:{free_port()}"\n'
        f'trusted_authserv_ids = ["{GATEWAY}"]\nverify_senders = false\n'
        "[agent_replies]\nrequire_authentication = true\n" + TEAM
    )
    opened = open_state(load_config(write_config(tmp_path, extra=extra)), clock=clock)
    yield opened
    opened.close()


def _open(desk: State, clock: FixedClock) -> str:
    result = deliver(desk, customer_mail(sender=CUSTOMER, subject="Para çekme"))
    clock.advance(timedelta(minutes=10))
    return result.detail.split()[1].rstrip(":")


def _agent_mail(ref: str, authentication: str | None) -> bytes:
    headers = {"Authentication-Results": authentication} if authentication else {}
    return customer_mail(
        sender=f"Ayşe Yılmaz <{AGENT}>",
        subject=f"RE: [#{ref}] Para çekme",
        body="#kapat\n\nÖdemeniz yapıldı, talebi kapatıyorum.",
        headers=headers,
    )


@pytest.mark.parametrize("authentication", [None, proven(AGENT)], ids=["unproven", "dkim-pass"])
def test_an_agent_writing_to_the_desk_address_is_not_a_customer(
    desk: State, clock: FixedClock, authentication: str | None
) -> None:
    ref = _open(desk, clock)
    result = deliver(desk, _agent_mail(ref, authentication))
    assert result.state == "done" and "not acknowledged" in result.detail
    # The named ticket is untouched: no command ran, whatever the proof (README, Agents).
    named = show_ticket(desk.db, ref)
    assert named is not None and named["status"] == "open" and named["assignee"] is None
    assert AGENT not in named["participants"]
    [other] = [t for t in list_tickets(desk.db) if t["ref"] != ref]
    kept = show_ticket(desk.db, other["ref"])
    assert kept is not None and kept["participants"] == []
    assert [m["kind"] for m in kept["messages"]] == ["customer", "system"]
    note = str(kept["messages"][1]["text"])
    assert "it is not the agent's" in note
    assert (
        f"Mail from agent {AGENT} to {DESK}, not to the ticket's agent reply address: "
        "commands not applied (#close)." in note
    )
    reply_to = agent_reply_address(desk.config.desk, ref)
    assert f"{AGENT} was told to write to {reply_to} (ticket {ref})." in note
    to_agent = [r for r in list_outbox(desk.db) if r["to"] == AGENT]
    assert "ack" not in [r["kind"] for r in to_agent]  # never the customers' acknowledgement
    [notice] = [r for r in to_agent if r["kind"] == "agent-desk"]
    assert notice["subject"].startswith(f"[#{ref}] ")


def test_the_notice_is_rate_limited(desk: State, clock: FixedClock) -> None:
    ref = _open(desk, clock)
    deliver(desk, _agent_mail(ref, proven(AGENT)))
    clock.advance(timedelta(seconds=30))
    deliver(desk, customer_mail(sender=AGENT, subject=f"Re: [#{ref}] ek", body="#öncelik yüksek"))
    notices = [r for r in list_outbox(desk.db) if r["kind"] == "agent-desk"]
    assert len(notices) == 1
    [second] = [t for t in list_tickets(desk.db) if t["subject"] == f"Re: [#{ref}] ek"]
    shown = show_ticket(desk.db, second["ref"])
    assert shown is not None
    assert f"{AGENT} was not told: rate limit:" in str(shown["messages"][-1]["text"])


def test_a_forged_agent_from_that_fails_dmarc_tells_nobody(desk: State, clock: FixedClock) -> None:
    ref = _open(desk, clock)
    failing = f"{GATEWAY}; dkim=fail header.d=destek.example.com; dmarc=fail"
    failing += " header.from=destek.example.com; spf=fail smtp.mailfrom=destek.example.com"
    deliver(desk, _agent_mail(ref, failing))
    assert [
        r["to"] for r in list_outbox(desk.db) if r["to"] == AGENT and r["kind"] != "notify"
    ] == []
    [other] = [t for t in list_tickets(desk.db) if t["ref"] != ref]
    shown = show_ticket(desk.db, other["ref"])
    assert shown is not None and f"{AGENT} was not told:" in str(shown["messages"][1]["text"])
