"""The configuration file: one TOML file read into frozen, validated records.

Every problem is reported as a `ConfigError` that names the key and the reason, so `ticketd
check` and `ticketd run` can print something an admin can act on instead of a traceback.
Relative paths are relative to the folder of the configuration file.
"""

from __future__ import annotations

import shlex
import tomllib
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from domain.config_classify import ClassifyConfig, ClassifyTable
from domain.config_keys import check_keys, one_list
from domain.config_kinds import Count, Custom, Endpoint, FilePath, Invalid, Url, Whole, resolve
from domain.config_kinds import HostPort as HostPort
from domain.config_kyc import KycConfig, parse_kyc
from domain.config_oauth import OAuthConfig, check_reference, parse_oauth
from domain.config_retention import RetentionConfig, RetentionTable, build_retention
from domain.config_schema import Section, Table, Tables, key, read_sections
from domain.config_secret import FILE_NAME as SECRET_FILE_NAME
from domain.config_secret import file_secret, inline_problem
from domain.config_sla import SlaConfig, parse_sla
from domain.config_spam import SpamConfig, SpamTable, build_spam
from domain.config_team import TEAM_DESK_KEYS, TeamConfig, parse_team, team_warnings
from domain.config_tls import TLS_KEYS, parse_listener_tls
from domain.config_trust import TRUST_KEYS, DnsTable, TrustConfig, build_dns, parse_trust
from domain.config_webhooks import WebhookConfig, parse_webhooks
from domain.tls_files import check_pair

LANGUAGES = ("tr", "en")
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


def owns_address(addresses: tuple[str, ...], address: str) -> bool:
    """One of `addresses` (lowercase), or a plus-addressed form of one (destek+REF.SIG@...)."""
    local, _, domain = address.lower().rpartition("@")
    return f"{local.partition('+')[0]}@{domain}" in addresses


@dataclass(frozen=True)
class DeskConfig:
    name: str
    address: str
    language: str
    extra_addresses: tuple[str, ...] = ()
    # Signs our Message-IDs and reply addresses (domain/config_secret.py): `desk.secret`, or
    # the content of `secret_file`, generated on first use. Never one anybody can compute.
    secret: str = ""
    secret_file: Path | None = None  # where the secret came from; None: from desk.secret
    # The zone times are shown in to people (domain/labels.py).
    timezone: str = "Europe/Istanbul"

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]

    @property
    def addresses(self) -> tuple[str, ...]:
        return (self.address.lower(), *(a.lower() for a in self.extra_addresses))

    def owns(self, address: str) -> bool:
        return owns_address(self.addresses, address)


@dataclass(frozen=True)
class StorageConfig:
    database: str
    blobs: Path


@dataclass(frozen=True)
class SmtpInConfig:
    listen: HostPort
    max_message_size: int
    # Abuse limits (issue 10): one client, or many, cannot exhaust the listener.
    max_connections: int = 100
    max_connections_per_client: int = 10
    max_recipients: int = 100
    # How often any one command (MAIL, RCPT, NOOP, ...) may be sent in a session.
    max_commands: int = 200
    idle_timeout: int = 300  # seconds a client may stay silent
    # Shape limits (issue 10), enforced while DATA is read (ingest/smtp_data.py).
    max_header_size: int = 256 * 1024
    max_line_length: int = 1024 * 1024
    # Issue 22: what all sessions may hold in memory before their final dot, a deadline for a
    # whole session and the slowest DATA taken (bytes a second, once DATA lasted idle_timeout).
    max_buffered_bytes: int = 256 * 1024 * 1024
    session_timeout: int = 900
    min_data_rate: int = 256
    # STARTTLS (offered when both files are set); require_tls: no MAIL before it.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    require_tls: bool = False


@dataclass(frozen=True)
class SmtpOutConfig:
    relay: HostPort | None
    maildir: Path
    starttls: bool = False
    username: str | None = None
    password_file: Path | None = None
    ca_file: Path | None = None
    timeout: float = 30.0
    # password (username and password_file), or xoauth2: a token for `username` (the mailbox)
    # from the `[oauth.NAME]` block named by `oauth`.
    auth: str = "password"
    oauth: str | None = None


