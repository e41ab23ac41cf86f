"""Issue 22, the command line as an attack surface: what a customer wrote never drives the
agent's terminal; `import` and `ingest` read only regular files, bounded; `check` tests what
`run` needs, and `run` names the key that is wrong.

Each command runs as a process, the way an admin types it; its output is read as bytes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from domain.config import load_config
from ingest.journal import Arrival
from tests.helpers import DESK, write_config
from ticketd.state import open_state

ESC = "\x1b"
HOSTILE_SUBJECT = f"{ESC}]0;root@prod: sudo{chr(7)}Bonus{ESC}[2J{chr(0x9B)}31m"
HOSTILE_BODY = (
    f"Merhaba{ESC}[1A{ESC}[2K\r"
    f"{ESC}]8;;https://evil.example/{ESC}\\tıklayın{ESC}]8;;{ESC}\\ "
    f"{chr(0x9D)}0;title{chr(0x9C)} \u202eexe.pdf"
)


def _ticketd(config: Path, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "ticketd.cli", "--config", str(config), *args],
        input=stdin,
        capture_output=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )


def _hostile_mail() -> bytes:
    head = (
        f"From: Ayşe {ESC}[31mYılmaz <ayse@musteri.com.tr>\r\nTo: {DESK}\r\n"
        f"Subject: {HOSTILE_SUBJECT}\r\nMessage-ID: <esc@musteri.com.tr>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
    )
    return (head + HOSTILE_BODY + "\r\n").encode("utf-8")


def test_tickets_show_and_list_never_pass_terminal_controls(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    state = open_state(load_config(config))
    try:
        state.journal.accept(Arrival(raw=_hostile_mail(), source="test", envelope_to=(DESK,)))
        [result] = state.worker.drain()
        ref = result.detail.split()[1].rstrip(":")
    finally:
        state.close()
    for args in (("tickets", "show", ref), ("tickets", "list"), ("tickets", "show", ref, "--json")):
        shown = _ticketd(config, *args)
        assert shown.returncode == 0, shown.stderr
        out = shown.stdout.decode("utf-8")
        for control in (ESC, "\x07", "\r", "\x9b", "\x9c", "\x9d", "\u202e"):
            assert control not in out, (args, repr(control))
    text = _ticketd(config, "tickets", "show", ref).stdout.decode()
    assert "\\x1b]8;;https://evil.example/" in text and "\\x9b" in text and "\\x07" in text
    # JSON keeps the exact text: escaped, not lost.
    [message] = json.loads(_ticketd(config, "tickets", "show", ref, "--json").stdout)["messages"][
        :1
    ]
    assert chr(0x9D) in message["text"] and ESC in message["text"]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = write_config(tmp_path)
    open_state(load_config(path)).close()
    return path


def test_import_reads_only_regular_files_and_never_follows_a_link(
    config: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "mail"
    folder.mkdir()
    (folder / "1.eml").write_bytes(
        f"From: a@musteri.com.tr\r\nTo: {DESK}\r\nSubject: bir\r\n\r\nmerhaba\r\n".encode()
    )
    secret = tmp_path / "secret.txt"
    secret.write_text("From: root\nSubject: hostname\n\nprod-db-01\n")
    (folder / "2.eml").symlink_to(secret)
    os.mkfifo(folder / "3.eml")  # a FIFO would block a reader for ever
    done = _ticketd(config, "import", str(folder), "--json")
    assert done.returncode == 65, done.stderr
    summary = json.loads(done.stdout)
    assert summary["stored"] == 1 and summary["refused"] == 2, summary
    assert b"2.eml" in done.stderr and b"symbolic link" in done.stderr
    shown = _ticketd(config, "tickets", "list", "--json")
    assert "hostname" not in shown.stdout.decode()
    # A device or a link as the path itself is refused before anything is read.
    for path in ("/dev/zero", str(folder / "2.eml")):
        refused = _ticketd(config, "import", path)
        assert refused.returncode == 65 and b"not a regular file" in refused.stderr, refused.stderr


def test_ingest_of_a_folder_or_a_device_is_a_data_error(config: Path, tmp_path: Path) -> None:
    for path in (str(tmp_path), "/dev/zero"):
        done = _ticketd(config, "ingest", path)
        assert done.returncode == 65, (path, done.returncode, done.stderr)
        assert b"not a regular file" in done.stderr


def _fresh(folder: Path, extra: str = "") -> Path:
    folder.mkdir()
    return write_config(folder, extra=extra)


def test_check_tests_what_run_needs_and_run_names_the_key(tmp_path: Path) -> None:
    """Issue 22 (16): each of these passed `check` and then stopped `run` with a raw error."""
    folder_db = _fresh(tmp_path / "a")
    (tmp_path / "a" / "var" / "ticketd.sqlite3").mkdir(parents=True)
    readable_key = _fresh(tmp_path / "b")
    open_state(load_config(readable_key)).close()  # makes var/kyc.key, 0600
    (tmp_path / "b" / "var" / "kyc.key").chmod(0o644)
    file_blobs = _fresh(tmp_path / "c")
    (tmp_path / "c" / "var").mkdir()
    (tmp_path / "c" / "var" / "blobs").write_text("not a folder\n")
    cases = [
        (folder_db, "storage.database", "is a folder"),
        (readable_key, "kyc.key_file", "is 0644"),
        (file_blobs, "storage.blobs", "is a file, not a folder"),
    ]
    for config, key, why in cases:
        for command in ("check", "run"):
            done = _ticketd(config, command)
            err = done.stderr.decode()
            assert done.returncode == 78, (command, key, done.returncode, err)
            assert f"  {key}: " in err and why in err, (command, err)
            assert "Traceback" not in err and "Error:" not in err, err


def test_a_key_file_under_a_missing_folder_is_an_error_naming_the_key(tmp_path: Path) -> None:
    missing = tmp_path / "keys" / "kyc.key"
    config = _fresh(tmp_path / "desk", extra=f'[kyc]\nkey_file = "{missing}"\n')
    for command in ("check", "run"):
        done = _ticketd(config, command)
        assert done.returncode == 78 and b"kyc.key_file" in done.stderr, done.stderr
        assert b"does not exist" in done.stderr
    assert not (tmp_path / "keys").exists()  # nothing made as whoever ran it
