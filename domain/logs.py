"""Logging to standard error in a form journald keeps well.

One line per event (a traceback is folded onto its line, or journald would make every frame an
entry of its own), a level, and no secrets: values registered with `protect` (the relay password,
the desk secret) are masked in every line, whatever logged them. Under systemd ($JOURNAL_STREAM
names our standard error) lines carry a `<N>` syslog priority prefix, which journald turns into
the entry's level, and no timestamp, because journald records its own.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:  # only a type here: `ticketd ingest` logs without the schema (issue 19)
    from domain.config import Config

# syslog priorities (RFC 5424) for Python's levels; journald reads them from the `<N>` prefix.
_PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))
# Libraries whose INFO lines are not events of the desk (APScheduler: two lines a minute).
_NOISY = ("mail.log", "aiosmtpd", "alembic", "aiosmtplib", "imapclient", "apscheduler")
MASK = "***"


def syslog_priority(levelno: int) -> int:
    for level, priority in _PRIORITIES:
        if levelno >= level:
            return priority
    return 7  # debug


class Redactor(logging.Filter):
    """Masks registered secrets in the formatted message of every record it sees."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()
        # Values that change (OAuth2 access tokens): asked for at every line, so an hourly
        # token is masked while it is in use without the set growing for ever.
        self.sources: list[Callable[[], Iterable[str]]] = []

    def mask(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        for source in self.sources:
            for secret in source():
                if len(secret) >= 4:
                    text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets or self.sources:
            record.msg, record.args = self.mask(record.getMessage()), None
        return True


class OneLineFormatter(logging.Formatter):
    """`[time] LEVEL logger: message`, with any newline (tracebacks included) folded away."""

    def __init__(self, journal: bool) -> None:
        fmt = "%(levelname)s %(name)s: %(message)s"
        super().__init__(fmt if journal else "%(asctime)s " + fmt)
        self.journal = journal
        self.redactor: Redactor | None = None

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if self.redactor is not None:  # the traceback too may quote a secret
            text = self.redactor.mask(text)
        text = " | ".join(line for line in text.splitlines() if line.strip())
        return f"<{syslog_priority(record.levelno)}>{text}" if self.journal else text


def under_journald(environ: Mapping[str, str], stream: TextIO) -> bool:
    """$JOURNAL_STREAM is "DEV:INODE" of the stream systemd connected; it is ours only when it
    matches our standard error (a child started from a service inherits the variable)."""
    value = environ.get("JOURNAL_STREAM", "")
    if not value:
        return False
    try:
        stat = os.fstat(stream.fileno())
    except (OSError, ValueError):
        return True  # no real descriptor to compare (tests); trust the variable
    return value == f"{stat.st_dev}:{stat.st_ino}"


_redactor = Redactor()


def setup(verbose: bool = False, environ: Mapping[str, str] | None = None) -> None:
    stream = sys.stderr
    handler = logging.StreamHandler(stream)
    formatter = OneLineFormatter(journal=under_journald(environ or os.environ, stream))
    formatter.redactor = _redactor
    handler.setFormatter(formatter)
    handler.addFilter(_redactor)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)


def protect(value: str | None) -> None:
    """Never show this value in a log line (too short a value would mask ordinary words)."""
    if value and len(value) >= 4:
        _redactor.secrets.add(value)


def protect_source(source: Callable[[], Iterable[str]]) -> None:
    """Never show the values `source` returns at the time of a log line (tokens that change)."""
    _redactor.sources.append(source)


def redact(text: str) -> str:
    """This text with every protected value masked (for text stored outside the log)."""
    return _redactor.mask(text)


def protect_config(config: Config) -> None:
    """The secrets a configuration points at: the relay password and the desk secret."""
    protect(config.desk.secret)
    for hook in config.webhooks:  # the keys that sign webhooks
        protect(hook.secret)
    password_file = config.smtp_out.password_file
    if password_file is not None:
        # An unreadable file is the transport's to report; there is nothing to mask then.
        with contextlib.suppress(OSError):
            protect(password_file.read_text(encoding="utf-8").strip())
    for account in config.imap:  # IMAP passwords too; tokens change, see ingest/oauth_tokens
        if account.password_file is not None:
            with contextlib.suppress(OSError):
                protect(account.password_file.read_text(encoding="utf-8").strip())
    for provider in config.oauth:  # the apps' secrets and the users' refresh tokens
        if provider.client_secret_file is not None:
            with contextlib.suppress(OSError):
                protect(provider.client_secret_file.read_text(encoding="utf-8").strip())
        with contextlib.suppress(OSError, ValueError):
            stored = json.loads(provider.refresh_token_file.read_text(encoding="utf-8"))
            if isinstance(stored, dict):
                protect(str(stored.get("refresh_token", "")))