@dataclass(frozen=True)
class LimitsConfig:
    # Automatic mails of every kind to one recipient per hour; protects against loops with
    # systems our header checks do not recognise.
    auto_replies_per_hour: int = 3
    # And never two within this many seconds: ten mails in a minute get one answer.
    auto_reply_interval_seconds: int = 120
    # How many MIME parts of one message are read, and how deeply nested (ingest/mime_shape.py);
    # past either the message still makes its ticket, with a note naming the limit.
    max_mime_parts: int = 5000
    max_mime_depth: int = 50
    # Bytes of a customer's files attached to one agent notification (scanned by then when a
    # virus scanner is configured); past it, and for identity documents, files are only named.
    # 0 (the default): none attached. Opt-in, because every attached copy is one more copy of
    # the customer's file in the outbox, which `[retention] raw_days` strips only once sent.
    notify_attachment_size: int = 0
    # The daemon parses each message in a child process (ingest/isolation.py): past this many
    # seconds it is killed and the message quarantined. A message whose tries stopped the
    # worker (killed, out of memory, stalled) this many times is quarantined, not tried again.
    max_parse_seconds: int = 60
    max_worker_stops: int = 3


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
class HttpConfig:
    """`[http]`: the API (web/), off without `listen`. `public_url` is where people reach it
    (behind the reverse proxy that does TLS), for links in mail; None: not said."""

    listen: HostPort | None = None
    public_url: str | None = None


IMAP_SECURITY = ("tls", "starttls", "none")
IMAP_AUTH = ("password", "xoauth2")


@dataclass(frozen=True)
class ImapAccountConfig:
    """One `[[imap]]` account: a mailbox folder whose mail becomes tickets."""

    name: str
    host: str
    port: int
    security: str  # tls, starttls, none
    username: str
    folder: str = "INBOX"
    after: str = "seen"  # seen, delete, move
    move_to: str | None = None  # the folder of after = "move:FOLDER"
    ca_file: Path | None = None
    auth: str = "password"  # password, xoauth2
    password_file: Path | None = None
    # XOAUTH2: a command that prints an access token (or JSON with access_token and
    # expires_in/expires_at), or a file another tool keeps fresh.
    token_command: tuple[str, ...] = ()
    token_file: Path | None = None
    # XOAUTH2 with a token ticketd gets itself from this `[oauth.NAME]` block.
    oauth: str | None = None
    idle: bool = True
    poll_interval: int = 60  # seconds between polls without IDLE (and a safety net with it)
    batch_size: int = 100
    timeout: int = 60  # seconds for one network operation
    # Mail that reached the server longer ago than this gets a ticket but no acknowledgement.
    quiet_older_than_hours: int = 72
    # Everything already in the folder at the first sync is historical: no acknowledgements.
    quiet_first_sync: bool = False


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
    http: HttpConfig = field(default_factory=HttpConfig)
    imap: tuple[ImapAccountConfig, ...] = ()
    team: TeamConfig = field(default_factory=TeamConfig)
    sla: SlaConfig = field(default_factory=SlaConfig)
    kyc: KycConfig = field(default_factory=lambda: KycConfig(Path("var/kyc.key")))
    # (key, reason) of what is allowed but probably a mistake (an agent in no queue); `check`
    # prints them and `run` logs them.
    warnings: tuple[tuple[str, str], ...] = ()
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    trust: TrustConfig = field(default_factory=lambda: TrustConfig("localhost"))
    spam: SpamConfig = field(default_factory=SpamConfig)
    oauth: tuple[OAuthConfig, ...] = ()

    def oauth_provider(self, name: str) -> OAuthConfig:
        """The `[oauth.NAME]` block an account names (the parser checked that it exists)."""
        return next(provider for provider in self.oauth if provider.name == name)

    classify: ClassifyConfig = field(default_factory=ClassifyConfig)
    webhooks: tuple[WebhookConfig, ...] = ()


