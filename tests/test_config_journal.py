"""What `ticketd ingest` reads of the configuration without the full validation
(domain/config_journal.py): the same values as the full validation, or None and then the full
validation's problems, each naming its key (issue 19)."""

from __future__ import annotations

from pathlib import Path

import pytest

from domain import config
from domain.config import ConfigError, StorageTable, load_config
from domain.config_journal import (
    JOURNAL_KEYS,
    SECTION_KEYS,
    SECTION_NAMES,
    journal_config,
    read_journal_config,
)
from domain.config_kyc import KycTable
from domain.config_schema import Table, kind_of
from domain.config_smtp import SmtpInTable
from tests.helpers import customer_mail, write_config
from ticketd.cli import EX_CONFIG, EX_OK, main

TABLES: dict[str, type[Table]] = {"storage": StorageTable, "smtp_in": SmtpInTable, "kyc": KycTable}


def test_the_names_and_kinds_are_the_schemas() -> None:
    assert {section.name for section in config.SECTIONS} == SECTION_NAMES
    for name, keys in SECTION_KEYS.items():
        assert set(TABLES[name].model_fields) == keys, name
    for (section, name), (kind, default) in JOURNAL_KEYS.items():
        field = TABLES[section].model_fields[name]
        assert kind_of(field) is kind and field.default == default, (section, name)


SOUND = [
    "",
    "[storage]\nblobs = 'b'\n",
    "[storage]\ndatabase = 'sqlite:///db/t.sqlite3'\nblobs = '~/blobs'\n",
    "[storage]\ndatabase = 'postgresql://ticketd@db/ticketd'\n",
    "[storage]\ndatabase = 'sqlite:////srv/t.sqlite3'\n",
    "[smtp_in]\nlisten = '127.0.0.1:2626'\nmax_message_size = 4096\n",
    "[kyc]\nkey_file = 'keys/kyc.key'\nretention_days = 9\n",
]


@pytest.mark.parametrize("text", SOUND)
def test_a_sound_file_gives_what_the_full_validation_gives(tmp_path: Path, text: str) -> None:
    (tmp_path / "keys").mkdir()
    path = tmp_path / "ticketd.toml"
    path.write_text("[desk]\naddress = 'destek@example.com'\n" + text, encoding="utf-8")
    assert read_journal_config(path) == load_config(path).journal


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("[storage]\ndatabse = 'sqlite:///x'\n", "storage.databse", "did you mean 'database'"),
        ("[storgae]\ndatabase = 'sqlite:///x'\n", "storgae", "did you mean 'storage'"),
        ("storage = 'sqlite:///x'\n", "storage", "must be a table"),
        ("[[storage]]\nblobs = 'b'\n", "storage", "must be a table"),
        ("[storage]\ndatabase = 'mysql://x'\n", "storage.database", "sqlite:///PATH"),
        ("[storage]\nblobs = 3\n", "storage.blobs", "must be a path"),
        ("[smtp_in]\nmax_message_size = 100\n", "smtp_in.max_message_size", "at least 1024"),
        ("[smtp_in]\nmax_message_size = '1MB'\n", "smtp_in.max_message_size", "an integer"),
        ("[smtp_in]\nmax_mesage_size = 5000\n", "smtp_in.max_mesage_size", "did you mean"),
        ("[kyc]\nkey_file = 'missing/kyc.key'\n", "kyc.key_file", "does not exist"),
        ("[kyc]\nkeyfile = 'kyc.key'\n", "kyc.keyfile", "did you mean 'key_file'"),
    ],
)
def test_what_it_cannot_vouch_for_goes_to_the_full_validation(
    tmp_path: Path, text: str, key: str, reason: str
) -> None:
    path = tmp_path / "ticketd.toml"
    path.write_text(text + "[desk]\naddress = 'destek@example.com'\n", encoding="utf-8")
    assert read_journal_config(path) is None
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert reason in dict(error.value.problems)[key], error.value.problems


def test_a_file_it_cannot_read_is_the_same_error(tmp_path: Path) -> None:
    for text, key in (("[storage\n", "(syntax)"), (None, "(file)")):
        path = tmp_path / "ticketd.toml"
        if text is None:
            path.unlink()
        else:
            path.write_text(text, encoding="utf-8")
        with pytest.raises(ConfigError) as light:
            read_journal_config(path)
        with pytest.raises(ConfigError) as full:
            load_config(path)
        assert light.value.problems == full.value.problems and light.value.problems[0][0] == key


def test_only_the_keys_it_reads_are_judged(tmp_path: Path) -> None:
    data = {"sla": {"first_response_hours": "soon"}, "desk": {}}
    found = journal_config(data, tmp_path / "ticketd.toml")
    assert found is not None and found.blobs == tmp_path / "var" / "blobs"


def test_ingest_names_a_wrong_journal_key_and_stores_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path)
    path.write_text(path.read_text().replace("blobs =", "blbos ="), encoding="utf-8")
    message = tmp_path / "m.eml"
    message.write_bytes(customer_mail())
    assert main(["--config", str(path), "ingest", str(message)]) == EX_CONFIG
    err = capsys.readouterr().err
    assert "storage.blbos: unknown key; did you mean 'blobs'?" in err, err
    assert not (tmp_path / "var" / "ticketd.sqlite3").exists()
    assert not (tmp_path / "var" / "blobs").exists()


def test_ingest_stores_the_message_when_only_another_section_is_wrong(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A problem outside the journal's keys is for `check` and `run` to report: the mail an MTA
    hands over meanwhile is kept, not sent back to it."""
    path = write_config(tmp_path, extra="[limits]\nmax_mime_parts = 'many'\n")
    message = tmp_path / "m.eml"
    message.write_bytes(customer_mail())
    assert main(["--config", str(path), "ingest", str(message)]) == EX_OK
    assert "stored as message 1" in capsys.readouterr().out
    assert main(["--config", str(path), "check"]) == EX_CONFIG
    assert "limits.max_mime_parts" in capsys.readouterr().err
    # --process needs all of it: refused before anything is stored.
    assert main(["--config", str(path), "ingest", "--process", str(message)]) == EX_CONFIG
    fixed = path.read_text().replace("'many'", "100")
    path.write_text(fixed, encoding="utf-8")
    capsys.readouterr()
    assert main(["--config", str(path), "ingest", "--process", str(message)]) == EX_OK
    assert "stored as message 2" in capsys.readouterr().out
