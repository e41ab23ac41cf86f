"""The worker applies a run of messages in one transaction (ingest/worker.py, `process_run`).

One commit (one disk sync) and one write of the tries' marks for the whole run, each message in
a savepoint of its own. What must hold: a message the runner quarantines takes back only its
own writes; a temporary failure after the first commits the ones before it and leaves it first
in line, its try forgotten; a row that stopped the worker is tried alone; a run gives way to
another writer waiting for SQLite's lock, the row in the parsing process taken next; and no row
is counted a try it did not have, whatever ends the run.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError

import ingest.runner
import ingest.worker
from domain.context import Context
from ingest.pipeline import Work
from ingest.runner import Ending
from ingest.worker_stops import IN_WORKER
from storage.models import (
    JOURNAL_DONE,
    JOURNAL_PENDING,
    JOURNAL_QUARANTINED,
    JournalEntry,
    Ticket,
)
from tests.journal_rows import accept_requests, journal_rows
from ticketd.state import State


@pytest.fixture(autouse=True)
def unhurried_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    # A run also ends after RUN_SECONDS (its own test below); on a loaded machine the first
    # message of a test (the parsing process starting, the first imports) takes longer.
    monkeypatch.setattr(ingest.worker, "RUN_SECONDS", 600.0)


@pytest.fixture(params=["in process", "parsing process"])
def desk(request: pytest.FixtureRequest, state: State) -> Iterator[State]:
    if request.param == "parsing process":
        state.isolate()  # as the daemon and `import` parse
    yield state


def _tickets(state: State) -> int:
    with state.db.read() as session:
        return int(session.scalar(select(func.count()).select_from(Ticket)) or 0)


def _commits(state: State) -> list[int]:
    counted = [0]

    def commit(_connection: Any) -> None:
        counted[0] += 1

    event.listen(state.db.engine, "commit", commit)
    return counted


def test_a_run_of_messages_is_one_commit_and_each_try_counts_once(desk: State) -> None:
    ids = accept_requests(desk, 6)
    commits = _commits(desk)
    done = desk.worker.process_run()
    assert [r.journal_id for r in done] == ids
    assert all(r.state == JOURNAL_DONE for r in done)
    # The marks of the six tries in one commit, the six messages in another.
    assert commits[0] == 2
    assert {row[:2] for row in journal_rows(desk).values()} == {(JOURNAL_DONE, 1)}
    assert _tickets(desk) == 6
    assert desk.worker.process_run() == []


def test_a_quarantined_message_takes_back_only_its_own_writes(
    desk: State, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, victim, third = accept_requests(desk, 3)
    walk = ingest.runner.walk

    def fails_after_writing(ctx: Context, work: Work, *args: Any) -> Ending:
        ending = walk(ctx, work, *args)  # the ticket written, as far as the steps go
        if work.entry.id == victim:
            ctx.session.flush()
            return Ending("record", error=RuntimeError("a defect after the ticket was written"))
        return ending

    monkeypatch.setattr(ingest.runner, "walk", fails_after_writing)
    done = desk.worker.process_run()
    assert {r.journal_id: r.state for r in done} == {
        first: JOURNAL_DONE,
        victim: JOURNAL_QUARANTINED,
        third: JOURNAL_DONE,
    }
    assert _tickets(desk) == 2  # the victim's ticket went with its savepoint, no other
    assert "a defect after the ticket was written" in (journal_rows(desk)[victim][2] or "")


def test_a_temporary_failure_after_the_first_commits_those_before_and_keeps_the_order(
    desk: State, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second, third, fourth = accept_requests(desk, 4)
    walk = ingest.runner.walk
    failing = {third}

    def database_busy(ctx: Context, work: Work, *args: Any) -> Ending:
        if work.entry.id in failing:
            raise OperationalError("INSERT", {}, Exception("database is locked"))
        return walk(ctx, work, *args)

    monkeypatch.setattr(ingest.runner, "walk", database_busy)
    done = desk.worker.process_run()
    assert [r.journal_id for r in done] == [first, second]
    rows = journal_rows(desk)
    assert [rows[n][:2] for n in (first, second)] == [(JOURNAL_DONE, 1)] * 2
    # Not tried as far as the counts go: no mark, no attempt, first in line.
    assert rows[third] == (JOURNAL_PENDING, 0, None)
    assert rows[fourth] == (JOURNAL_PENDING, 0, None)
    assert desk.isolation is None or desk.isolation.ahead is None
    # First of the next run, it fails as a first message does: raised, its try counted.
    with pytest.raises(OperationalError):
        desk.worker.process_run()
    rows = journal_rows(desk)
    assert rows[third][:2] == (JOURNAL_PENDING, 1)
    assert rows[fourth] == (JOURNAL_PENDING, 0, None)
    failing.clear()
    assert [r.journal_id for r in desk.worker.drain()] == [third, fourth]
    rows = journal_rows(desk)
    assert rows[third][:2] == (JOURNAL_DONE, 2) and rows[fourth][:2] == (JOURNAL_DONE, 1)


def test_rows_that_stopped_the_worker_are_not_part_of_a_run(desk: State) -> None:
    first, second, stopped, fourth = accept_requests(desk, 4)
    with desk.db.transaction() as session:  # the third stopped the daemon once
        entry = session.get(JournalEntry, stopped)
        assert entry is not None
        entry.reason, entry.attempts = f"{IN_WORKER} 1", 1
    assert [r.journal_id for r in desk.worker.process_run()] == [first, second]
    assert [r.journal_id for r in desk.worker.process_run()] == [stopped]  # alone
    assert [r.journal_id for r in desk.worker.process_run()] == [fourth]
    rows = journal_rows(desk)
    assert rows[stopped][:2] == (JOURNAL_DONE, 2)
    assert [rows[n][:2] for n in (first, second, fourth)] == [(JOURNAL_DONE, 1)] * 3


def test_after_a_kill_every_row_of_the_run_is_tried_alone(desk: State) -> None:
    ids = accept_requests(desk, 3)
    with desk.db.transaction() as session:  # what a SIGKILL in the middle of a run leaves
        for entry in session.scalars(select(JournalEntry)):
            entry.reason, entry.attempts = f"{IN_WORKER} 1", 1
    for expected in ids:
        assert [r.journal_id for r in desk.worker.process_run()] == [expected]
    assert {row[:2] for row in journal_rows(desk).values()} == {(JOURNAL_DONE, 2)}


def test_a_run_gives_way_to_another_writer_and_the_rest_keeps_its_order(
    desk: State, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = accept_requests(desk, 7)
    assert len(ids) > 2 + ingest.worker.PARSE_AHEAD  # some rows are neither taken nor sent ahead
    waiting = type(desk.db).writer_waiting
    monkeypatch.setattr(type(desk.db), "writer_waiting", lambda self: True)
    done = desk.worker.process_run()
    assert [r.journal_id for r in done] == ids[:1]
    rows = journal_rows(desk)
    if desk.isolation is not None:  # the next ones are in the parsing process: taken next
        queued = [c.entry_id for c in desk.isolation.queued]
        assert queued == ids[1 : 1 + ingest.worker.PARSE_AHEAD]
        assert all(rows[n][:2] == (JOURNAL_PENDING, 1) for n in queued)
        rest = ids[1 + len(queued) :]
    else:
        rest = ids[1:]
    assert all(rows[n] == (JOURNAL_PENDING, 0, None) for n in rest)
    monkeypatch.setattr(type(desk.db), "writer_waiting", waiting)
    assert [r.journal_id for r in desk.worker.drain()] == ids[1:]
    assert {row[:2] for row in journal_rows(desk).values()} == {(JOURNAL_DONE, 1)}


def test_a_stop_of_the_daemon_in_a_run_forgets_the_tries_not_reached(state: State) -> None:
    ids = accept_requests(state, 4)
    state.isolate()
    isolation = state.isolation
    assert isolation is not None
    worker = state.worker
    collect = isolation.collect
    collected = [0]

    def stop_after_two() -> object:
        collected[0] += 1
        if collected[0] == 3:
            isolation.close()  # as SIGTERM does, in the middle of the run
        return collect()

    isolation.collect = stop_after_two  # type: ignore[method-assign]
    done = worker.process_run()
    assert [r.journal_id for r in done] == ids[:2]
    rows = journal_rows(state)
    assert all(rows[n] == (JOURNAL_PENDING, 0, None) for n in ids[2:])


def test_the_row_sent_ahead_by_a_single_message_is_the_first_of_the_next_run(
    state: State,
) -> None:
    ids = accept_requests(state, 5)
    state.isolate()
    assert state.isolation is not None
    # One at a time (the daemon while the listener stores a burst) sends the next ahead.
    first = state.worker.process_next()
    assert first is not None and first.journal_id == ids[0]
    assert state.isolation.ahead.entry_id == ids[1]
    commits = _commits(state)
    done = state.worker.process_run()
    assert [r.journal_id for r in done] == ids[1:]
    assert commits[0] == 2  # the marks of the rows after it, then the run
    assert {row[:2] for row in journal_rows(state).values()} == {(JOURNAL_DONE, 1)}
    assert state.isolation.ahead is None


def test_a_run_ends_once_it_has_held_the_lock_for_its_time(
    desk: State, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Writers of other processes (a command, an import beside the daemon) only have SQLite's
    # busy timeout: a run of slow parses must not hold the lock for all of them.
    ids = accept_requests(desk, 4)
    monkeypatch.setattr(ingest.worker, "RUN_SECONDS", -1.0)
    assert [r.journal_id for r in desk.worker.process_run()] == ids[:1]
    monkeypatch.setattr(ingest.worker, "RUN_SECONDS", 600.0)
    assert [r.journal_id for r in desk.worker.drain()] == ids[1:]
    assert {row[:2] for row in journal_rows(desk).values()} == {(JOURNAL_DONE, 1)}