class _Reader:
    """Walks the parsed TOML and collects every problem instead of stopping at the first."""

    def __init__(self, data: dict[str, Any], base: Path) -> None:
        self.data = data
        self.base = base
        self.problems: list[tuple[str, str]] = []

    def section(self, name: str, known: tuple[str, ...]) -> dict[str, Any]:
        """The table `[name]` (empty when absent), its keys checked against `known`."""
        value = self.data.get(name, {})
        if not isinstance(value, dict):
            self.problems.append((name, "must be a table ([" + name + "])"))
            return {}
        check_keys(self.problems, value, name, known)
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

    def bounded(
        self, table: dict[str, Any], key: str, default: int, lowest: int, highest: int
    ) -> int:
        value = table.get(key.rpartition(".")[2], default)
        if isinstance(value, bool) or not isinstance(value, int) or not lowest <= value <= highest:
            self.problems.append((key, f"must be a whole number from {lowest} to {highest}"))
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


_SMTP_IN_LIMITS = {
    "max_connections": 100,
    "max_connections_per_client": 10,
    "max_recipients": 100,
    "max_commands": 200,
    "idle_timeout": 300,
    "session_timeout": 900,
}
_SMTP_IN_SHAPE = {"max_header_size": 256 * 1024, "max_line_length": 1024 * 1024}


def _database(value: Any, base: Path) -> str:
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
    raise Invalid(f"{url!r}: use sqlite:///PATH or postgresql+psycopg://...")


class StorageTable(Table):
    database: Annotated[
        str, Custom("sqlite:///PATH or postgresql+psycopg://USER@HOST/DB", _database)
    ] = key("sqlite:///var/ticketd.sqlite3", doc="the database")
    blobs: Annotated[Path, FilePath()] = key(
        "var/blobs", doc="the folder of raw messages and documents"
    )


class LimitsTable(Table):
    auto_replies_per_hour: Annotated[int, Count(1)] = key(
        3, live=True, doc="automatic mails to one recipient per hour"
    )
    auto_reply_interval_seconds: Annotated[int, Count(0)] = key(
        120, live=True, doc="and never two to one recipient within this many seconds"
    )
    # Fewer parts or levels than honest mail has (a signed reply with a logo and a forward is a
    # dozen parts, five levels) would cut ordinary messages; more would let one message take
    # gigabytes (about 400 bytes per parsed part) or seconds of parsing.
    max_mime_parts: Annotated[int, Whole(10, 100_000)] = key(
        5000, live=True, doc="MIME parts read per message; past it, a note on the ticket"
    )
    max_mime_depth: Annotated[int, Whole(5, 1000)] = key(
        50, live=True, doc="MIME nesting levels read; deeper parts are left out, with a note"
    )
    notify_attachment_size: Annotated[int, Count(0)] = key(
        0, live=True, doc="bytes of a customer's files attached to an agent notification"
    )
    # A parse of honest mail takes well under a second, a DNS check of the sender and a virus
    # scan a few more; an hour is no limit at all.
    max_parse_seconds: Annotated[int, Whole(1, 3600)] = key(
        60, live=True, doc="seconds for the parse and checks of one message; then quarantined"
    )
    max_worker_stops: Annotated[int, Whole(1, 100)] = key(
        3, live=True, doc="tries of one message that stopped the worker; then quarantined"
    )


class ThreadingTable(Table):
    duplicate_window_minutes: Annotated[int, Count(0)] = key(
        24 * 60, live=True, doc="a near-identical request within this joins the open ticket"
    )
    bounce_suppression_days: Annotated[int, Count(0)] = key(
        7, live=True, doc="no mail to an address this long after it bounced"
    )


class MetricsTable(Table):
    listen: Annotated[HostPort | None, Endpoint()] = key(None, doc="Prometheus metrics at /metrics")


