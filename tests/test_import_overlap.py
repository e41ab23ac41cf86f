"""`ticketd import` stores every message, then processes them (issue 19): processing beside
the storing threads ran at half its speed, and the whole took longer. Every message ends as a
ticket, and an error while storing reaches the caller with what it had read journaled."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from ingest import importer
from ingest.importer import import_path
from ingest.journal import Arrival, Journal
from ingest.worker import Worker
from storage.models import JournalEntry
from tests.helpers import customer_mail
from ticketd.state import State

MESSAGES = 100


def _folder(tmp_path: Path, count: int = MESSAGES) -> Path:
    folder = tmp_path / "eski"
    folder.mkdir()
    for number in range(count):
        raw = customer_mail(sender=f"musteri{number}@example.net", subject=f"Talep {number}")
        (folder / f"{number:04d}.eml").write_bytes(raw)
    return folder


def _journaled(state: State) -> int:
    with state.db.read() as session:
        return int(session.scalar(select(func.count()).select_from(JournalEntry)) or 0)


def test_the_import_stores_every_message_before_it_processes_one(
    state: State, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer, "BATCH_MESSAGES", 4)  # many batches: none processed early
    folder = _folder(tmp_path)
    stored_when_processed: list[int] = []
    process_run = Worker.process_run

    def watched(worker: Worker, *args: Any) -> list[Any]:
        results = process_run(worker, *args)
        if results:
            stored_when_processed.append(_journaled(state))
        return results

    # On the classes: State makes a Journal and a Worker each time it is asked for one.
    monkeypatch.setattr(Worker, "process_run", watched)
    summary = import_path(state, folder, acknowledge=False, process=True, progress=False)
    assert summary["stored"] == MESSAGES and summary.get("done") == MESSAGES, summary
    assert stored_when_processed and set(stored_when_processed) == {MESSAGES}


def test_an_error_while_storing_reaches_the_caller_and_loses_nothing_read(
    state: State, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer, "BATCH_MESSAGES", 4)
    folder = _folder(tmp_path, 12)
    accept_many = Journal.accept_many
    calls = 0

    def failing_third(journal: Journal, arrivals: list[Arrival]) -> list[tuple[int, bool]]:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("the disk went away")
        return accept_many(journal, arrivals)

    monkeypatch.setattr(Journal, "accept_many", failing_third)
    with pytest.raises(RuntimeError, match="the disk went away"):
        import_path(state, folder, acknowledge=False, process=True, progress=False)
    assert _journaled(state) == 8  # the two batches before the failure, kept
    state.worker.drain()  # what the import did not process is the daemon's to process
    with state.db.read() as session:
        states = session.scalars(select(JournalEntry.state)).all()
    assert states == ["done"] * 8, states
