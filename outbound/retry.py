"""When to try a delivery again: a value object, so the policy is tested on its own."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class RetryPolicy:
    first_delay: timedelta = timedelta(minutes=1)
    factor: float = 2.0
    max_delay: timedelta = timedelta(hours=1)
    # After this long a temporary failure becomes permanent, as an MTA gives up after days.
    give_up_after: timedelta = timedelta(days=5)
    # How long a claimed delivery may take before another sender may try it again.
    lease: timedelta = timedelta(minutes=5)

    def next_attempt(self, attempts: int, now: datetime) -> datetime:
        delay = self.first_delay * (self.factor ** max(attempts - 1, 0))
        return now + min(delay, self.max_delay)

    def gives_up(self, created_at: datetime, now: datetime) -> bool:
        return now - created_at >= self.give_up_after
