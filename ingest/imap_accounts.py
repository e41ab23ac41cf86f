"""The loop of one `[[imap]]` account, in its own thread: connect, sync, wait, again.

Each account runs alone, so a wrong password, a dead server or an expired token stops only that
account; the failure is logged once when it starts (with the reason) and once when it ends, not
on every retry. New mail is seen at once with IDLE when the server offers it, else by polling
every `poll_interval` seconds. The stop event is checked at least every STOP_CHECK seconds, so
SIGTERM ends the thread promptly; stopping mid-sync is safe (see imap_fetch).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from imapclient import IMAPClient

from domain.account_status import AccountStatus
from domain.clock import Clock
from domain.config import ImapAccountConfig
from ingest.imap_checkpoints import Checkpoints, MailboxLock
from ingest.imap_fetch import FolderSync
from ingest.imap_session import (
    NETWORK_ERRORS,
    ImapUnavailable,
    LoginRefused,
    close,
    connect,
    mailbox_key,
)
from ingest.journal import Journal, StorageFailure
from ingest.oauth_tokens import OAuthBroker, imap_tokens
from storage.db import Database


class Metrics(Protocol):
    """What a poller reports to the daemon's metrics (ticketd/metrics.py implements it)."""

    def imap_failed(self, account: str) -> None: ...

    def imap_polled(self, account: str, journaled: int, at: datetime) -> None: ...


log = logging.getLogger("ticketd.imap")
STOP_CHECK = 0.5  # seconds: how long an IDLE wait or a sleep may delay SIGTERM
IDLE_RENEW = 600.0  # seconds: re-issue IDLE well inside the 29 minutes of RFC 2177
BACKOFF_MAX = 300.0


@dataclass
class Backoff:
    """Delays 1, 2, 4 ... BACKOFF_MAX seconds; `first` says whether to log (once per outage)."""

    failures: int = 0
    maximum: float = BACKOFF_MAX

    def fail(self) -> tuple[bool, float]:
        self.failures += 1
        return self.failures == 1, min(2.0 ** (self.failures - 1), self.maximum)

    def succeed(self) -> bool:
        """True when this ends an outage (worth a log line)."""
        ended = self.failures > 0
        self.failures = 0
        return ended


