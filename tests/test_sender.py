"""The sender against a real SMTP relay: 4xx retries with backoff, 5xx is recorded."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from domain.clock import FixedClock
from domain.config import HostPort
from ingest.journal import Arrival
from outbound.sender import Sender
from outbound.transports import make_transport
from tests.daemon import Relay
from tests.helpers import customer_mail, free_port, make_config
from ticketd.state import State, open_state
from ticketd.views import list_outbox, list_tickets, show_ticket


def relay_state(tmp_path: Path, relay: Relay, clock: FixedClock) -> State:
    config = make_config(tmp_path, extra=f'[smtp_out]\nrelay = "127.0.0.1:{relay.port}"\n')
    state = open_state(config, clock=clock)
    state.journal.accept(Arrival(raw=customer_mail(), source="test"))
    [processed] = state.worker.drain()
    assert processed.state == "done"
    return state


def sender_for(state: State) -> Sender:
    return Sender(state.db, make_transport(state.config.smtp_out), state.clock)


def test_temporary_failure_retries_with_backoff_then_delivers_once(
    tmp_path: Path, relay: Relay, clock: FixedClock
) -> None:
    state = relay_state(tmp_path, relay, clock)
    relay.handler.replies = ["451 4.3.0 try later", "421 4.4.2 busy"]
    sender = sender_for(state)
    try:
        [first] = asyncio.run(sender.send_due())
        assert first.state == "queued" and "451" in first.detail
        assert asyncio.run(sender.send_due()) == []  # not due yet: backoff
        clock.advance(timedelta(seconds=61))
        [second] = asyncio.run(sender.send_due())
        assert second.state == "queued" and "421" in second.detail
        clock.advance(timedelta(seconds=61))
        assert asyncio.run(sender.send_due()) == []  # the second delay is longer
        clock.advance(timedelta(seconds=60))
        [third] = asyncio.run(sender.send_due())
        assert third.state == "sent"
        assert len(relay.handler.messages()) == 1
        clock.advance(timedelta(hours=2))
        assert asyncio.run(sender.send_due()) == []
        [row] = list_outbox(state.db)
        assert row["state"] == "sent" and row["attempts"] == 3
    finally:
        state.close()


def test_permanent_failure_is_recorded_on_the_ticket(
    tmp_path: Path, relay: Relay, clock: FixedClock
) -> None:
    state = relay_state(tmp_path, relay, clock)
    relay.handler.replies = ["550 5.1.1 mailbox unavailable"]
    try:
        [result] = asyncio.run(sender_for(state).send_due())
        assert result.state == "failed"
        [row] = list_outbox(state.db)
        assert row["state"] == "failed" and "550" in row["last_error"]
        ticket = show_ticket(state.db, only_ticket_ref(state))
        assert ticket is not None
        system = [m for m in ticket["messages"] if m["kind"] == "system"]
        assert len(system) == 1 and "550 5.1.1" in system[0]["text"]
        assert ticket["messages"][1]["delivery"]["state"] == "failed"
    finally:
        state.close()


def test_relay_down_keeps_mail_queued_until_it_gives_up(
    tmp_path: Path, relay: Relay, clock: FixedClock
) -> None:
    state = relay_state(tmp_path, relay, clock)
    closed_port = free_port()  # nothing listens there: connection refused
    down = replace(state.config.smtp_out, relay=HostPort("127.0.0.1", closed_port))
    sender = Sender(state.db, make_transport(down), clock)
    try:
        [result] = asyncio.run(sender.send_due())
        assert result.state == "queued"
        clock.advance(timedelta(days=5, minutes=1))
        [final] = asyncio.run(sender.send_due())
        assert final.state == "failed"
    finally:
        state.close()


def only_ticket_ref(state: State) -> str:
    [ticket] = list_tickets(state.db)
    ref: str = ticket["ref"]
    return ref
