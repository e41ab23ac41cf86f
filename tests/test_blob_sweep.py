"""The orphan sweep: blobs left by transactions that rolled back go, once past the grace period;
referenced blobs and young ones stay, and a blob a writer is reusing is never taken."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

import storage.sweep
from domain.clock import FixedClock
from domain.config import load_config
from ingest.journal import Arrival, StorageFailure
from storage.models import JOURNAL_QUARANTINED, Document, JournalEntry
from storage.sweep import sweep
from tests.helpers import customer_mail, write_config
from tests.test_kyc import JPEG, PDF, TEAM, kyc_mail
from ticketd import maintenance_service
from ticketd.state import State, open_state

DAYS = 86400.0


def _files(state: State) -> set[str]:
    return {p.name for p in state.config.storage.blobs.rglob("*") if p.is_file()}


def _age(state: State, names: set[str], days: float) -> None:
    moment = time.time() - days * DAYS
    for name in names:
        os.utime(state.blobs.path_for(name), (moment, moment))


def _referenced(state: State) -> set[str]:
    with state.db.read() as session:
        keys = set(session.scalars(select(JournalEntry.blob_key)))
        keys |= {k for k in session.scalars(select(Document.blob_key)) if k is not None}
    return keys


def _rolled_back_documents(state: State, monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """A kyc message whose transaction rolls back after its documents were sealed to disk."""

    def mail_fails(*args: Any, **kwargs: Any) -> str:
        raise RuntimeError("the receipt could not be queued")

    with monkeypatch.context() as patch:
        patch.setattr("ingest.documents_step.queue_automatic", mail_fails)
        state.journal.accept(
            Arrival(
                raw=kyc_mail(
                    [("kimlik.jpg", "image/jpeg", JPEG), ("a.pdf", "application/pdf", PDF)]
                ),
                source="test",
            )
        )
        [result] = state.worker.drain()
    assert result.state == JOURNAL_QUARANTINED and "receipt could not be queued" in result.detail
    with state.db.read() as session:
        assert session.scalars(select(Document)).all() == []  # rolled back with the message
    orphans = _files(state) - _referenced(state)
    assert len(orphans) == 2  # the two sealed documents, on disk, named by nothing
    return orphans


def test_the_sweep_removes_rolled_back_blobs_and_keeps_referenced_and_young_ones(
    kyc_state: State, monkeypatch: pytest.MonkeyPatch
) -> None:
    documents = _rolled_back_documents(kyc_state, monkeypatch)
    # The journal: its blob written, then the commit of its row fails.
    failing_raw = customer_mail(subject="veritabanı gitti")
    with monkeypatch.context() as patch:

        def no_database() -> Any:
            raise ConnectionError("database unreachable")

        patch.setattr(kyc_state.db, "connect", no_database)  # the journal's transaction
        with pytest.raises(StorageFailure):
            kyc_state.journal.accept(Arrival(raw=failing_raw, source="test"))
    journal_orphan = hashlib.sha256(failing_raw).hexdigest()
    assert journal_orphan in _files(kyc_state) - _referenced(kyc_state)
    referenced = _referenced(kyc_state)

    # Young: nothing goes, whatever its state (a commit naming it may be in flight).
    report = sweep(kyc_state.db, kyc_state.blobs)
    assert report.removed == [] and report.young == 4
    assert _files(kyc_state) == referenced | documents | {journal_orphan}

    # Two days on for all but one orphan document, which stays young.
    young = sorted(documents)[0]
    _age(kyc_state, (referenced | documents | {journal_orphan}) - {young}, days=2)
    dry = sweep(kyc_state.db, kyc_state.blobs, dry_run=True)
    assert sorted(dry.removed) == sorted((documents - {young}) | {journal_orphan})
    assert _files(kyc_state) == referenced | documents | {journal_orphan}  # dry run: all there
    report = sweep(kyc_state.db, kyc_state.blobs)
    assert sorted(report.removed) == sorted(dry.removed) and report.removed_bytes > 0
    assert report.referenced == len(referenced) and report.young == 1
    assert _files(kyc_state) == referenced | {young}
    # The quarantined message is still there for `quarantine retry`, whose documents are
    # stored anew.
    assert kyc_state.blobs.get(next(iter(referenced)))


def test_a_message_received_again_reuses_its_old_orphan_blob_safely(
    kyc_state: State, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = customer_mail(subject="ikinci kez")
    with monkeypatch.context() as patch:
        patch.setattr(kyc_state.db, "connect", lambda: (_ for _ in ()).throw(OSError("gone")))
        with pytest.raises(StorageFailure):
            kyc_state.journal.accept(Arrival(raw=raw, source="test"))
    key = hashlib.sha256(raw).hexdigest()
    _age(kyc_state, {key}, days=3)
    # The sender tries again: the same bytes, the same blob, now named by a row. Writing it
    # touched the file, so even a sweep that listed it as old before the commit keeps it.
    kyc_state.journal.accept(Arrival(raw=raw, source="test"))
    assert kyc_state.blobs.path_for(key).stat().st_mtime > time.time() - 60
    assert sweep(kyc_state.db, kyc_state.blobs).removed == []
    assert kyc_state.blobs.get(key) == raw


def test_a_blob_touched_while_the_sweep_judges_it_is_put_back(
    kyc_state: State, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race of rule 2: the sweep listed an old orphan and read the database; then a writer
    reused the blob (touching it) and is about to commit. The sweep sets the file aside, sees
    it young, and puts it back."""
    raw = customer_mail(subject="yarış")
    key = kyc_state.blobs.put(raw)
    _age(kyc_state, {key}, days=2)
    real = storage.sweep._referenced

    def then_a_writer_touches(db: Any, keys: list[str]) -> set[str]:
        found = real(db, keys)
        assert kyc_state.blobs.put(raw) == key  # the writer reuses the blob: touched
        return found

    monkeypatch.setattr(storage.sweep, "_referenced", then_a_writer_touches)
    report = sweep(kyc_state.db, kyc_state.blobs)
    assert report.removed == [] and report.restored == 1
    assert kyc_state.blobs.get(key) == raw
    assert _files(kyc_state) == {key}  # nothing left aside


