from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import settings

from domain.clock import FixedClock
from domain.config import load_config
from tests.helpers import make_config, write_config
from ticketd.state import State, open_state

# CI runs the property tests on hypothesis's fixed seed, so that a landing never hangs on a new
# random draw; a developer's run draws new examples each time (and keeps what fails in
# .hypothesis/). A failure found either way becomes an @example beside its test.
settings.register_profile("ci", derandomize=True, database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

pytest_plugins = [
    "tests.daemon",
    "tests.pg",
    "tests.dovecot",
    "tests.clamd",
    "tests.oauth_server",
    "tests.rspamd",
    "tests.web",
]


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 11, 23, 9, 0, tzinfo=UTC))


@pytest.fixture
def state(tmp_path: Path, clock: FixedClock) -> Iterator[State]:
    """ticketd's state on SQLite on disk, with a clock the test moves."""
    opened = open_state(make_config(tmp_path), clock=clock)
    yield opened
    opened.close()


@pytest.fixture
def kyc_config(tmp_path: Path) -> Path:
    """A configuration with an identity queue and its agent (tests/test_kyc.py's TEAM)."""
    from tests.test_kyc import TEAM

    return write_config(tmp_path, extra=TEAM)


@pytest.fixture
def kyc_state(kyc_config: Path, clock: FixedClock) -> Iterator[State]:
    """ticketd's state on `kyc_config`, with a clock the test moves."""
    opened = open_state(load_config(kyc_config), clock=clock)
    yield opened
    opened.close()