class HttpTable(Table):
    listen: Annotated[HostPort | None, Endpoint()] = key(
        None, doc="the HTTP API (web/) on this address; off when absent"
    )
    public_url: Annotated[str | None, Url(strip_slash=True)] = key(
        None, doc="where people reach the API (the reverse proxy's https:// URL), for links"
    )


class TemplatesTable(Table):
    folder: Annotated[Path | None, FilePath("folder")] = key(
        None, live=True, record="templates_dir", doc="overrides any shipped template"
    )


# The known keys of each table the file may have (domain/config_keys.py): the sections parsed
# here, and the names of those parsed in config_team, config_sla and config_kyc, which check
# their own keys the same way.
SECTIONS = (
    "desk",
    "storage",
    "smtp_in",
    "smtp_out",
    "limits",
    "templates",
    "metrics",
    "http",
    "threading",
    "imap",
    "queues",
    "agents",
    "categories",
    "agent_replies",
    "sla",
    "kyc",
    "retention",
    "dns",
    "spam",
    "oauth",
    "classify",
    "webhooks",
)
DESK_KEYS = (
    "name",
    "address",
    "language",
    "extra_addresses",
    "secret",
    "secret_file",
    "timezone",
    *TEAM_DESK_KEYS,
)
SMTP_IN_KEYS = (
    "listen",
    "max_message_size",
    "max_buffered_bytes",
    "min_data_rate",
    *_SMTP_IN_LIMITS,
    *_SMTP_IN_SHAPE,
    *TLS_KEYS,
    *TRUST_KEYS,
)
SMTP_OUT_KEYS = (
    "relay",
    "maildir",
    "starttls",
    "username",
    "password_file",
    "ca_file",
    "auth",
    "oauth",
)
SMTP_AUTH = ("password", "xoauth2")


def _desk(reader: _Reader) -> tuple[str | None, str | None, str | None, list[str], str]:
    """[desk]: (name, address, language, extra addresses, secret)."""
    desk_t = reader.section("desk", DESK_KEYS)
    name = reader.string(desk_t, "desk.name", "Destek")
    address = reader.address(reader.string(desk_t, "desk.address"), "desk.address")
    language = reader.string(desk_t, "desk.language", "tr")
    if language is not None and language not in LANGUAGES:
        reader.problems.append(("desk.language", f"{language!r} is not one of tr, en"))
    extra: list[str] = []
    raw = desk_t.get("extra_addresses", [])
    for index, item in enumerate(
        one_list(reader.problems, raw, "desk.extra_addresses", "addresses")
    ):
        key = f"desk.extra_addresses[{index}]"
        checked = reader.address(item if isinstance(item, str) else repr(item), key)
        if checked:
            extra.append(checked)
    secret = desk_t.get("secret", "")
    if not isinstance(secret, str):
        reader.problems.append(("desk.secret", "must be a string"))
        secret = ""
    elif secret and (why := inline_problem(secret, address)) is not None:
        reader.problems.append(("desk.secret", why))
    return name, address, language, extra, secret


# A desk's times are its people's: a Turkish desk's default is Istanbul's zone.
DEFAULT_ZONES = {"tr": "Europe/Istanbul", "en": "UTC"}


def _timezone(reader: _Reader, language: str | None) -> str:
    desk_t = reader.data.get("desk", {})
    default = DEFAULT_ZONES.get(language or "tr", "UTC")
    zone = desk_t.get("timezone", default) if isinstance(desk_t, dict) else default
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        reader.problems.append(("desk.timezone", f"{zone!r} is not a known time zone"))
        return default
    return str(zone)


def _secret_file(reader: _Reader, key_file: Path) -> tuple[str, Path | None]:
    """(secret, its file) when `desk.secret` is not set: `desk.secret_file`, by default beside
    the identity-document key file, made on first use (domain/config_secret.py)."""
    desk_t = reader.data.get("desk", {})
    raw = desk_t.get("secret_file") if isinstance(desk_t, dict) else None
    if raw is not None and (not isinstance(raw, str) or not raw.strip()):
        reader.problems.append(("desk.secret_file", "must be a path"))
        return "", None
    if isinstance(desk_t, dict) and desk_t.get("secret") and raw is not None:
        reader.problems.append(
            ("desk.secret_file", "set desk.secret or desk.secret_file, not both")
        )
        return "", None
    path = reader.path(raw) if raw else key_file.parent / SECRET_FILE_NAME
    return file_secret(reader.problems, path), path


