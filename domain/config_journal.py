"""What `ticketd ingest` reads of the configuration: the journal's keys, checked without the schema.

An MTA starts `ticketd ingest` once a message, and the message needs only the journal: `[storage]
database` and `blobs`, `[kyc] key_file` (raw messages are sealed with it) and `[smtp_in]
max_message_size`. The full validation (domain/config.py) imports pydantic and every section's
table, and reads the desk secret and the files other sections name: most of the pipe's start-up
(issue 19). `read_journal_config` checks those four keys with the kinds and defaults the schema
declares for them (its tables use these very constants) and returns None whenever it is not
sure, for the full validation to decide and name every problem of the file with its key:

- one of the four keys is wrong, or `kyc.key_file` is set under a folder that does not exist;
- `[storage]`, `[smtp_in]` or `[kyc]` is not a table, or holds a key the schema does not have
  (a misspelt `databse` would otherwise send the message to the default database);
- the file has a top-level name the schema does not have (a misspelt `[storage]` likewise).

A problem only the full validation finds in the other keys (a wrong `[sla]`, an unreachable
certificate, a desk secret file others can read) does not keep a message out of the journal:
`ticketd check`, `run` and a SIGHUP report it as ever, and the daemon does not start on it.
tests/test_config_journal.py holds these names and kinds equal to the schema's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from domain.config_file import read_toml
from domain.config_kinds import Count, Custom, FilePath, Invalid, Kind, resolve, toml_value

DEFAULT_DATABASE = "sqlite:///var/ticketd.sqlite3"
DEFAULT_BLOBS = "var/blobs"
DEFAULT_KEY_FILE = "var/kyc.key"
DEFAULT_MESSAGE_SIZE = 25 * 1024 * 1024


def database_url(value: Any, base: Path) -> str:
    """sqlite:///PATH (relative to the file's folder) or PostgreSQL through psycopg."""
    if not isinstance(value, str) or not value.strip():
        raise Invalid("must be a non-empty string")
    url = str(value).strip()
    if url.startswith("sqlite:///"):
        raw = url.removeprefix("sqlite:///")
        if raw and raw != ":memory:" and not raw.startswith("/"):
            return "sqlite:///" + str(resolve(raw, base))
        return url
    if url.startswith(("postgresql://", "postgresql+psycopg://")):
        return url.replace("postgresql://", "postgresql+psycopg://", 1)
    raise Invalid(f"{toml_value(url)}: use sqlite:///PATH or postgresql+psycopg://...")


DATABASE = Custom("sqlite:///PATH or postgresql+psycopg://USER@HOST/DB", database_url)
BLOBS = FilePath()
KEY_FILE = FilePath()
MESSAGE_SIZE = Count(1024)


def key_file_problem(key_file: Path) -> str | None:
    """Why a `kyc.key_file` an admin set cannot be used, or None. Its folder is never made
    silently (as root, with root's umask): it is the admin's to create."""
    if key_file.parent.is_dir():
        return None
    return (
        f"{key_file}: its folder {key_file.parent} does not exist; create it (owned by "
        "the user ticketd runs as, mode 0700) or point key_file at an existing folder"
    )


# Every top-level name of the file (domain/config.py SECTIONS), and every key of the sections
# read here (their tables), so that a misspelt one is noticed.
SECTION_NAMES = frozenset(
    {
        "desk", "storage", "smtp_in", "smtp_out", "limits", "templates", "metrics", "http",
        "threading", "imap", "queues", "agents", "categories", "agent_replies", "sla", "kyc",
        "retention", "dns", "spam", "oauth", "classify", "webhooks",
    }
)  # fmt: skip
SECTION_KEYS = {
    "storage": frozenset({"database", "blobs"}),
    "smtp_in": frozenset(
        {
            "listen", "max_message_size", "max_header_size", "max_line_length",
            "max_connections", "max_connections_per_client", "max_recipients", "max_commands",
            "idle_timeout", "session_timeout", "min_data_rate", "max_buffered_bytes",
            "tls_cert", "tls_key", "require_tls", "authserv_id", "trusted_authserv_ids",
            "verify_senders",
        }
    ),
    "kyc": frozenset(
        {
            "key_file", "accepted", "max_file_size", "max_documents_per_message",
            "max_documents_per_day", "retention_days", "rejected_retention_days",
            "request_expiry_days", "abandoned_retention_days", "approval_valid_days",
            "housekeeping_hours", "clamd", "clamd_timeout",
        }
    ),
}  # fmt: skip
# (section, key): its kind and default, as the schema declares them.
JOURNAL_KEYS: dict[tuple[str, str], tuple[Kind, Any]] = {
    ("storage", "database"): (DATABASE, DEFAULT_DATABASE),
    ("storage", "blobs"): (BLOBS, DEFAULT_BLOBS),
    ("kyc", "key_file"): (KEY_FILE, DEFAULT_KEY_FILE),
    ("smtp_in", "max_message_size"): (MESSAGE_SIZE, DEFAULT_MESSAGE_SIZE),
}


@dataclass(frozen=True)
class JournalConfig:
    """Where the journal is, and how large a message it takes (`Config.journal` too)."""

    database: str
    blobs: Path
    key_file: Path
    max_message_size: int


class _Unsure(Exception):
    """Something only the full validation can judge."""


def _table(data: dict[str, Any], section: str) -> dict[str, Any]:
    table = data.get(section, {})
    if not isinstance(table, dict) or not set(table) <= SECTION_KEYS[section]:
        raise _Unsure(section)
    return table


def _value(data: dict[str, Any], section: str, name: str, base: Path) -> Any:
    kind, default = JOURNAL_KEYS[(section, name)]
    try:
        return kind.check(_table(data, section).get(name, default), base)
    except Invalid:
        raise _Unsure(f"{section}.{name}") from None


def journal_config(data: dict[str, Any], path: Path) -> JournalConfig | None:
    """The journal's keys of parsed TOML from the file at `path` (absolute), or None when the
    full validation must judge the file (see the module's docstring)."""
    base = path.parent
    try:
        if not set(data) <= SECTION_NAMES:
            raise _Unsure("a top-level name")
        key_file = _value(data, "kyc", "key_file", base)
        if "key_file" in _table(data, "kyc") and key_file_problem(key_file) is not None:
            raise _Unsure("kyc.key_file")
        return JournalConfig(
            database=_value(data, "storage", "database", base),
            blobs=_value(data, "storage", "blobs", base),
            key_file=key_file,
            max_message_size=_value(data, "smtp_in", "max_message_size", base),
        )
    except _Unsure:
        return None


def read_journal_config(path: Path) -> JournalConfig | None:
    """`journal_config` of the file; one that cannot be read or parsed is a ConfigError."""
    return journal_config(read_toml(path), path.resolve())
