"""`[[imap]]`: the mailbox folders whose mail becomes tickets, their table and their records."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from domain.config_kinds import (
    Count,
    Custom,
    FilePath,
    Flag,
    Invalid,
    OneOf,
    Problems,
    Text,
    Whole,
    toml_value,
)
from domain.config_oauth import OAuthConfig, check_reference
from domain.config_schema import Table, key

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


def _command(value: Any, base: Path) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(shlex.split(value))
    if isinstance(value, list | tuple) and all(isinstance(part, str) for part in value):
        return tuple(value)  # a tuple: the default
    raise Invalid("must be a command line or a list")


def _after(value: Any, base: Path) -> tuple[str, str | None]:
    """(what, folder): ("seen", None), ("delete", None) or ("move", FOLDER)."""
    text = value.strip() if isinstance(value, str) else ""
    if text.startswith("move:") and text[5:].strip():
        return "move", text[5:].strip()
    if text in ("seen", "delete"):
        return text, None
    raise Invalid(f"{toml_value(text or value)} is not seen, delete or move:FOLDER")


_FILE = FilePath("file")
_CHOICE = "{value} is not "


class ImapTable(Table):
    name: Annotated[str, Text()] = key(doc="the account's name in logs, metrics and health")
    host: Annotated[str, Text()] = key(doc="the IMAP server")
    port: Annotated[int | None, Whole(1, 65535, "a port from 1 to 65535")] = key(
        None, shown="993 with tls, else 143", doc="its port"
    )
    security: Annotated[str, OneOf(IMAP_SECURITY, _CHOICE + "tls, starttls or none")] = key(
        "tls", doc="tls, starttls or none"
    )
    ca_file: Annotated[Path | None, _FILE] = key(None, doc="trust this CA (a self-signed server)")
    username: Annotated[str, Text()] = key(doc="the login")
    password_file: Annotated[Path | None, _FILE] = key(None, doc="its password (auth = password)")
    auth: Annotated[str, OneOf(IMAP_AUTH, _CHOICE + "password or xoauth2")] = key(
        "password", doc="xoauth2: one of oauth, token_command, token_file"
    )
    oauth: Annotated[str | None, Text("the name of an [oauth.NAME] block")] = key(
        None, doc="a token ticketd gets itself from [oauth.NAME]"
    )
    token_command: Annotated[tuple[str, ...], Custom("a command line or a list", _command)] = key(
        (), doc="prints the token, or JSON with access_token and expires_in/expires_at"
    )
    token_file: Annotated[Path | None, _FILE] = key(None, doc="a token another tool keeps fresh")
    folder: Annotated[str, Text()] = key("INBOX", doc="the folder read")
    after: Annotated[tuple[str, str | None], Custom("seen, delete or move:FOLDER", _after)] = key(
        "seen", doc="what becomes of a message once stored"
    )
    idle: Annotated[bool, Flag()] = key(True, doc="IMAP IDLE for new mail")
    poll_interval: Annotated[int, Count(1)] = key(60, doc="seconds between polls")
    batch_size: Annotated[int, Count(1)] = key(100, doc="messages fetched at once")
    timeout: Annotated[int, Count(1)] = key(60, doc="seconds for one network operation")
    quiet_older_than_hours: Annotated[int, Count(0)] = key(
        72, doc="older mail gets a ticket but no acknowledgement"
    )
    quiet_first_sync: Annotated[bool, Flag()] = key(
        False, doc="what is in the folder at the first sync gets no acknowledgement"
    )


def _credentials(
    problems: Problems, table: ImapTable, at: str, providers: tuple[OAuthConfig, ...]
) -> str | None:
    """What `auth` needs of an account: a password_file, or exactly one token source; the
    `[oauth.NAME]` block an `oauth` key names, when it names one that exists."""
    if table.auth == "password" and table.password_file is None:
        problems.append((f"{at}.password_file", 'is required (or auth = "xoauth2")'))
    sources = (table.oauth is not None) + (table.token_file is not None) + bool(table.token_command)
    if table.auth == "xoauth2" and sources != 1:
        problems.append(
            (f"{at}.oauth", "xoauth2 needs exactly one of oauth, token_command, token_file")
        )
        return None  # one error per key
    return check_reference(problems, providers, table.auth, table.oauth, at)


def _account(
    problems: Problems, table: ImapTable, at: str, providers: tuple[OAuthConfig, ...]
) -> ImapAccountConfig:
    after, move_to = table.after
    if move_to == table.folder:
        problems.append((f"{at}.after", "cannot move into the folder it reads"))
    values = dict(table)
    values.update(after=after, move_to=move_to)
    values["oauth"] = _credentials(problems, table, at, providers)
    if table.port is None:
        values["port"] = 993 if table.security == "tls" else 143
    return ImapAccountConfig(**values)


def build_imap(
    problems: Problems, tables: list[tuple[int, ImapTable]], providers: tuple[OAuthConfig, ...]
) -> tuple[ImapAccountConfig, ...]:
    """The accounts; problems are named `imap[N].key`."""
    accounts: list[ImapAccountConfig] = []
    names: set[str] = set()
    mailboxes: set[tuple[str, int, str, str]] = set()
    for index, table in tables:
        account = _account(problems, table, f"imap[{index}]", providers)
        if account.name in names:
            problems.append((f"imap[{index}].name", f"{toml_value(account.name)} is used twice"))
        mailbox = (account.host.lower(), account.port, account.username, account.folder)
        if mailbox in mailboxes:
            problems.append(
                (f"imap[{index}].folder", "the same server, user and folder is configured twice")
            )
        names.add(account.name)
        mailboxes.add(mailbox)
        accounts.append(account)
    return tuple(accounts)