def _smtp_in(reader: _Reader) -> SmtpInConfig | None:
    smtp_in_t = reader.section("smtp_in", SMTP_IN_KEYS)
    listen = reader.host_port(
        reader.string(smtp_in_t, "smtp_in.listen", DEFAULT_LISTEN), "smtp_in.listen"
    )
    max_size = reader.integer(smtp_in_t, "smtp_in.max_message_size", 25 * 1024 * 1024, 1024)
    smtp_limits = {
        name: reader.integer(smtp_in_t, f"smtp_in.{name}", default)
        for name, default in _SMTP_IN_LIMITS.items()
    }
    # At least the 1,000 octets RFC 5321 (4.5.3.1.6) and RFC 5322 (2.1.1) promise every line.
    for shape_key, default in _SMTP_IN_SHAPE.items():
        smtp_limits[shape_key] = reader.integer(smtp_in_t, f"smtp_in.{shape_key}", default, 1000)
    # Room for at least one message of the largest size, or none could ever be taken.
    smtp_limits["max_buffered_bytes"] = reader.integer(
        smtp_in_t, "smtp_in.max_buffered_bytes", max(256 * 1024 * 1024, max_size), max_size
    )
    smtp_limits["min_data_rate"] = reader.integer(smtp_in_t, "smtp_in.min_data_rate", 256, 0)
    listener_tls = parse_listener_tls(reader.problems, smtp_in_t, reader.base)
    if listen is None:
        return None
    return SmtpInConfig(
        listen=listen,
        max_message_size=max_size,
        **smtp_limits,
        tls_cert=listener_tls.cert,
        tls_key=listener_tls.key,
        require_tls=listener_tls.require,
    )


def _file(reader: _Reader, table: dict[str, Any], key: str, missing: str) -> Path | None:
    value = table.get(key.rpartition(".")[2])
    if value is None:
        return None
    if not isinstance(value, str):
        reader.problems.append((key, "must be a path"))
        return None
    path = reader.path(value)
    if not path.is_file():
        reader.problems.append((key, f"{path} {missing}"))
    return path


def _smtp_out(reader: _Reader, providers: tuple[OAuthConfig, ...]) -> SmtpOutConfig:
    table = reader.section("smtp_out", SMTP_OUT_KEYS)
    relay = None
    if table.get("relay") is not None:
        relay = reader.host_port(reader.string(table, "smtp_out.relay"), "smtp_out.relay")
    maildir = reader.string(table, "smtp_out.maildir", "var/outbox") or "var/outbox"
    starttls = _imap_bool(reader, table, "smtp_out.starttls", False)
    username = table.get("username")
    if username is not None and not isinstance(username, str):
        reader.problems.append(("smtp_out.username", "must be a string"))
        username = None
    password_file = _file(reader, table, "smtp_out.password_file", "does not exist or is no file")
    auth = reader.string(table, "smtp_out.auth", "password") or "password"
    if auth not in SMTP_AUTH:
        reader.problems.append(("smtp_out.auth", f"{auth!r} is not password or xoauth2"))
    oauth = check_reference(reader.problems, providers, auth, table.get("oauth"), "smtp_out")
    if auth == "xoauth2":
        _smtp_xoauth2(reader, table, relay is not None or "relay" in table)
    elif (username is None) != (table.get("password_file") is None):
        reader.problems.append(
            ("smtp_out.username", "username and password_file go together: set both or neither")
        )
    return SmtpOutConfig(
        relay=relay,
        maildir=reader.path(maildir),
        starttls=starttls,
        username=username,
        password_file=password_file,
        ca_file=_file(reader, table, "smtp_out.ca_file", "does not exist"),
        auth=auth,
        oauth=oauth,
    )


