"""The worker parses the next message while it applies the current one (ingest/worker.py).

With a parsing process on SQLite, applying a message first claims the next pending row, writes
down its try and sends it to the parsing process: the row sent ahead is the next one applied,
its try counts once, and a stop of the daemon or a temporary failure of the message before it
forgets that try (it was not the message's doing), so no row gets a stop it did not cause and
the journal's order holds.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.exc import OperationalError

from ingest.runner import Runner
from ingest.worker_stops import IN_WORKER
from storage.models import JOURNAL_DONE, JOURNAL_PENDING, JournalEntry
from tests.journal_rows import accept_requests, journal_rows
from ticketd.state import State


@pytest.fixture
def isolated(state: State) -> Iterator[State]:
    state.isolate()  # as the daemon and `import` parse: in the parsing process
    yield state


def test_the_next_row_is_parsed_while_one_is_applied_and_each_try_counts_once(
    isolated: State,
) -> None:
    first, second, third = accept_requests(isolated, 3)
    worker = isolated.worker
    done = worker.process_next()
    assert done is not None and done.journal_id == first and done.state == JOURNAL_DONE
    # The second row is in the parsing process already, its try written down.
    assert isolated.isolation is not None and isolated.isolation.ahead.entry_id == second
    state, attempts, reason = journal_rows(isolated)[second]
    assert (state, attempts) == (JOURNAL_PENDING, 1)
    assert reason is not None and reason.startswith(f"{IN_WORKER} 1")
    # A fresh worker (the daemon makes one per message, for SIGHUP) takes it next, in order.
    assert [r.journal_id for r in isolated.worker.drain()] == [second, third]
    rows = journal_rows(isolated)
    assert [rows[n][:2] for n in (first, second, third)] == [(JOURNAL_DONE, 1)] * 3
    assert isolated.isolation.ahead is None


def test_a_row_sent_ahead_and_not_tried_is_not_a_stop(isolated: State) -> None:
    first, second = accept_requests(isolated, 2)
    isolated.worker.process_next()
    assert journal_rows(isolated)[second][1] == 1
    isolated.close()  # as the daemon and the commands end
    assert journal_rows(isolated)[second] == (JOURNAL_PENDING, 0, None)
    assert journal_rows(isolated)[first][0] == JOURNAL_DONE


def test_rows_that_stopped_the_worker_are_tried_alone(isolated: State) -> None:
    _, second, third = accept_requests(isolated, 3)
    with isolated.db.transaction() as session:  # the second stopped the daemon once
        entry = session.get(JournalEntry, second)
        assert entry is not None
        entry.reason, entry.attempts = f"{IN_WORKER} 1", 1
    assert isolated.isolation is not None
    isolated.worker.process_next()
    assert isolated.isolation.ahead is None  # not sent ahead beside the first
    isolated.worker.process_next()
    assert isolated.isolation.ahead is None  # and nothing sent ahead beside it
    assert journal_rows(isolated)[second][:2] == (JOURNAL_DONE, 2)
    assert journal_rows(isolated)[third][1] == 0
    isolated.worker.drain()
    assert journal_rows(isolated)[third][:2] == (JOURNAL_DONE, 1)


def test_a_temporary_failure_forgets_the_row_sent_ahead_and_keeps_the_order(
    isolated: State, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = accept_requests(isolated, 2)
    applied = Runner.apply

    def database_gone(self: Runner, entry_id: int, prepared: object) -> None:
        raise OperationalError("UPDATE", {}, Exception("disk I/O error"))

    monkeypatch.setattr(Runner, "apply", database_gone)
    with pytest.raises(OperationalError):
        isolated.worker.process_next()
    assert isolated.isolation is not None and isolated.isolation.ahead is None
    assert journal_rows(isolated)[second] == (JOURNAL_PENDING, 0, None)
    monkeypatch.setattr(Runner, "apply", applied)
    # The first goes first again (its failed try counted, as a stop would be).
    assert [r.journal_id for r in isolated.worker.drain()] == [first, second]
    assert journal_rows(isolated)[first][:2] == (JOURNAL_DONE, 2)
    assert journal_rows(isolated)[second][:2] == (JOURNAL_DONE, 1)
