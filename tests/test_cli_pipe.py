"""A command whose reader stops early (`ticketd journal list | head -1`, `less` quit) ends
quietly, as coreutils and git do: exit status 141 (128 + SIGPIPE), nothing on standard error,
neither a traceback nor Python's "Exception ignored" at exit.

The commands run as processes writing into a real pipe; the test reads one line and closes its
end while the command still has most of its output to write.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest

from domain.config import load_config
from ingest.journal import Arrival
from tests.helpers import DESK, write_config
from ticketd import cli
from ticketd.state import open_state

ROWS = 300
# The smallest pipe Linux gives (one page): the output, many times this, cannot all fit in the
# pipe before the test closes its end, so the command is writing when its reader is gone.
PIPE_SIZE = 4096
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = write_config(tmp_path)
    state = open_state(load_config(path))
    try:
        state.journal.accept_many(
            [
                Arrival(
                    raw=f"From: c{n}@musteri.com.tr\r\nSubject: {n}\r\n\r\nmetin\r\n".encode(),
                    source="test",
                    envelope_to=(DESK,),
                )
                for n in range(ROWS)
            ]
        )
    finally:
        state.close()
    return path


def _users_environment() -> dict[str, str]:
    """The environment as an admin's shell has it: without PYTHONUNBUFFERED (set where the
    tests run), under which Python's unbuffered standard output drops the rest of a short
    write to a closed pipe silently instead of raising, so a large --json ended with 0."""
    env = {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"}
    return {**env, "COLUMNS": "200"}


def _first_line_then_close(config: Path, *args: str) -> tuple[bytes, int, bytes]:
    """The command's first line, its exit status and its standard error, its standard output a
    pipe the test closes after that line."""
    read_end, write_end = os.pipe()
    fcntl.fcntl(read_end, F_SETPIPE_SZ, PIPE_SIZE)
    process = subprocess.Popen(
        [sys.executable, "-m", "ticketd.cli", "--config", str(config), *args],
        stdout=write_end,
        stderr=subprocess.PIPE,
        env=_users_environment(),
    )
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        line = reader.readline()
    _, errors = process.communicate(timeout=60)
    return line, process.returncode, errors


@pytest.mark.parametrize(
    "args", [("journal", "list"), ("journal", "list", "--json")], ids=["table", "json"]
)
def test_a_reader_that_stops_early_ends_the_command_quietly(
    config: Path, args: tuple[str, ...]
) -> None:
    line, status, errors = _first_line_then_close(config, *args)
    assert line.strip()  # the command did print, and the reader saw it
    assert errors == b""
    assert status == cli.EX_PIPE == 141


def test_the_whole_output_read_is_still_exit_status_0(config: Path) -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "ticketd.cli", "--config", str(config), "journal", "list"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.count(b"\n") > ROWS


def test_a_broken_pipe_elsewhere_is_still_an_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A socket's broken pipe (a relay that hung up) with standard output still read is a
    failure the admin must see, not the quiet end of a closed pipe."""

    def hung_up(command: object, args: Namespace) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(cli, "run", hung_up)
    status = cli.main(["--config", str(write_config(tmp_path)), "journal", "list"])
    assert status == 1
    assert "BrokenPipeError" in capsys.readouterr().err
