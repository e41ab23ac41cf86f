"""Calls sent ahead to the parsing process, several at once (ingest/isolation.py, issue 19).

The child works through them in order. A call stopped past its limit, or one the child dies in,
fails alone: the calls queued behind it go to a new child. A queued call's limit starts when the
child can be known to have taken it up, not when it was sent, so waiting behind slow calls does
not count against it.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

from ingest.isolation import CallTimedOut, ChildDied, IsolatedCall


def behave(what: str, seconds: float) -> str:
    """The child's work in these tests: sleep, hang, or die, then say what it was and who."""
    if what == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(seconds)
    return f"{what} in {os.getpid()}"


@pytest.fixture
def isolation() -> Iterator[IsolatedCall]:
    call = IsolatedCall(behave)
    call.start()
    yield call
    call.close()


def test_calls_sent_ahead_come_back_in_order_from_one_child(isolation: IsolatedCall) -> None:
    for n in range(4):
        assert isolation.submit(n, f"call{n}", 0.0, timeout=10)
    assert isolation.queued == (0, 1, 2, 3)
    results = [isolation.collect() for _ in range(4)]
    assert [r.split(" in ")[0] for r in results] == ["call0", "call1", "call2", "call3"]
    assert len({r.split(" in ")[1] for r in results}) == 1  # no restart
    assert not isolation.queued


def test_waiting_behind_slow_calls_does_not_count_against_a_calls_limit(
    isolation: IsolatedCall,
) -> None:
    # Each takes 0.4 s of a 1 s limit; the third waits 0.8 s behind the two before it, so a
    # limit counted from the moment it was sent would stop it.
    for n in range(3):
        isolation.submit(n, f"slow{n}", 0.4, timeout=1.0)
    results = [isolation.collect() for _ in range(3)]
    assert [r.split(" in ")[0] for r in results] == ["slow0", "slow1", "slow2"]


def test_a_call_past_its_limit_fails_alone_and_those_behind_it_get_a_new_child(
    isolation: IsolatedCall,
) -> None:
    isolation.submit("first", "quick", 0.0, timeout=5)
    isolation.submit("hangs", "hang", 60.0, timeout=0.5)
    isolation.submit("after", "quick", 0.0, timeout=5)
    isolation.submit("last", "quick", 0.0, timeout=5)
    first = isolation.collect()
    began = time.monotonic()
    stopped = isolation.collect()
    assert isinstance(stopped, CallTimedOut)
    assert time.monotonic() - began < 3  # the hanging call's own limit, not the 60 s
    after, last = isolation.collect(), isolation.collect()
    assert (after.split(" in ")[0], last.split(" in ")[0]) == ("quick", "quick")
    assert after.split(" in ")[1] == last.split(" in ")[1] != first.split(" in ")[1]


def test_a_child_that_dies_in_a_call_fails_only_that_call(isolation: IsolatedCall) -> None:
    isolation.submit("dies", "die", 0.0, timeout=5)
    isolation.submit("behind", "quick", 0.0, timeout=5)
    isolation.submit("last", "quick", 0.0, timeout=5)
    assert isinstance(isolation.collect(), ChildDied)
    assert isolation.collect().startswith("quick in ")
    assert isolation.collect().startswith("quick in ")


def test_cancel_forgets_every_call_sent_ahead(isolation: IsolatedCall) -> None:
    for n in range(3):
        isolation.submit(n, "hang", 60.0, timeout=60)
    assert isolation.cancel() == (0, 1, 2)
    assert isolation.queued == ()
    began = time.monotonic()
    assert isolation.call("quick", 0.0, timeout=5).startswith("quick in ")
    assert time.monotonic() - began < 5  # a new child, not the one still sleeping


class Counted:
    """A first argument that counts, in the parent, how often it is pickled."""

    pickled = 0

    def __init__(self, value: str) -> None:
        self.value = value

    def __reduce__(self) -> tuple[object, tuple[str]]:
        Counted.pickled += 1
        return (Counted, (self.value,))


def echo(first: Counted, what: str) -> str:
    if what == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    return f"{first.value} {what} in {os.getpid()}"


def test_the_same_first_argument_is_sent_to_a_child_once() -> None:
    """The worker's configuration, most of each call's pickle, crosses the pipe once per child
    (issue 19); another object is sent again, and so is the same one to a new child."""
    isolation = IsolatedCall(echo)
    config, newer = Counted("config"), Counted("reloaded")
    Counted.pickled = 0
    try:
        first = isolation.call(config, "one", timeout=10)
        assert isolation.call(config, "two", timeout=10).split(" in ")[0] == "config two"
        for n in range(3):
            assert isolation.submit(n, config, f"ahead{n}", timeout=10)
        ahead = [isolation.collect() for _ in range(3)]
        assert [r.split(" in ")[0] for r in ahead] == [
            "config ahead0",
            "config ahead1",
            "config ahead2",
        ]
        assert Counted.pickled == 1
        assert isolation.call(newer, "three", timeout=10).startswith("reloaded three")
        assert Counted.pickled == 2
        assert isinstance(isolation.call(newer, "die", timeout=10), ChildDied)
        again = isolation.call(newer, "four", timeout=10)
        assert again.startswith("reloaded four")  # the new child was given it again
        assert again.split(" in ")[1] != first.split(" in ")[1]
    finally:
        isolation.close()
