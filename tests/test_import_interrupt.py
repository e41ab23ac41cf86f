"""A Ctrl-C in the middle of `ticketd import` is no success: the exit status says it was
interrupted (130, as a shell reports it), so `ticketd import DIR && rm -r DIR` keeps the mail
that was not imported; what was journaled stays, and the next run imports the rest without
storing anything twice. It exited 0, as after a finished import."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import customer_mail, write_config

COUNT = 400


def _journaled(database: Path) -> int:
    if not database.exists():
        return 0
    try:
        connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
        try:
            return int(connection.execute("SELECT count(*) FROM journal").fetchone()[0])
        finally:
            connection.close()
    except sqlite3.OperationalError:  # the schema is being made
        return 0


def test_an_interrupted_import_says_so_and_the_next_run_imports_the_rest(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    folder = tmp_path / "mail"
    folder.mkdir()
    for number in range(COUNT):
        raw = customer_mail(sender=f"musteri{number}@example.net", subject=f"Talep {number}")
        (folder / f"{number:04d}.eml").write_bytes(raw)
    command = [sys.executable, "-m", "ticketd.cli", "--config", str(config), "import", "--json"]
    running = subprocess.Popen(
        [*command, str(folder)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    database = tmp_path / "var" / "ticketd.sqlite3"
    deadline = time.monotonic() + 60
    while _journaled(database) == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    running.send_signal(signal.SIGINT)
    out, err = running.communicate(timeout=60)
    if running.returncode == 0 and out.strip():  # its summary: done before the signal came
        pytest.skip("the import ended before the signal")
    assert running.returncode == 128 + signal.SIGINT, (running.returncode, err)
    assert b"ticketd import: interrupted" in err
    journaled = _journaled(database)
    again = subprocess.run([*command, str(folder)], capture_output=True, timeout=300)
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["already_imported"] == journaled
    assert summary["stored"] == COUNT - journaled
    assert _journaled(database) == COUNT