def _smtp_xoauth2(reader: _Reader, table: dict[str, Any], relay: bool) -> None:
    """What `auth = "xoauth2"` needs in [smtp_out], one problem per key."""
    if "oauth" not in table:
        reader.problems.append(("smtp_out.oauth", "is required with auth = 'xoauth2'"))
    if table.get("username") is None:
        reader.problems.append(("smtp_out.username", "is required: the mailbox of the token"))
    if "password_file" in table and not any(
        k == "smtp_out.password_file" for k, _ in reader.problems
    ):
        reader.problems.append(("smtp_out.password_file", "not used with auth = 'xoauth2'"))
    if not relay:
        reader.problems.append(("smtp_out.relay", "is required with auth = 'xoauth2'"))


def _time_warnings(
    trust: TrustConfig, spam: SpamConfig, limits: LimitsConfig
) -> list[tuple[str, str]]:
    """The sender checks run inside the parse's time limit: DNS and rspamd together past it
    would quarantine every message whose DNS or filter is slow instead of marking it."""
    spent = (trust.dns.timeout if trust.verify_senders else 0) + (
        spam.timeout if spam.rspamd_url else 0
    )
    if spent < limits.max_parse_seconds:
        return []
    return [
        (
            "limits.max_parse_seconds",
            f"{limits.max_parse_seconds} s is not more than dns.timeout and spam.timeout "
            f"together ({spent:g} s): a slow DNS or filter would quarantine mail",
        )
    ]


# Every section the schema reads (domain/config_schema.py); the rest are read by hand below.
SCHEMA_SECTIONS: tuple[Section, ...] = (
    Section("storage", StorageTable),
    Section("limits", LimitsTable),
    Section("templates", TemplatesTable),
    Section("metrics", MetricsTable),
    Section("http", HttpTable),
    Section("threading", ThreadingTable),
    Section("retention", RetentionTable),
    Section("dns", DnsTable, record="trust.dns"),
    Section("spam", SpamTable),
    Section("classify", ClassifyTable),
)


def _simple_records(tables: Tables) -> dict[str, Any]:
    """The records that are their table's keys as they are (defaults for a table with
    problems: those are reported, and no Config is made)."""
    storage = tables.one("storage", StorageTable) or StorageTable.model_construct(
        database="", blobs=Path("var/blobs")
    )
    templates = tables.one("templates", TemplatesTable)
    metrics = tables.one("metrics", MetricsTable)
    http = tables.one("http", HttpTable)
    return {
        "storage": StorageConfig(storage.database, storage.blobs),
        "limits": LimitsConfig(**dict(tables.one("limits", LimitsTable) or {})),
        "threading": ThreadingConfig(**dict(tables.one("threading", ThreadingTable) or {})),
        "metrics": MetricsConfig(metrics.listen if metrics else None),
        "http": HttpConfig(http.listen, http.public_url) if http else HttpConfig(),
        "templates_dir": templates.folder if templates else None,
        "retention": build_retention(tables.one("retention", RetentionTable)),
        "spam": build_spam(tables.one("spam", SpamTable)),
        "classify": ClassifyConfig(**dict(tables.one("classify", ClassifyTable) or {})),
    }


