"""The worker gives way to the SMTP listener during a burst (issue 19).

Worker and listener share one interpreter lock, and two cores with the parsing process: at full
speed the worker halved what the listener accepted, and each session waited the longer for its
250. So while the listener is storing mail (a message being stored, or one stored less than
QUIET seconds ago) the worker waits before its next message: up to SHARE times what its last
message took, never more than MOST at once. What waits is durable in the journal already.

The waits come out of a budget (`WaitBudget`): at most BURST seconds in all, refilled at RATE
seconds a second. A burst is answered first and processed after; under a steady stream, which
keeps the listener storing most of the time, the worker loses at most RATE of its time, so it
keeps up with any stream it could keep up with before. Without the budget a steady 40 messages
a second (a third under the worker's pace here) built a backlog of 800 in 30 s.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

QUIET = 0.02  # seconds after a message was stored that the listener still counts as busy
SHARE = 10.0  # times the worker's last message, waited at most
MOST = 0.5  # seconds waited at most before one message
BURST = 5.0  # seconds of waiting the budget holds
RATE = 0.1  # seconds of waiting the budget gains each second
POLL = 0.005  # how often the wait looks at the listener


class Listener(Protocol):
    def storing(self, quiet: float) -> bool: ...


@dataclass
class WaitBudget:
    """Seconds the worker may still spend giving way: at most `most`, refilled at `rate`
    seconds a second since `at` (the event loop's clock); below 0 after a wait that overran."""

    most: float = BURST
    rate: float = RATE
    left: float = BURST
    at: float = 0.0

    def available(self, now: float) -> float:
        self.left = min(self.most, self.left + max(0.0, now - self.at) * self.rate)
        self.at = now
        return self.left

    def spend(self, seconds: float) -> None:
        self.left -= seconds  # below 0 when a wait overran: repaid before the next one


async def give_way(
    listener: Listener | None, budget: WaitBudget, spent: float, stopping: asyncio.Event
) -> float:
    """Wait while `listener` is storing mail, within the budget and at most `spent` x SHARE
    (the worker's last message took `spent` seconds) and MOST; the seconds waited."""
    if listener is None or not listener.storing(QUIET):
        return 0.0
    loop = asyncio.get_running_loop()
    began = loop.time()
    allowed = min(spent * SHARE, MOST, budget.available(began))
    if allowed < POLL:
        return 0.0  # a wait shorter than a poll overruns itself: save up for a longer one
    until = began + allowed
    while listener.storing(QUIET) and not stopping.is_set():
        left = until - loop.time()
        if left <= 0:
            break
        await asyncio.sleep(min(POLL, left))  # never past the bound: the budget is exact
    waited = loop.time() - began
    budget.spend(waited)
    return waited
