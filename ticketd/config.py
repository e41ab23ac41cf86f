"""The configuration file: one TOML file read into frozen, validated records.

Every problem is reported as a `ConfigError` that names the key and the reason, so `ticketd
check` and `ticketd run` can print something an admin can act on instead of a traceback.
Relative paths are relative to the folder of the configuration file.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path
from typing import Any

LANGUAGES = ("tr", "en")
CATEGORIES = ("account", "payment", "bonus", "technical", "kyc", "complaint", "other")
DEFAULT_LISTEN = "127.0.0.1:2525"


class ConfigError(Exception):
    """One or more problems in the configuration; each problem names its key."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{key}: {reason}" for key, reason in problems))

    def render(self, source: Path | str) -> str:
        lines = [f"{source}: the configuration is not valid"]
        lines += [f"  {key}: {reason}" for key, reason in self.problems]
        return "\n".join(lines)


@dataclass(frozen=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class DeskConfig:
    name: str
    address: str
    language: str
    extra_addresses: tuple[str, ...] = ()
    # Secret that signs our Message-IDs; derived from the address when not configured.
    secret: str = ""

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]

    @property
    def addresses(self) -> tuple[str, ...]:
        return (self.address.lower(), *(a.lower() for a in self.extra_addresses))


@dataclass(frozen=True)
class StorageConfig:
    database: str
    blobs: Path


@dataclass(frozen=True)
class SmtpInConfig:
    listen: HostPort
    max_message_size: int


@dataclass(frozen=True)
class SmtpOutConfig:
    relay: HostPort | None
    maildir: Path
    starttls: bool = False
    username: str | None = None
    password_file: Path | None = None
    ca_file: Path | None = None
    timeout: float = 30.0


@dataclass(frozen=True)
class LimitsConfig:
    # Automatic mails of every kind to one recipient per hour; protects against loops with
    # systems our header checks do not recognise.
    auto_replies_per_hour: int = 3


@dataclass(frozen=True)
class ThreadingConfig:
    # A customer's near-identical request within this window joins their open ticket.
    duplicate_window_minutes: int = 24 * 60
    # After a permanent bounce, no mail goes to that address for this many days.
    bounce_suppression_days: int = 7


@dataclass(frozen=True)
class MetricsConfig:
    listen: HostPort | None = None


@dataclass(frozen=True)
class Config:
    path: Path
    desk: DeskConfig
    storage: StorageConfig
    smtp_in: SmtpInConfig
    smtp_out: SmtpOutConfig
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    templates_dir: Path | None = None
    threading: ThreadingConfig = field(default_factory=ThreadingConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)


