"""Configuration errors name the key and the reason; `check` and `run` say the same."""

from __future__ import annotations

import socket
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from domain.config import ConfigError, load_config
from domain.config_kinds import toml_value
from tests.helpers import write_config
from ticketd.cli import EX_CONFIG, main


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ticketd.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str) -> dict[str, str]:
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, text))
    return dict(error.value.problems)


def test_sound_configuration_resolves_relative_paths(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, '[desk]\naddress = "Destek@Example.com"\n[storage]\nblobs = "b"\n')
    )
    assert config.desk.address == "destek@example.com"
    assert config.desk.language == "tr"
    assert config.storage.blobs == tmp_path / "b"
    assert config.storage.database == f"sqlite:///{tmp_path}/var/ticketd.sqlite3"
    assert str(config.smtp_in.listen) == "127.0.0.1:2525"
    assert config.smtp_out.relay is None
    assert config.smtp_out.maildir == tmp_path / "var" / "outbox"


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("[desk]\nname = 'x'\n", "desk.address", "is required"),
        ("[desk]\naddress = 'not an address'\n", "desk.address", "not a plain email address"),
        ("[desk]\naddress = 'a@b.c'\nlanguage = 'de'\n", "desk.language", "not one of tr, en"),
        (
            "[desk]\naddress = 'a@b.c'\n[smtp_in]\nlisten = '127.0.0.1'\n",
            "smtp_in.listen",
            "host:port",
        ),
        (
            "[desk]\naddress = 'a@b.c'\n[smtp_out]\nrelay = 'relay:99999'\n",
            "smtp_out.relay",
            "port from 1 to 65535",
        ),
        (
            "[desk]\naddress = 'a@b.c'\n[storage]\ndatabase = 'mysql://x'\n",
            "storage.database",
            "sqlite:///PATH or postgresql",
        ),
        (
            "[desk]\naddress = 'a@b.c'\n[smtp_in]\nmax_message_size = 'big'\n",
            "smtp_in.max_message_size",
            "integer",
        ),
        (
            "[desk]\naddress = 'a@b.c'\n[smtp_out]\nusername = 'u'\n",
            "smtp_out.username",
            "go together",
        ),
        ("[desk]\naddress = 'a@b.c'\n[desk2]\n", "desk2", "unknown"),
        (
            "[desk]\naddress = 'a@b.c'\n[kyc]\nclamd = 'localhost:3310'\n",
            "kyc.clamd",
            "tcp:HOST:PORT",
        ),
        ("[desk]\naddress = 'a@b.c'\n[kyc]\nclamd = 'tcp:localhost'\n", "kyc.clamd", "a port"),
        ("[desk]\naddress = 'a@b.c'\n[kyc]\nclamd = 'tcp:h:70000'\n", "kyc.clamd", "65535"),
        ("[desk]\naddress = 'a@b.c'\n[kyc]\nclamd = 'unix:'\n", "kyc.clamd", "unix:/path"),
        ("[desk]\naddress = 'a@b.c'\n[kyc]\nclamd = 3310\n", "kyc.clamd", "must be an address"),
        (
            f"[desk]\naddress = 'a@b.c'\n[kyc]\nclamd = 'unix:/{'x' * 120}'\n",
            "kyc.clamd",
            "107 bytes",
        ),
        ("[desk]\naddress = 'a@b.c'\n[kyc]\nclamd_timeout = 0\n", "kyc.clamd_timeout", "above 0"),
        (
            "[desk]\naddress = 'a@b.c'\n[kyc]\nclamd_timeout = '30'\n",
            "kyc.clamd_timeout",
            "seconds",
        ),
        (
            "[desk]\naddress = 'a@b.c'\n[limits]\nmax_mime_parts = 5\n",
            "limits.max_mime_parts",
            "must be a whole number from 10 to 100000",
        ),
        (
            "[desk]\naddress = 'a@b.c'\n[limits]\nmax_mime_parts = 1_000_000\n",
            "limits.max_mime_parts",
            "must be a whole number from 10 to 100000",
        ),
        (
            "[desk]\naddress = 'a@b.c'\n[limits]\nmax_mime_depth = '50'\n",
            "limits.max_mime_depth",
            "must be a whole number from 5 to 1000",
        ),
        (
            "[desk]\naddress = 'a@b.c'\n[limits]\nmax_mime_depth = 2\n",
            "limits.max_mime_depth",
            "must be a whole number from 5 to 1000",
        ),
        (
            "[desk]\naddress = 'a@b.c'\n[limits]\nmax_mime_part = 10\n",
            "limits.max_mime_part",
            "unknown key",
        ),
        ("[desk\naddress = 'a@b.c'\n", "(syntax)", "not valid TOML"),
    ],
)
def test_each_mistake_is_named_with_its_key(
    tmp_path: Path, text: str, key: str, reason: str
) -> None:
    found = problems(tmp_path, text)
    assert key in found, found
    assert reason in found[key]