def parse_config(data: dict[str, Any], path: Path) -> Config:
    """Validate parsed TOML; raises ConfigError listing every problem found."""
    reader = _Reader(data, path.parent)
    check_keys(reader.problems, data, "", SECTIONS, "section or key")
    names = {section.name for section in SCHEMA_SECTIONS}
    tables = read_sections(
        reader.problems,
        {name: value for name, value in data.items() if name in names},
        SCHEMA_SECTIONS,
        {"base": reader.base},
    )
    records = _simple_records(tables)
    name, address, language, extra, secret = _desk(reader)
    smtp_in = _smtp_in(reader)
    oauth = parse_oauth(reader.problems, data, reader.base)
    smtp_out = _smtp_out(reader, oauth)
    imap = parse_imap_accounts(reader, data.get("imap", []), oauth)
    team = parse_team(reader.problems, data)
    sla = parse_sla(reader.problems, data)
    kyc = parse_kyc(reader.problems, data, reader.base)
    secret_file = None
    key_folder_missing = any(key == "kyc.key_file" for key, _ in reader.problems)
    if not secret and address is not None and not key_folder_missing:
        secret, secret_file = _secret_file(reader, kyc.key_file)
    smtp_in_t = data.get("smtp_in", {})  # its keys were checked by _smtp_in
    dns = build_dns(tables.one("dns", DnsTable))
    trust = parse_trust(reader.problems, smtp_in_t if isinstance(smtp_in_t, dict) else {}, dns)
    webhooks = parse_webhooks(reader.problems, data, reader.base)

    timezone = _timezone(reader, language)
    if reader.problems or address is None or smtp_in is None:
        raise ConfigError(reader.problems)
    return Config(
        path=path,
        desk=DeskConfig(
            name=name or "Destek",
            address=address,
            language=language or "tr",
            extra_addresses=tuple(extra),
            secret=secret,
            secret_file=secret_file,
            timezone=timezone,
        ),
        smtp_in=smtp_in,
        smtp_out=smtp_out,
        imap=imap,
        team=team,
        sla=sla,
        kyc=kyc,
        warnings=(*team_warnings(team), *_time_warnings(trust, records["spam"], records["limits"])),
        trust=trust,
        oauth=oauth,
        **records,
        webhooks=webhooks,
    )


_IMAP_KEYS = (
    "name",
    "host",
    "port",
    "security",
    "ca_file",
    "username",
    "password_file",
    "auth",
    "token_command",
    "token_file",
    "oauth",
    "folder",
    "after",
    "idle",
    "poll_interval",
    "batch_size",
    "timeout",
    "quiet_older_than_hours",
    "quiet_first_sync",
)


def _imap_file(reader: _Reader, table: dict[str, Any], key: str) -> Path | None:
    value = table.get(key.rpartition(".")[2])
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        reader.problems.append((key, "must be a path"))
        return None
    path = reader.path(value)
    if not path.is_file():
        reader.problems.append((key, f"{path} does not exist or is no file"))
    return path


def _imap_bool(reader: _Reader, table: dict[str, Any], key: str, default: bool) -> bool:
    value = table.get(key.rpartition(".")[2], default)
    if not isinstance(value, bool):
        reader.problems.append((key, "must be true or false"))
        return default
    return value


def _imap_credentials(
    reader: _Reader,
    table: dict[str, Any],
    at: str,
    auth: str,
    command: bool,
    providers: tuple[OAuthConfig, ...],
) -> str | None:
    """What `auth` needs of an account: a password_file, or exactly one token source; the
    `[oauth.NAME]` block an `oauth` key names, when it names one that exists."""
    if auth not in IMAP_AUTH:
        reader.problems.append((f"{at}.auth", f"{auth!r} is not password or xoauth2"))
    elif auth == "password" and "password_file" not in table:
        reader.problems.append((f"{at}.password_file", "is required (or auth = 'xoauth2')"))
    elif auth == "xoauth2" and ("oauth" in table) + ("token_file" in table) + command != 1:
        reader.problems.append(
            (f"{at}.oauth", "xoauth2 needs exactly one of oauth, token_command, token_file")
        )
        return None  # one error per key
    return check_reference(reader.problems, providers, auth, table.get("oauth"), at)


