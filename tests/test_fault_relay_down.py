"""Issue 10, the relay down for an hour: the outbox waits, then delivers everything, once.

The sender runs its real retry schedule against a port where nothing listens (connection
refused), minute by minute of a FixedClock through an hour, with more mail queued during the
outage; then a relay starts on that port and every mail arrives exactly once.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from pathlib import Path

from aiosmtpd.controller import Controller

from domain.clock import FixedClock
from ingest.journal import Arrival
from outbound.retry import RetryPolicy
from outbound.sender import Sender
from outbound.transports import make_transport
from tests.daemon import RelayHandler
from tests.helpers import customer_mail, free_port, make_config
from ticketd.state import State, open_state
from ticketd.views import list_outbox


def _customer_writes(state: State, number: int) -> None:
    raw = customer_mail(
        sender=f"Müşteri {number} <musteri{number}@example.net>",
        subject=f"Talep {number}",
        message_id=f"<outage-{number}@example.net>",
    )
    state.journal.accept(Arrival(raw=raw, source="test"))
    assert [r.state for r in state.worker.drain()] == ["done"]


def _states(state: State) -> Counter[str]:
    return Counter(row["state"] for row in list_outbox(state.db))


def test_relay_down_for_an_hour_then_everything_is_delivered_once(
    tmp_path: Path, clock: FixedClock
) -> None:
    port = free_port()  # the relay's address; nothing listens there during the outage
    config = make_config(tmp_path, extra=f'[smtp_out]\nrelay = "127.0.0.1:{port}"\n')
    state = open_state(config, clock=clock)
    sender = Sender(state.db, make_transport(config.smtp_out), clock)
    # The give-up horizon is days, as an MTA's: an hour's outage is far inside it.
    assert sender.policy.give_up_after == RetryPolicy().give_up_after >= timedelta(days=1)
    try:
        for number in range(5):
            _customer_writes(state, number)
        attempts = 0
        for minute in range(61):
            if minute == 30:  # mail keeps coming in during the outage
                _customer_writes(state, 5)
            results = asyncio.run(sender.send_due())
            attempts += len(results)
            assert all(r.state == "queued" for r in results), results
            clock.advance(timedelta(minutes=1))
        # Retried with backoff all hour (at minutes 0, 1, 3, 7, 15, 31 for the first five) ...
        assert 30 <= attempts <= 45, attempts
        # ... and nothing given up.
        assert _states(state) == {"queued": 6}
        rows = list_outbox(state.db)
        assert all(row["attempts"] >= 4 for row in rows)
        assert all(row["last_error"] for row in rows)

        handler = RelayHandler()
        relay = Controller(handler, hostname="127.0.0.1", port=port)
        relay.start()
        try:
            # The longest wait between two tries is max_delay (an hour): within it, all is sent.
            for _ in range(61):
                asyncio.run(sender.send_due())
                if _states(state) == {"sent": 6}:
                    break
                clock.advance(timedelta(minutes=1))
            assert _states(state) == {"sent": 6}
            clock.advance(timedelta(hours=6))
            assert asyncio.run(sender.send_due()) == []  # nothing left, nothing sent twice
            ids = [m["Message-ID"] for m in handler.messages()]
            recipients = sorted(to for _, rcpts, _ in handler.received for to in rcpts)
        finally:
            relay.stop()
        assert len(ids) == 6 and len(set(ids)) == 6
        assert recipients == sorted(f"musteri{n}@example.net" for n in range(6))
    finally:
        state.close()