class AccountRunner:
    def __init__(
        self,
        account: ImapAccountConfig,
        db: Database,
        journal: Journal,
        clock: Clock,
        on_journaled: Callable[[], None] = lambda: None,
        stop: threading.Event | None = None,
        backoff_max: float = BACKOFF_MAX,
        metrics: Metrics | None = None,
        max_message_size: int = 25 * 1024 * 1024,
        broker: OAuthBroker | None = None,
    ) -> None:
        self.account = account
        self.mailbox = mailbox_key(account)
        self.db = db
        self.journal = journal
        self.clock = clock
        self.on_journaled = on_journaled
        self.stop = stop or threading.Event()
        self.backoff = Backoff(maximum=backoff_max)
        self.metrics = metrics
        self.max_message_size = max_message_size
        # Shared with the relay's side when both name the same [oauth.NAME] (the broker).
        self.tokens = imap_tokens(account, clock, broker)
        self.lock = MailboxLock(db, self.mailbox)
        self.last_error: str | None = None  # for status displays; None while healthy
        # The same state in the database, for `ticketd health` in another process.
        self.status = AccountStatus(db, clock, account.name, self.mailbox, self._secrets)

    def run(self) -> None:
        """Until the stop event: never raises for a broken server or a refused login."""
        name = self.account.name
        try:
            while not self.stop.is_set():
                if not self._wait_for_lock():
                    break
                try:
                    self._session()
                except (ImapUnavailable, LoginRefused, StorageFailure, *NETWORK_ERRORS) as error:
                    self._failed(error)
        finally:
            self.lock.release()
            log.info("imap %s: stopped", name)

    def _wait_for_lock(self) -> bool:
        told = False
        while not self.stop.is_set():
            if self.lock.held() or self.lock.acquire():
                return True
            if not told:
                log.info(
                    "imap %s: another daemon polls %s; standing by", self.account.name, self.mailbox
                )
                told = True
            self.stop.wait(min(float(self.account.poll_interval), 30.0))
        return False

    def _failed(self, error: BaseException) -> None:
        reason = str(error) or type(error).__name__
        if isinstance(error, LoginRefused):
            reason = f"login failed: {reason}"
        elif isinstance(error, StorageFailure):
            reason = f"journal unavailable, mail stays on the server: {reason}"
        first, delay = self.backoff.fail()
        self.last_error = reason
        self.status.failed(reason)
        if self.metrics is not None:
            self.metrics.imap_failed(self.account.name)
        if first:
            log.error("imap %s: %s; retrying with backoff", self.account.name, reason)
        else:
            log.debug(
                "imap %s: still failing (%s); next try in %.0f s", self.account.name, reason, delay
            )
        self.stop.wait(delay)

    def _secrets(self) -> list[str]:
        """What an error text must not carry into the database: this account's credentials."""
        found = []
        if self.account.password_file is not None:
            with contextlib.suppress(OSError):
                found.append(self.account.password_file.read_text(encoding="utf-8").strip())
        token = self.tokens.cached() if self.tokens is not None else None
        if token:
            found.append(token)
        return found

    def _session(self) -> None:
        client = connect(self.account, self.tokens)
        try:
            sync = FolderSync(
                client,
                self.account,
                self.mailbox,
                self.journal,
                Checkpoints(self.db, self.clock),
                self.clock,
                self.on_journaled,
                self.stop,
                self.max_message_size,
            )
            sync.prepare()
            idle = self.account.idle and client.has_capability("IDLE")
            if self.backoff.succeed():
                log.info("imap %s: connected again", self.account.name)
            else:
                log.info(
                    "imap %s: connected to %s, %s",
                    self.account.name,
                    self.mailbox,
                    "waiting with IDLE"
                    if idle
                    else f"polling every {self.account.poll_interval} s",
                )
            self.last_error = None
            self.status.ok()
            # A source that hands out a token about to expire was reported by the provider;
            # logging in again with it would only loop.
            refresh_helps = self.tokens is not None and not self.tokens.needs_refresh()
            while not self.stop.is_set():
                result = sync.run()
                if self.metrics is not None:
                    self.metrics.imap_polled(self.account.name, result.journaled, self.clock.now())
                self.status.ok()  # written on a change, else at most every HEARTBEAT
                if result.journaled or result.recognised or result.quarantined:
                    log.info(
                        "imap %s: %d new, %d already journaled, %d quarantined",
                        self.account.name,
                        result.journaled,
                        result.recognised,
                        result.quarantined,
                    )
                if not self.lock.held():
                    log.warning("imap %s: lost the mailbox lock; reconnecting", self.account.name)
                    return
                if refresh_helps and self.tokens is not None and self.tokens.needs_refresh():
                    # Servers end a session whose token expired; log in again before that.
                    log.info(
                        "imap %s: access token due for refresh; logging in again", self.account.name
                    )
                    return
                if idle:
                    self._idle(client)
                else:
                    self.stop.wait(self.account.poll_interval)
        finally:
            close(client)

    def _idle(self, client: IMAPClient) -> None:
        """Wait for new mail (EXISTS) or the poll interval, whichever comes first."""
        limit = time.monotonic() + min(float(self.account.poll_interval), IDLE_RENEW)
        client.idle()
        try:
            while not self.stop.is_set() and time.monotonic() < limit:
                responses = client.idle_check(timeout=STOP_CHECK)
                if any(len(r) > 1 and r[1] in (b"EXISTS", b"RECENT") for r in responses):
                    return
        finally:
            client.idle_done()
