"""`ticketd ingest` for an MTA pipe, `import`, and the quarantine with its retry."""

from __future__ import annotations

import io
import json
import mailbox
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from domain.config import load_config
from storage.models import JournalEntry
from tests.helpers import customer_mail, write_config
from ticketd.cli import EX_TEMPFAIL, main
from ticketd.state import open_state


def run_cli(
    config: Path, *args: str, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "ticketd.cli", "--config", str(config), *args],
        input=stdin,
        capture_output=True,
        timeout=60,
    )


def test_ingest_from_standard_input_stores_durably_and_exits_0(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    result = run_cli(config, "ingest", stdin=customer_mail(message_id="<pipe@musteri.com.tr>"))
    assert result.returncode == 0, result.stderr
    state = open_state(load_config(config))
    try:
        with state.db.transaction() as session:
            entries = session.scalars(select(JournalEntry)).all()
        assert [e.state for e in entries] == ["pending"]
        assert b"<pipe@musteri.com.tr>" in state.blobs.get(entries[0].blob_key)
    finally:
        state.close()
    # A file that is not there is the caller's mistake (65), not a reason to retry (75).
    assert run_cli(config, "ingest", str(tmp_path / "missing.eml")).returncode == 65


def test_ingest_exits_75_when_the_message_cannot_be_stored(tmp_path: Path) -> None:
    (tmp_path / "blobs-is-a-file").write_text("not a folder")
    config = write_config(tmp_path)
    text = config.read_text().replace('blobs = "var/blobs"', 'blobs = "blobs-is-a-file"')
    config.write_text(text)
    result = run_cli(config, "ingest", stdin=customer_mail())
    assert result.returncode == EX_TEMPFAIL
    assert b"Traceback" not in result.stderr
    assert result.stderr.strip()


def test_ingest_process_makes_a_ticket_with_acknowledgement(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(customer_mail())))
    assert main(["--config", str(config), "ingest", "--process"]) == 0
    assert main(["--config", str(config), "tickets", "list", "--json"]) == 0
    out = capsys.readouterr().out
    tickets = json.loads(out[out.index("[") :])
    assert len(tickets) == 1 and tickets[0]["messages"] == 2


def test_quarantined_message_keeps_its_reason_and_can_be_retried(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    state = open_state(load_config(config))
    try:
        from ingest.journal import Arrival

        journal_id = state.journal.accept(Arrival(raw=customer_mail(), source="test"))
        with state.db.transaction() as session:
            entry = session.get(JournalEntry, journal_id)
            assert entry is not None
            blob = state.blobs.path_for(entry.blob_key)
        saved = blob.read_bytes()
        blob.unlink()  # the blob store lost the file: processing cannot go on
        [result] = state.worker.drain()
        assert result.state == "quarantined"
        assert "FileNotFoundError" in result.detail
    finally:
        state.close()

    listed = json.loads(run_cli(config, "quarantine", "list", "--json").stdout)
    assert [(q["id"], "FileNotFoundError" in q["reason"]) for q in listed] == [(journal_id, True)]

    blob.write_bytes(saved)  # the admin restores the file
    retried = run_cli(config, "quarantine", "retry", str(journal_id), "--now")
    assert retried.returncode == 0, retried.stderr
    assert json.loads(run_cli(config, "quarantine", "list", "--json").stdout) == []
    tickets = json.loads(run_cli(config, "tickets", "list", "--json").stdout)
    assert len(tickets) == 1
    assert run_cli(config, "quarantine", "retry", "999").returncode == 1


def test_import_of_historical_mail_does_not_acknowledge(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    box = mailbox.mbox(tmp_path / "old.mbox")
    for number in range(3):
        box.add(customer_mail(sender=f"c{number}@example.net", subject=f"Eski talep {number}"))
    box.flush()
    box.close()
    result = run_cli(config, "import", str(tmp_path / "old.mbox"), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["found"] == 3 and summary["stored"] == 3 and summary["done"] == 3
    assert json.loads(run_cli(config, "outbox", "list", "--json").stdout) == []
    tickets = json.loads(run_cli(config, "tickets", "list", "--json").stdout)
    assert len(tickets) == 3
