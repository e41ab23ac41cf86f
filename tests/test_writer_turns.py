"""The writers of one process queue for SQLite's write lock in order (storage/turns.py), and
the SMTP listener's rows that arrive together commit together (ingest/journal_group.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from functools import partial

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from ingest.journal import Arrival, Journal, StorageFailure
from ingest.journal_group import Group
from storage.journal_table import JOURNAL
from storage.turns import Turns
from tests.helpers import customer_mail
from ticketd.state import State


def _start(target: Callable[..., object], *args: object) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def _wait_for(condition: Callable[[], bool]) -> None:
    done = threading.Event()
    for _ in range(2000):
        if condition():
            return
        done.wait(0.005)
    raise AssertionError("the condition never held")


def test_writers_take_their_turns_in_the_order_they_came() -> None:
    turns = Turns()
    order: list[int] = []
    waiting: list[int] = []

    def writer(n: int) -> None:
        waiting.append(n)
        with turns.turn():
            order.append(n)

    with turns.turn():
        threads = []
        for n in range(5):  # each one queued before the next starts
            threads.append(_start(writer, n))
            _wait_for(partial(_queued, waiting, turns, n + 1))
        with turns.turn():  # the holder may nest (SQLite decides what the inner one gets)
            pass
    for thread in threads:
        thread.join(timeout=10)
    assert order == [0, 1, 2, 3, 4]


def _queued(waiting: list[int], turns: Turns, count: int) -> bool:
    return len(waiting) == count and len(turns._waiting) == count


def test_a_turn_handed_over_is_not_taken_by_a_thread_that_came_later() -> None:
    turns = Turns()
    order: list[str] = []
    with turns.turn():
        first = _start(lambda: _hold(turns, order, "queued"))
        _wait_for(lambda: len(turns._waiting) == 1)
    with turns.turn():  # came after the handover: waits for the one queued before
        order.append("later")
    first.join(timeout=10)
    assert order == ["queued", "later"]


def _hold(turns: Turns, order: list[str], name: str) -> None:
    with turns.turn():
        order.append(name)


def test_rows_queued_while_the_leader_waits_commit_with_it() -> None:
    writes: list[list[int]] = []
    gate = threading.Event()

    def write(take: Callable[[], Sequence[int]]) -> list[int]:
        gate.wait(10)  # the leader waits for its turn; the others queue meanwhile
        items = list(take())
        writes.append(items)
        return [item * 10 for item in items]

    group: Group[int, int] = Group(write)
    results: dict[int, int] = {}
    threads = [_start(lambda n: results.__setitem__(n, group.add(n)), n) for n in range(6)]
    _wait_for(lambda: len(group._queue) == 6)
    gate.set()
    for thread in threads:
        thread.join(timeout=10)
    assert results == {n: n * 10 for n in range(6)}
    assert len(writes) == 1 and sorted(writes[0]) == list(range(6))


def test_a_failed_commit_fails_every_row_in_it_and_the_next_ones_go_on() -> None:
    calls = 0

    def write(take: Callable[[], Sequence[int]]) -> list[int]:
        nonlocal calls
        calls += 1
        items = list(take())
        if calls == 1:
            raise StorageFailure("disk full")
        return items

    group: Group[int, int] = Group(write)
    with pytest.raises(StorageFailure, match="disk full"):
        group.add(1)
    assert group.add(2) == 2  # the lead was given back: the next row is written


def test_listener_rows_accepted_together_are_each_journaled_once(state: State) -> None:
    journal = state.journal
    ids: list[int] = []
    lock = threading.Lock()

    def accept(n: int) -> None:
        raw = customer_mail(subject=f"Talep {n}", body=f"Siparişim {n} gelmedi")
        journal_id = journal.accept_together(Arrival(raw=raw, source="smtp:127.0.0.1"))
        with lock:
            ids.append(journal_id)

    threads = [_start(accept, n) for n in range(12)]
    for thread in threads:
        thread.join(timeout=30)
    assert len(set(ids)) == 12
    with state.db.read() as session:
        assert session.scalar(select(func.count()).select_from(JOURNAL)) == 12
    assert len(state.worker.drain()) == 12


def test_a_listener_row_whose_commit_fails_is_not_accepted(
    state: State, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = state.journal

    def disk_full(*_: object) -> None:
        raise OperationalError("INSERT", {}, Exception("database or disk is full"))

    monkeypatch.setattr(Journal, "_row", disk_full)
    with pytest.raises(StorageFailure, match="disk is full"):
        journal.accept_together(Arrival(raw=customer_mail(), source="smtp:127.0.0.1"))
    with state.db.read() as session:
        assert session.scalar(select(func.count()).select_from(JOURNAL)) == 0