def _imap_account(
    reader: _Reader, table: dict[str, Any], at: str, providers: tuple[OAuthConfig, ...]
) -> ImapAccountConfig | None:
    before = len(reader.problems)
    check_keys(reader.problems, table, at, _IMAP_KEYS)
    name = reader.string(table, f"{at}.name")
    host = reader.string(table, f"{at}.host")
    username = reader.string(table, f"{at}.username")
    security = reader.string(table, f"{at}.security", "tls") or "tls"
    if security not in IMAP_SECURITY:
        reader.problems.append((f"{at}.security", f"{security!r} is not tls, starttls or none"))
    port = reader.integer(table, f"{at}.port", 993 if security == "tls" else 143)
    if port > 65535:
        reader.problems.append((f"{at}.port", "must be a port from 1 to 65535"))
    folder = reader.string(table, f"{at}.folder", "INBOX") or "INBOX"
    after = reader.string(table, f"{at}.after", "seen") or "seen"
    move_to = None
    if after.startswith("move:") and after[5:].strip():
        after, move_to = "move", after[5:].strip()
        if move_to == folder:
            reader.problems.append((f"{at}.after", "cannot move into the folder it reads"))
    elif after not in ("seen", "delete"):
        reader.problems.append((f"{at}.after", f"{after!r} is not seen, delete or move:FOLDER"))
    auth = reader.string(table, f"{at}.auth", "password") or "password"
    password_file = _imap_file(reader, table, f"{at}.password_file")
    token_file = _imap_file(reader, table, f"{at}.token_file")
    command = table.get("token_command", "")
    token_command: tuple[str, ...] = ()
    if isinstance(command, str):
        token_command = tuple(shlex.split(command))
    elif isinstance(command, list) and all(isinstance(part, str) for part in command):
        token_command = tuple(command)
    else:
        reader.problems.append((f"{at}.token_command", "must be a command line or a list"))
    oauth = _imap_credentials(reader, table, at, auth, bool(token_command), providers)
    account = ImapAccountConfig(
        name=name or "",
        host=host or "",
        port=port,
        security=security,
        username=username or "",
        folder=folder,
        after=after,
        move_to=move_to,
        ca_file=_imap_file(reader, table, f"{at}.ca_file"),
        auth=auth,
        password_file=password_file,
        token_command=token_command,
        token_file=token_file,
        oauth=oauth,
        idle=_imap_bool(reader, table, f"{at}.idle", True),
        poll_interval=reader.integer(table, f"{at}.poll_interval", 60),
        batch_size=reader.integer(table, f"{at}.batch_size", 100),
        timeout=reader.integer(table, f"{at}.timeout", 60),
        quiet_older_than_hours=reader.integer(table, f"{at}.quiet_older_than_hours", 72, 0),
        quiet_first_sync=_imap_bool(reader, table, f"{at}.quiet_first_sync", False),
    )
    return account if len(reader.problems) == before else None


def parse_imap_accounts(
    reader: _Reader, raw: Any, providers: tuple[OAuthConfig, ...] = ()
) -> tuple[ImapAccountConfig, ...]:
    """The `[[imap]]` array of tables; problems are named `imap[N].key`."""
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        reader.problems.append(("imap", "must be an array of tables ([[imap]])"))
        return ()
    accounts: list[ImapAccountConfig] = []
    names: set[str] = set()
    mailboxes: set[tuple[str, int, str, str]] = set()
    for index, table in enumerate(raw):
        account = _imap_account(reader, table, f"imap[{index}]", providers)
        if account is None:
            continue
        if account.name in names:
            reader.problems.append((f"imap[{index}].name", f"{account.name!r} is used twice"))
        mailbox = (account.host.lower(), account.port, account.username, account.folder)
        if mailbox in mailboxes:
            reader.problems.append(
                (f"imap[{index}].folder", "the same server, user and folder is configured twice")
            )
        names.add(account.name)
        mailboxes.add(mailbox)
        accounts.append(account)
    return tuple(accounts)


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


def load_listener_config(path: Path) -> Config:
    """`load_config` for what serves the SMTP listener (`run`, SIGHUP, `check`): the STARTTLS
    certificate and key are read and checked too, each problem naming its key. The other
    commands never read them (domain/config_tls.py says why)."""
    config = load_config(path)
    cert, key = config.smtp_in.tls_cert, config.smtp_in.tls_key
    if cert is not None and key is not None:
        problems = check_pair(cert, key)
        if problems:
            raise ConfigError(problems)
    return config