class _Reader:
    """Walks the parsed TOML and collects every problem instead of stopping at the first."""

    def __init__(self, data: dict[str, Any], base: Path) -> None:
        self.data = data
        self.base = base
        self.problems: list[tuple[str, str]] = []

    def table(self, name: str) -> dict[str, Any]:
        value = self.data.get(name, {})
        if not isinstance(value, dict):
            self.problems.append((name, "must be a table ([" + name + "])"))
            return {}
        return value

    def string(self, table: dict[str, Any], key: str, default: str | None = None) -> str | None:
        name = key.rpartition(".")[2]
        value = table.get(name, default)
        if value is None:
            if default is None:
                self.problems.append((key, "is required"))
            return None
        if not isinstance(value, str) or not value.strip():
            self.problems.append((key, "must be a non-empty string"))
            return None
        return value.strip()

    def integer(self, table: dict[str, Any], key: str, default: int, minimum: int = 1) -> int:
        value = table.get(key.rpartition(".")[2], default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.problems.append((key, f"must be an integer of at least {minimum}"))
            return default
        return value

    def path(self, value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else (self.base / path)

    def address(self, value: str | None, key: str) -> str | None:
        if value is None:
            return None
        name, addr = parseaddr(value)
        if name or "@" not in addr or addr != value or any(c.isspace() for c in addr):
            self.problems.append((key, f"{value!r} is not a plain email address"))
            return None
        return addr.lower()

    def host_port(self, value: str | None, key: str) -> HostPort | None:
        if value is None:
            return None
        host, sep, port_text = value.rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            self.problems.append((key, f"{value!r} is not host:port with a port from 1 to 65535"))
            return None
        return HostPort(host, int(port_text))


def _database_url(reader: _Reader, value: str | None) -> str:
    if value is None:
        return ""
    if value.startswith("sqlite:///"):
        raw = value.removeprefix("sqlite:///")
        if raw and raw != ":memory:" and not raw.startswith("/"):
            return "sqlite:///" + str(reader.path(raw))
        return value
    if value.startswith(("postgresql://", "postgresql+psycopg://")):
        return value.replace("postgresql://", "postgresql+psycopg://", 1)
    reader.problems.append(
        ("storage.database", f"{value!r}: use sqlite:///PATH or postgresql+psycopg://...")
    )
    return value


def parse_config(data: dict[str, Any], path: Path) -> Config:
    """Validate parsed TOML; raises ConfigError listing every problem found."""
    reader = _Reader(data, path.parent)
    known = {
        "desk",
        "storage",
        "smtp_in",
        "smtp_out",
        "limits",
        "templates",
        "metrics",
        "threading",
        "imap",
        "queues",
        "agents",
    }
    for key in data:
        if key not in known:
            reader.problems.append((key, "unknown section or key"))

    desk_t = reader.table("desk")
    name = reader.string(desk_t, "desk.name", "Destek")
    address = reader.address(reader.string(desk_t, "desk.address"), "desk.address")
    language = reader.string(desk_t, "desk.language", "tr")
    if language is not None and language not in LANGUAGES:
        reader.problems.append(("desk.language", f"{language!r} is not one of tr, en"))
    extra_raw = desk_t.get("extra_addresses", [])
    extra: list[str] = []
    if not isinstance(extra_raw, list):
        reader.problems.append(("desk.extra_addresses", "must be a list of addresses"))
    else:
        for index, item in enumerate(extra_raw):
            key = f"desk.extra_addresses[{index}]"
            checked = reader.address(item if isinstance(item, str) else repr(item), key)
            if checked:
                extra.append(checked)
    secret = desk_t.get("secret", "")
    if not isinstance(secret, str):
        reader.problems.append(("desk.secret", "must be a string"))
        secret = ""

    storage_t = reader.table("storage")
    database = _database_url(
        reader, reader.string(storage_t, "storage.database", "sqlite:///var/ticketd.sqlite3")
    )
    blobs = reader.string(storage_t, "storage.blobs", "var/blobs") or "var/blobs"

    smtp_in_t = reader.table("smtp_in")
    listen = reader.host_port(
        reader.string(smtp_in_t, "smtp_in.listen", DEFAULT_LISTEN), "smtp_in.listen"
    )
    max_size = reader.integer(smtp_in_t, "smtp_in.max_message_size", 25 * 1024 * 1024, 1024)

    smtp_out_t = reader.table("smtp_out")
    relay_text = smtp_out_t.get("relay")
    relay = None
    if relay_text is not None:
        relay = reader.host_port(reader.string(smtp_out_t, "smtp_out.relay"), "smtp_out.relay")
    maildir = reader.string(smtp_out_t, "smtp_out.maildir", "var/outbox") or "var/outbox"
    starttls = smtp_out_t.get("starttls", False)
    if not isinstance(starttls, bool):
        reader.problems.append(("smtp_out.starttls", "must be true or false"))
        starttls = False
    username = smtp_out_t.get("username")
    password_file_text = smtp_out_t.get("password_file")
    password_file = None
    if username is not None and not isinstance(username, str):
        reader.problems.append(("smtp_out.username", "must be a string"))
        username = None
    if password_file_text is not None:
        if not isinstance(password_file_text, str):
            reader.problems.append(("smtp_out.password_file", "must be a path"))
        else:
            password_file = reader.path(password_file_text)
            if not password_file.is_file():
                reader.problems.append(
                    ("smtp_out.password_file", f"{password_file} does not exist or is no file")
                )
    ca_file = None
    ca_text = smtp_out_t.get("ca_file")
    if ca_text is not None:
        if not isinstance(ca_text, str):
            reader.problems.append(("smtp_out.ca_file", "must be a path"))
        else:
            ca_file = reader.path(ca_text)
            if not ca_file.is_file():
                reader.problems.append(("smtp_out.ca_file", f"{ca_file} does not exist"))
    if (username is None) != (password_file_text is None):
        reader.problems.append(
            ("smtp_out.username", "username and password_file go together: set both or neither")
        )

    limits_t = reader.table("limits")
    per_hour = reader.integer(limits_t, "limits.auto_replies_per_hour", 3)

    threading_t = reader.table("threading")
    threading = ThreadingConfig(
        duplicate_window_minutes=reader.integer(
            threading_t, "threading.duplicate_window_minutes", 24 * 60, 0
        ),
        bounce_suppression_days=reader.integer(
            threading_t, "threading.bounce_suppression_days", 7, 0
        ),
    )

    metrics_t = reader.table("metrics")
    metrics_listen = None
    if metrics_t.get("listen") is not None:
        metrics_listen = reader.host_port(
            reader.string(metrics_t, "metrics.listen"), "metrics.listen"
        )

    templates_t = reader.table("templates")
    templates_dir = None
    override = templates_t.get("folder")
    if override is not None:
        if not isinstance(override, str):
            reader.problems.append(("templates.folder", "must be a path"))
        else:
            templates_dir = reader.path(override)
            if not templates_dir.is_dir():
                reader.problems.append(("templates.folder", f"{templates_dir} is not a folder"))

    if reader.problems or address is None or listen is None:
        raise ConfigError(reader.problems)
    return Config(
        path=path,
        desk=DeskConfig(
            name=name or "Destek",
            address=address,
            language=language or "tr",
            extra_addresses=tuple(extra),
            secret=secret or f"ticketd:{address}",
        ),
        storage=StorageConfig(database=database, blobs=reader.path(blobs)),
        smtp_in=SmtpInConfig(listen=listen, max_message_size=max_size),
        smtp_out=SmtpOutConfig(
            relay=relay,
            maildir=reader.path(maildir),
            starttls=starttls,
            username=username,
            password_file=password_file,
            ca_file=ca_file,
        ),
        limits=LimitsConfig(auto_replies_per_hour=per_hour),
        threading=threading,
        metrics=MetricsConfig(listen=metrics_listen),
        templates_dir=templates_dir,
    )


def load_config(path: Path) -> Config:
    """Read and validate the file; a missing or unparsable file is a ConfigError too."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([("(file)", f"{path} does not exist")]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError([("(file)", f"{path} cannot be read: {error}")]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError([("(syntax)", f"not valid TOML: {error}")]) from None
    return parse_config(data, path.resolve())


DEFAULT_CONFIG = """\
# ticketd configuration: the embedded defaults. See README.md for every key.
[desk]
name = "Destek"
address = "destek@example.com"
language = "tr"

[storage]
database = "sqlite:///var/ticketd.sqlite3"
blobs = "var/blobs"

[smtp_in]
listen = "127.0.0.1:2525"

[smtp_out]
# relay = "127.0.0.1:25"   # without a relay, outgoing mail is written to this Maildir
maildir = "var/outbox"
"""
