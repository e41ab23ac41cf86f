"""The worker gives way to the SMTP listener (ticketd/daemon.py `give_way`, issue 19): while
the listener is storing mail the worker waits before its next message, for a bounded share of
what its last message took, and goes on at once when the listener is quiet or the daemon stops."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from ingest.smtp_listener import IntakeHandler
from ticketd import daemon as daemon_module
from ticketd.daemon import Daemon
from ticketd.state import State


@pytest.fixture
def daemon(state: State) -> Iterator[Daemon]:
    made = Daemon(state)
    made.handler = IntakeHandler(state.journal, ("destek@example.com",), state.clock, "mx.test")
    yield made
    if made.state.isolation is not None:
        made.state.isolation.close()


def _timed(daemon: Daemon, spent: float, meanwhile: float | None = None) -> float:
    """Seconds `give_way(spent)` took; with `meanwhile`, the listener's storing ends (or the
    daemon stops, see the callers) that many seconds in."""

    async def run() -> float:
        began = time.monotonic()
        await daemon.give_way(spent)
        return time.monotonic() - began

    return asyncio.run(run())


def test_a_quiet_listener_costs_the_worker_nothing(daemon: Daemon) -> None:
    assert daemon.handler is not None
    daemon.handler.last_stored = time.monotonic() - 1.0  # the last 250 a second ago
    assert _timed(daemon, spent=0.05) < 0.01


def test_while_the_listener_stores_the_worker_waits_a_share_of_its_last_message(
    daemon: Daemon,
) -> None:
    assert daemon.handler is not None
    daemon.handler.in_flight = 1  # a session's message is being stored, for all of the test
    waited = _timed(daemon, spent=0.01)
    assert 0.01 * daemon_module.GIVE_WAY_SHARE * 0.9 <= waited < 0.5


def test_the_wait_is_bounded_however_long_the_last_message_took(daemon: Daemon) -> None:
    assert daemon.handler is not None
    daemon.handler.in_flight = 1
    waited = _timed(daemon, spent=30.0)  # a slow message must not stall the worker for minutes
    assert daemon_module.GIVE_WAY_MOST * 0.9 <= waited < daemon_module.GIVE_WAY_MOST + 0.3


def test_a_message_just_stored_counts_as_storing(daemon: Daemon) -> None:
    assert daemon.handler is not None
    daemon.handler.last_stored = time.monotonic()  # a 250 this moment: more may follow
    waited = _timed(daemon, spent=1.0)
    # It ends once GIVE_WAY_QUIET passed with nothing stored, well before its bound.
    assert daemon_module.GIVE_WAY_QUIET * 0.9 <= waited < daemon_module.GIVE_WAY_MOST * 0.6


def test_the_worker_goes_on_once_the_listener_is_done_or_the_daemon_stops(
    daemon: Daemon,
) -> None:
    handler = daemon.handler
    assert handler is not None

    async def ends_storing() -> float:
        handler.in_flight = 1
        began = time.monotonic()
        waiting = asyncio.create_task(daemon.give_way(10.0))
        await asyncio.sleep(0.05)
        handler.in_flight = 0
        handler.last_stored = time.monotonic() - 1.0
        await waiting
        return time.monotonic() - began

    async def stops() -> float:
        handler.in_flight = 1
        began = time.monotonic()
        waiting = asyncio.create_task(daemon.give_way(10.0))
        await asyncio.sleep(0.05)
        daemon.stopping.set()
        await waiting
        return time.monotonic() - began

    assert asyncio.run(ends_storing()) < 0.2
    assert asyncio.run(stops()) < 0.2
