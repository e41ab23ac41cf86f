"""The configuration file: one TOML file read into frozen, validated records.

The sections and their keys are declared once, as tables of the schema (domain/config_schema.py:
how to add a section), here and in the `config_*` module of each section. `parse_config` reads
every section through its table, then builds the records the rest of ticketd reads (`Config` and
the records inside it), checking what one key cannot say alone (keys that go together,
references between sections). Every problem is reported as a `ConfigError` that names the key
and the reason, so `ticketd check` and `ticketd run` can print something an admin can act on
instead of a traceback. Relative paths are relative to the folder of the configuration file.
`ticketd ingest` reads the journal's few keys without all this (domain/config_journal.py, whose
kinds and defaults the tables here use) and comes here when they are not plainly sound.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from domain.config_classify import ClassifyConfig, ClassifyTable
from domain.config_file import ConfigError as ConfigError
from domain.config_file import read_toml
from domain.config_imap import ImapAccountConfig as ImapAccountConfig
from domain.config_imap import ImapTable, build_imap
from domain.config_journal import (
    BLOBS,
    DATABASE,
    DEFAULT_BLOBS,
    DEFAULT_DATABASE,
    JournalConfig,
)
from domain.config_kinds import (
    Address,
    Count,
    Endpoint,
    FilePath,
    ListOf,
    OneOf,
    Problems,
    Text,
    Url,
    Whole,
    Zone,
)
from domain.config_kinds import HostPort as HostPort
from domain.config_kyc import KycConfig, KycTable, build_kyc
from domain.config_oauth import OAuthConfig, OAuthTable, build_oauth
from domain.config_retention import RetentionConfig, RetentionTable, build_retention
from domain.config_schema import Section, Table, Tables, key, read_sections
from domain.config_secret import FILE_NAME as SECRET_FILE_NAME
from domain.config_secret import file_secret, inline_problem
from domain.config_sla import SlaConfig, SlaTable, build_sla
from domain.config_smtp import DEFAULT_LISTEN as DEFAULT_LISTEN
from domain.config_smtp import SmtpInConfig as SmtpInConfig
from domain.config_smtp import SmtpInTable, SmtpOutTable, build_smtp_in, build_smtp_out
from domain.config_smtp import SmtpOutConfig as SmtpOutConfig
from domain.config_spam import SpamConfig, SpamTable, build_spam
from domain.config_team import (
    AgentRepliesTable,
    AgentTable,
    CategoriesTable,
    QueueTable,
    TeamConfig,
    TeamTables,
    build_team,
    team_warnings,
)
from domain.config_trust import DnsTable, TrustConfig, build_dns, build_trust
from domain.config_webhooks import WebhookConfig, WebhookTable, build_webhooks
from domain.tls_files import check_pair


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


NOTIFY_ATTACHMENT_SIZE = 5 * 1024 * 1024


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
    # Bytes of a customer's files attached to one agent mail (scanned by then when a virus
    # scanner is configured); past it files are only named, identity documents are attached
    # to identity agents only. 5 MB by default: an agent's mail client is their only window,
    # and a receipt or a phone photo is well under it; 0: none attached.
    notify_attachment_size: int = NOTIFY_ATTACHMENT_SIZE
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

    @property
    def journal(self) -> JournalConfig:
        """What the journal needs: what `ticketd ingest` reads (domain/config_journal.py)."""
        return JournalConfig(
            database=self.storage.database,
            blobs=self.storage.blobs,
            key_file=self.kyc.key_file,
            max_message_size=self.smtp_in.max_message_size,
        )


class StorageTable(Table):
    # The kinds and defaults `ticketd ingest` reads these keys with too.
    database: Annotated[str, DATABASE] = key(DEFAULT_DATABASE, doc="the database")
    blobs: Annotated[Path, BLOBS] = key(
        DEFAULT_BLOBS, doc="the folder of raw messages and documents"
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
    # 5 MB: a receipt, a screenshot or a phone photo of an ID fits; an agent's mail client is
    # their only window on the ticket. 0 turns attaching off.
    notify_attachment_size: Annotated[int, Count(0)] = key(
        NOTIFY_ATTACHMENT_SIZE,
        live=True,
        doc="bytes of a customer's files attached to an agent's mail (0: none)",
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


LANGUAGES = ("tr", "en")
# A desk's times are its people's: a Turkish desk's default is Istanbul's zone.
DEFAULT_ZONES = {"tr": "Europe/Istanbul", "en": "UTC"}
_ADDRESSES = ListOf(Address(), "email addresses", indexed=True)


class DeskTable(Table):
    name: Annotated[str, Text()] = key("Destek", live=True, doc="display name of our mail")
    address: Annotated[str, Address()] = key(doc="where customers write")
    language: Annotated[str, OneOf(LANGUAGES)] = key(
        "tr", live=True, doc="for customers whose language is not known"
    )
    timezone: Annotated[str | None, Zone()] = key(
        None, shown="Europe/Istanbul for tr, UTC for en", doc="the zone of times people read"
    )
    extra_addresses: Annotated[tuple[str, ...], _ADDRESSES] = key(
        (), doc="other addresses of the desk (no acknowledgement loops)"
    )
    secret: Annotated[str, Text("a string", empty=True, strip=False)] = key(
        "", doc="signs Message-IDs and reply addresses; unset: generated"
    )
    secret_file: Annotated[Path | None, FilePath()] = key(
        None, shown="desk.secret beside kyc.key_file", doc="where the generated secret is kept"
    )
    admins: Annotated[tuple[str, ...], _ADDRESSES] = key(
        (), live=True, record="team.admins", doc="told about security events (forged agent mail)"
    )


def _desk(problems: Problems, table: DeskTable, kyc: KycTable | None) -> DeskConfig:
    secret, secret_file = table.secret, None
    if secret and (why := inline_problem(secret, table.address)) is not None:
        problems.append(("desk.secret", why))
    elif secret and table.secret_file is not None:
        problems.append(("desk.secret_file", "set desk.secret or desk.secret_file, not both"))
    elif not secret and kyc is not None:
        # By default beside the identity-document key file, made on first use
        # (domain/config_secret.py).
        secret_file = table.secret_file or kyc.key_file.parent / SECRET_FILE_NAME
        secret = file_secret(problems, secret_file, named=table.secret_file is not None)
    return DeskConfig(
        name=table.name,
        address=table.address,
        language=table.language,
        extra_addresses=table.extra_addresses,
        secret=secret,
        secret_file=secret_file,
        timezone=table.timezone or DEFAULT_ZONES[table.language],
    )


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


# Every section of the file, in the order `check` reports them (domain/config_schema.py).
SECTIONS: tuple[Section, ...] = (
    Section("desk", DeskTable),
    Section("storage", StorageTable),
    Section("smtp_in", SmtpInTable),
    Section("smtp_out", SmtpOutTable),
    Section("limits", LimitsTable),
    Section("templates", TemplatesTable, record="templates_dir"),
    Section("metrics", MetricsTable),
    Section("http", HttpTable),
    Section("threading", ThreadingTable),
    Section("imap", ImapTable, "array"),
    Section("queues", QueueTable, "array", "team.queues", live=True),
    Section("agents", AgentTable, "array", "team.agents", live=True),
    Section("categories", CategoriesTable, record="team.category_keywords"),
    Section("agent_replies", AgentRepliesTable, record="team.agent_replies"),
    Section("sla", SlaTable),
    Section("kyc", KycTable),
    Section("retention", RetentionTable),
    Section("dns", DnsTable, record="trust.dns"),
    Section("spam", SpamTable),
    Section("oauth", OAuthTable, "named"),
    Section("classify", ClassifyTable),
    Section("webhooks", WebhookTable, "array", live=True),
)


def _simple_records(tables: Tables) -> dict[str, Any]:
    """The records that are their table's keys as they are."""
    storage = tables.one("storage", StorageTable)
    templates = tables.one("templates", TemplatesTable)
    metrics = tables.one("metrics", MetricsTable)
    http = tables.one("http", HttpTable)
    return {
        "storage": storage and StorageConfig(storage.database, storage.blobs),
        "limits": LimitsConfig(**dict(tables.one("limits", LimitsTable) or {})),
        "threading": ThreadingConfig(**dict(tables.one("threading", ThreadingTable) or {})),
        "metrics": MetricsConfig(metrics.listen if metrics else None),
        "http": http and HttpConfig(http.listen, http.public_url),
        "templates_dir": templates.folder if templates else None,
        "retention": build_retention(tables.one("retention", RetentionTable)),
        "spam": build_spam(tables.one("spam", SpamTable)),
        "classify": ClassifyConfig(**dict(tables.one("classify", ClassifyTable) or {})),
    }