def test_leftovers_of_crashes_are_cleaned(kyc_state: State) -> None:
    raw = customer_mail(subject="kaza")
    key = kyc_state.blobs.put(raw)
    path = kyc_state.blobs.path_for(key)
    # A sweep died with the blob set aside; a writer died before its rename.
    aside = path.with_name(f".{key}.swept.12345")
    os.rename(path, aside)
    temporary = path.with_name(f".{'0' * 64}.999.1.tmp")
    temporary.write_bytes(b"half")
    old = time.time() - 2 * DAYS
    os.utime(temporary, (old, old))
    report = sweep(kyc_state.db, kyc_state.blobs)
    assert report.restored == 1 and report.temporary == 1
    assert not aside.exists() and not temporary.exists()
    assert kyc_state.blobs.get(key) == raw  # put back, to be judged by age and references


def test_a_grace_shorter_than_an_hour_is_refused(kyc_state: State, kyc_config: Path) -> None:
    with pytest.raises(ValueError, match="at least 1:00:00"):
        sweep(kyc_state.db, kyc_state.blobs, grace=storage.sweep.MINIMUM_GRACE / 2)
    result = _cli(kyc_config, "blobs", "sweep", "--grace-hours", "0")
    assert result.returncode == 64 and "at least 1" in result.stderr


def test_the_sweep_command(
    kyc_state: State, kyc_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    orphans = _rolled_back_documents(kyc_state, monkeypatch)
    _age(kyc_state, _files(kyc_state), days=2)
    dry = _cli(kyc_config, "blobs", "sweep", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert (
        set(dry.stdout.split()[:2]) == orphans and "2 orphan blob(s) would be removed" in dry.stdout
    )
    assert orphans <= _files(kyc_state)
    done = _cli(kyc_config, "blobs", "sweep")
    assert done.returncode == 0 and "2 orphan blob(s) removed" in done.stdout
    assert not orphans & _files(kyc_state)


def test_the_daemon_sweeps_on_its_schedule(
    kyc_state: State, monkeypatch: pytest.MonkeyPatch
) -> None:
    orphans = _rolled_back_documents(kyc_state, monkeypatch)
    _age(kyc_state, _files(kyc_state), days=2)
    monkeypatch.setattr(
        maintenance_service, "FIRST_SWEEP_AFTER", maintenance_service.SWEEP_EVERY * 0
    )

    class Daemon:
        state = kyc_state
        stopping = asyncio.Event()

    async def run() -> None:
        daemon = Daemon()
        service = asyncio.create_task(maintenance_service.run_maintenance(daemon))
        for _ in range(600):  # the first sweep is due at once; give a loaded machine a minute
            await asyncio.sleep(0.1)
            if not orphans & _files(kyc_state):
                break
        daemon.stopping.set()
        await service

    asyncio.run(run())
    assert not orphans & _files(kyc_state)
    assert _files(kyc_state) == _referenced(kyc_state)


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ticketd.cli", "--config", str(config), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )


@pytest.mark.postgresql
def test_the_sweep_on_postgresql(
    tmp_path: Path, pg_database: str, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = open_state(load_config(write_config(tmp_path, database=pg_database, extra=TEAM)), clock)
    try:
        orphans = _rolled_back_documents(state, monkeypatch)
        referenced = _referenced(state)
        _age(state, _files(state), days=2)
        report = sweep(state.db, state.blobs)
        assert sorted(report.removed) == sorted(orphans)
        assert _files(state) == referenced
    finally:
        state.close()
