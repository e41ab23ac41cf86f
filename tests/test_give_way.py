"""The worker gives way to the SMTP listener (ticketd/daemon.py `give_way`, issue 19): while
the listener is storing mail the worker waits before its next message, for a bounded share of
what its last message took, and goes on at once when the listener is quiet or the daemon stops."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from ingest.smtp_listener import IntakeHandler
from ticketd import give_way as give_way_module
from ticketd.daemon import Daemon
from ticketd.give_way import WaitBudget
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
    assert 0.01 * give_way_module.SHARE * 0.9 <= waited < 0.5


def test_the_wait_is_bounded_however_long_the_last_message_took(daemon: Daemon) -> None:
    assert daemon.handler is not None
    daemon.handler.in_flight = 1
    waited = _timed(daemon, spent=30.0)  # a slow message must not stall the worker for minutes
    assert give_way_module.MOST * 0.9 <= waited < give_way_module.MOST + 0.3


def test_a_message_just_stored_counts_as_storing(daemon: Daemon) -> None:
    assert daemon.handler is not None
    stored = time.monotonic()
    daemon.handler.last_stored = stored  # a 250 this moment: more may follow
    _timed(daemon, spent=1.0)
    # It ends once QUIET passed with nothing stored, well before its bound. Counted from the
    # 250, not from the wait's start: starting the event loop takes some of QUIET already.
    waited = time.monotonic() - stored
    assert give_way_module.QUIET * 0.9 <= waited < give_way_module.MOST * 0.6


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


def test_a_spent_budget_lets_the_worker_go_on_at_once(daemon: Daemon) -> None:
    assert daemon.handler is not None
    daemon.handler.in_flight = 1
    daemon.give_way_budget = WaitBudget(left=0.0, at=0.0, rate=0.0)
    assert _timed(daemon, spent=0.05) < 0.01


def test_the_budget_holds_a_burst_and_refills_at_its_rate() -> None:
    budget = WaitBudget(most=5.0, rate=0.1, left=5.0, at=100.0)
    assert budget.available(100.0) == 5.0
    budget.spend(4.5)
    assert budget.available(100.0) == pytest.approx(0.5)
    assert budget.available(110.0) == pytest.approx(1.5)  # ten seconds later: one more second
    assert budget.available(1000.0) == 5.0  # never more than a burst's worth
    budget.spend(6.0)  # a wait that overran what was left: repaid first
    assert budget.available(1000.0) == pytest.approx(-1.0)
    assert budget.available(1020.0) == pytest.approx(1.0)


def test_under_a_steady_stream_the_worker_loses_at_most_the_budgets_rate(
    daemon: Daemon,
) -> None:
    # The listener storing all the time (a steady stream): over two seconds of messages that
    # each take 10 ms, the waits add up to the burst in the budget plus RATE of the time.
    assert daemon.handler is not None
    daemon.handler.in_flight = 1
    daemon.give_way_budget = WaitBudget(most=0.2, rate=0.1, left=0.2)

    async def run() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        began, waited = loop.time(), 0.0
        daemon.give_way_budget.at = began
        while loop.time() - began < 2.0:
            waited += await daemon.give_way(0.01)
            await asyncio.sleep(0.01)  # the message itself
        return waited, loop.time() - began

    waited, elapsed = asyncio.run(run())
    assert waited <= 0.2 + 0.1 * elapsed + 0.05, (waited, elapsed)
    assert waited >= 0.2  # the burst's worth was used
