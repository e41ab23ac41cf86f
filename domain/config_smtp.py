"""`[smtp_in]` (the listener, its limits and STARTTLS, whose verdicts count) and `[smtp_out]`
(the relay, or the Maildir without one): their tables and the records built from them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from domain.config_journal import DEFAULT_MESSAGE_SIZE, MESSAGE_SIZE
from domain.config_kinds import (
    Count,
    Custom,
    Endpoint,
    FilePath,
    Flag,
    HostPort,
    Invalid,
    ListOf,
    OneOf,
    Problems,
    Text,
)
from domain.config_oauth import OAuthConfig, check_reference
from domain.config_schema import Table, key
from domain.config_tls import check_listener_tls

DEFAULT_LISTEN = "127.0.0.1:2525"
SMTP_AUTH = ("password", "xoauth2")
_BUFFERED = 256 * 1024 * 1024


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
    max_buffered_bytes: int = _BUFFERED
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


def authserv_token(value: Any, base: Path) -> str:
    """An authserv-id is one token (RFC 8601 2.2: a dot-atom or a quoted string, written
    without spaces or semicolons in practice)."""
    text = value.strip().lower() if isinstance(value, str) else ""
    if not text or any(c.isspace() or c in ';()"' for c in text):
        raise Invalid("must be one word, like mx.example.com", generic=True)
    return text


_AUTHSERV = Custom("one word, like mx.example.com", authserv_token)
_PEM = FilePath(what="the path of a PEM file")
# At least the 1,000 octets RFC 5321 (4.5.3.1.6) and RFC 5322 (2.1.1) promise every line.
_SHAPE = Count(1000)


class SmtpInTable(Table):
    listen: Annotated[HostPort, Endpoint()] = key(DEFAULT_LISTEN, doc="the SMTP listener")
    # The kind and default `ticketd ingest` reads it with too (domain/config_journal.py).
    max_message_size: Annotated[int, MESSAGE_SIZE] = key(
        DEFAULT_MESSAGE_SIZE, live=True, doc="bytes, every source; larger: 552 5.3.4"
    )
    max_header_size: Annotated[int, _SHAPE] = key(256 * 1024, live=True, doc="bytes of header")
    max_line_length: Annotated[int, _SHAPE] = key(1024 * 1024, live=True, doc="bytes in one line")
    max_connections: Annotated[int, Count(1)] = key(100, live=True, doc="open connections")
    max_connections_per_client: Annotated[int, Count(1)] = key(
        10, live=True, doc="open connections from one client IP"
    )
    max_recipients: Annotated[int, Count(1)] = key(100, live=True, doc="RCPT TO per message")
    max_commands: Annotated[int, Count(1)] = key(
        200, live=True, doc="times any one command may be sent in a session"
    )
    idle_timeout: Annotated[int, Count(1)] = key(
        300, live=True, doc="seconds without a byte from a client"
    )
    session_timeout: Annotated[int, Count(1)] = key(
        900, live=True, doc="seconds one session may last"
    )
    min_data_rate: Annotated[int, Count(0)] = key(
        256, live=True, doc="bytes a second in DATA once it lasted idle_timeout (0: none)"
    )
    max_buffered_bytes: Annotated[int | None, Count(1)] = key(
        None,
        live=True,
        shown="256 MiB, at least max_message_size",
        doc="bytes all sessions together hold before their final dot",
    )
    tls_cert: Annotated[Path | None, _PEM] = key(
        None, live=True, doc="STARTTLS: the certificate chain; with tls_key"
    )
    tls_key: Annotated[Path | None, _PEM] = key(None, live=True, doc="its private key")
    require_tls: Annotated[bool, Flag()] = key(False, live=True, doc="no MAIL before STARTTLS")
    authserv_id: Annotated[str | None, _AUTHSERV] = key(
        None,
        record="trust.authserv_id",
        shown="the host name",
        doc="the id of our own Authentication-Results",
    )
    trusted_authserv_ids: Annotated[
        tuple[str, ...],
        ListOf(Custom("one word, like mx.google.com", authserv_token), "authserv-ids", True),
    ] = key(
        (),
        record="trust.trusted_authserv_ids",
        doc="servers in front of ticketd whose Authentication-Results count",
    )
    verify_senders: Annotated[bool | None, Flag()] = key(
        None,
        record="trust.verify_senders",
        shown="true when listen is not loopback",
        doc="verify SPF, DKIM and DMARC ourselves",
    )


def build_smtp_in(problems: Problems, table: SmtpInTable) -> SmtpInConfig:
    size = table.max_message_size
    buffered = table.max_buffered_bytes
    # Room for at least one message of the largest size, or none could ever be taken.
    if buffered is not None and buffered < size:
        problems.append(("smtp_in.max_buffered_bytes", f"must be an integer of at least {size}"))
    check_listener_tls(problems, table.tls_cert, table.tls_key, table.require_tls)
    values = dict(table)
    for name in ("authserv_id", "trusted_authserv_ids", "verify_senders"):
        del values[name]  # the trust record's (domain/config_trust.py)
    values["max_buffered_bytes"] = max(_BUFFERED, size) if buffered is None else buffered
    return SmtpInConfig(**values)


class SmtpOutTable(Table):
    relay: Annotated[HostPort | None, Endpoint()] = key(
        None, doc="host:port; without it, mail goes to the Maildir"
    )
    maildir: Annotated[Path, FilePath()] = key("var/outbox", doc="the Maildir without a relay")
    starttls: Annotated[bool, Flag()] = key(False, doc="STARTTLS to the relay")
    ca_file: Annotated[Path | None, FilePath("file")] = key(
        None, doc="trust this CA instead of the system store"
    )
    username: Annotated[str | None, Text("a string", empty=True)] = key(
        None, doc="with password_file: AUTH at the relay"
    )
    password_file: Annotated[Path | None, FilePath("file")] = key(None, doc="its password")
    auth: Annotated[str, OneOf(SMTP_AUTH, "{value} is not password or xoauth2")] = key(
        "password", doc="xoauth2: AUTH XOAUTH2 with a token from [oauth.NAME]"
    )
    oauth: Annotated[str | None, Text("the name of an [oauth.NAME] block")] = key(
        None, doc="the [oauth.NAME] block of xoauth2; username is then the mailbox"
    )


def _xoauth2(problems: Problems, table: SmtpOutTable) -> None:
    """What `auth = "xoauth2"` needs in [smtp_out], one problem per key."""
    if table.oauth is None:
        problems.append(("smtp_out.oauth", 'is required with auth = "xoauth2"'))
    if table.username is None:
        problems.append(("smtp_out.username", "is required: the mailbox of the token"))
    if table.password_file is not None:
        problems.append(("smtp_out.password_file", 'not used with auth = "xoauth2"'))
    if table.relay is None:
        problems.append(("smtp_out.relay", 'is required with auth = "xoauth2"'))


def build_smtp_out(
    problems: Problems, table: SmtpOutTable, providers: tuple[OAuthConfig, ...]
) -> SmtpOutConfig:
    oauth = check_reference(problems, providers, table.auth, table.oauth, "smtp_out")
    if table.auth == "xoauth2":
        _xoauth2(problems, table)
    elif (table.username is None) != (table.password_file is None):
        problems.append(
            ("smtp_out.username", "username and password_file go together: set both or neither")
        )
    return SmtpOutConfig(**{**dict(table), "oauth": oauth})
