from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.helpers import make_config
from ticketd.clock import FixedClock
from ticketd.state import State, open_state

pytest_plugins = ["tests.daemon", "tests.pg", "tests.dovecot", "tests.clamd"]


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 11, 23, 9, 0, tzinfo=UTC))


@pytest.fixture
def state(tmp_path: Path, clock: FixedClock) -> Iterator[State]:
    """ticketd's state on SQLite on disk, with a clock the test moves."""
    opened = open_state(make_config(tmp_path), clock=clock)
    yield opened
    opened.close()