def _team(problems: Problems, tables: Tables, listen: HostPort) -> TeamConfig | None:
    desk = tables.one("desk", DeskTable)
    categories = tables.one("categories", CategoriesTable)
    replies = tables.one("agent_replies", AgentRepliesTable)
    if desk is None or categories is None or replies is None:
        return None
    team = TeamTables(
        tables.many("queues", QueueTable),
        tables.many("agents", AgentTable),
        categories,
        replies,
        desk.admins,
    )
    return build_team(problems, team, listen)


def _records(problems: Problems, tables: Tables, base: Path) -> dict[str, Any]:
    """Every record of `Config` but its path and warnings; None for one whose tables had
    problems (those are reported, and no Config is made)."""
    records = _simple_records(tables)
    oauth = build_oauth(problems, tables.named("oauth", OAuthTable), base)
    kyc_table = tables.one("kyc", KycTable)
    kyc = kyc_table and build_kyc(problems, kyc_table)
    desk = tables.one("desk", DeskTable)
    key_file_wrong = any(name == "kyc.key_file" for name, _ in problems)
    records["desk"] = desk and _desk(problems, desk, None if key_file_wrong else kyc_table)
    smtp_in = tables.one("smtp_in", SmtpInTable)
    smtp_out = tables.one("smtp_out", SmtpOutTable)
    sla = tables.one("sla", SlaTable)
    dns = build_dns(tables.one("dns", DnsTable))
    records.update(
        kyc=kyc,
        oauth=oauth,
        imap=build_imap(problems, tables.many("imap", ImapTable), oauth),
        smtp_in=smtp_in and build_smtp_in(problems, smtp_in),
        smtp_out=smtp_out and build_smtp_out(problems, smtp_out, oauth),
        trust=smtp_in and build_trust(problems, smtp_in, dns),
        team=smtp_in and _team(problems, tables, smtp_in.listen),
        sla=sla and build_sla(sla),
        webhooks=build_webhooks(problems, tables.many("webhooks", WebhookTable), base),
    )
    # A section built by nothing above is its own record: Config.<name> holds its table (a
    # tuple of them for [[name]], a dict for [name.NAME]), as domain/config_schema.py says.
    for section in SECTIONS:
        if section.where not in records and "." not in section.where:
            records[section.where] = tables.record(section.name)
    return records


def parse_config(data: dict[str, Any], path: Path) -> Config:
    """Validate parsed TOML; raises ConfigError listing every problem found."""
    problems: Problems = []
    tables = read_sections(problems, data, SECTIONS, {"base": path.parent})
    records = _records(problems, tables, path.parent)
    if problems:
        raise ConfigError(problems)
    warnings = (
        *team_warnings(records["team"]),
        *_time_warnings(records["trust"], records["spam"], records["limits"]),
    )
    return Config(path=path, warnings=warnings, **records)


def load_config(path: Path) -> Config:
    """Read and validate the file; a missing or unparsable file is a ConfigError too."""
    return parse_config(read_toml(path), path.resolve())


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