def test_the_virus_scanner_address(tmp_path: Path) -> None:
    base = "[desk]\naddress = 'a@b.c'\n"
    assert load_config(write(tmp_path, base)).kyc.clamd is None  # absent: no scanning
    unix = load_config(write(tmp_path, base + "[kyc]\nclamd = 'unix:run/clamd.sock'\n")).kyc
    assert unix.clamd is not None and unix.clamd.path == tmp_path / "run" / "clamd.sock"
    assert str(unix.clamd) == f"unix:{tmp_path}/run/clamd.sock" and unix.clamd_timeout == 30
    text = base + "[kyc]\nclamd = 'tcp:[::1]:3310'\nclamd_timeout = 2.5\n"
    tcp = load_config(write(tmp_path, text)).kyc
    assert tcp.clamd is not None and (tcp.clamd.host, tcp.clamd.port) == ("::1", 3310)
    assert str(tcp.clamd) == "tcp:[::1]:3310" and tcp.clamd_timeout == 2.5


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    found = problems(tmp_path, "[desk]\naddress = 'x'\nlanguage = 'fr'\n[smtp_in]\nlisten = 'a'\n")
    assert {"desk.address", "desk.language", "smtp_in.listen"} <= set(found)


def test_check_exits_78_and_names_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "[desk]\naddress = 'a@b.c'\nlanguage = 'de'\n")
    assert main(["--config", str(path), "check"]) == EX_CONFIG
    err = capsys.readouterr().err
    assert "desk.language" in err and '"de" is not one of tr, en' in err
    assert "Traceback" not in err


def test_run_refuses_to_start_with_the_same_message(tmp_path: Path) -> None:
    path = write(tmp_path, "[desk]\naddress = 'a@b.c'\n[smtp_in]\nlisten = 'nowhere'\n")
    result = subprocess.run(
        [sys.executable, "-m", "ticketd.cli", "--config", str(path), "run"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == EX_CONFIG
    assert "smtp_in.listen" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("key", ["smtp_in.listen", "metrics.listen", "http.listen"])
def test_run_on_a_port_already_taken_names_the_key(tmp_path: Path, key: str) -> None:
    # Another daemon (or any server) holds the port: the admin is told which key to change.
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    section = key.split(".")[0]
    extra = f'[{section}]\nlisten = "127.0.0.1:{port}"\n'
    path = write_config(tmp_path, extra=extra)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "ticketd.cli", "--config", str(path), "run"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
    finally:
        taken.close()
    assert result.returncode == EX_CONFIG, result.stderr
    assert f"{key}: cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr and "OSError" not in result.stderr


def test_missing_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(tmp_path / "nope.toml"), "check"]) == EX_CONFIG
    assert "does not exist" in capsys.readouterr().err


# A mistyped value of several sections, and how each is quoted back: as the file writes it.
WRITTEN_AS_TOML = (
    '[desk]\naddress = "a@b.c"\nlanguage = true\n'
    "[smtp_in]\nlisten = false\n"
    "[smtp_out]\nrelay = 25\n"
    '[[imap]]\nname = "a"\nhost = "h"\nusername = "u"\npassword_file = "ticketd.toml"\n'
    'security = "TLS"\nafter = ["seen"]\n'
    '[[queues]]\nname = "odeme"\ncategories = ["paymnt\\u001b[2J"]\n'
    "[sla.calendar]\ntimezone = 1.5\n"
)


def test_values_in_problems_are_written_in_toml(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, WRITTEN_AS_TOML)
    assert main(["--config", str(path), "check"]) == EX_CONFIG
    err = capsys.readouterr().err
    for line in (
        "desk.language: true is not one of tr, en",
        "smtp_in.listen: false is not host:port",
        "smtp_out.relay: 25 is not host:port",
        'imap[0].security: "TLS" is not tls, starttls or none',
        'imap[0].after: ["seen"] is not seen, delete or move:FOLDER',
        # A control character is written as TOML's escape, never sent to the terminal.
        'queues[0].categories: "paymnt\\u001b[2J" is not one of account,',
        "sla.calendar.timezone: 1.5 is not a known time zone",
    ):
        assert f"  {line}" in err, err
    assert "True" not in err and "False" not in err and "'" not in err.replace("mean '", "")
    assert "\x1b" not in err


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (True, "true"),
        (0, "0"),
        (float("inf"), "inf"),
        ('Ayşe "Y" \\', '"Ayşe \\"Y\\" \\\\"'),
        ("\x9b31m", '"\\u009b31m"'),
        (date(2026, 1, 2), "2026-01-02"),
        ([1, "a", False], '[1, "a", false]'),
        ({"name": "x", "a b": 1}, '{ name = "x", "a b" = 1 }'),
    ],
)
def test_toml_value(value: object, written: str) -> None:
    assert toml_value(value) == written
