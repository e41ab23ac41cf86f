"""Each IMAP account's state in the database, so `ticketd health` can see an account that fails.

The account loop knows at once when a login or a sync fails, but only in its own memory (and
its metrics); `ticketd health` runs as another process, often on another host of a PostgreSQL
cluster. So the loop writes what it knows to `imap_account_status`: when a failure begins, when
its error text changes, when the account works again, and otherwise at most every HEARTBEAT, so
an account polled every few seconds does not cost a write per poll.

One row per account and daemon host: the daemon that holds the mailbox lock writes, and health
reads the newest row of each account, so an account another daemon took over shows that
daemon's word. The error text is stored with the account's password and token, and every value
`domain.logs.protect` knows, masked. Recording never stops intake: a database error here is
logged and the write is tried again at the next change or poll.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from sqlalchemy import select

from domain.clock import Clock
from domain.logs import MASK, redact
from storage.db import Database
from storage.models import ImapAccountStatus

log = logging.getLogger("ticketd.imap")
HEARTBEAT = timedelta(seconds=60)
# The relay's XOAUTH2 login is recorded the same way, under this name (no IMAP account's name
# can be mistaken for it: the brackets say it is a section).
RELAY_ACCOUNT = "[smtp_out]"
MAX_ERROR = 2000  # characters kept of an error text


class AccountStatus:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        account: str,
        mailbox: str,
        secrets: Callable[[], Iterable[str]] = tuple,
        host: str | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.account = account[:200]
        self.mailbox = mailbox[:700]
        self.secrets = secrets
        self.host = (host or socket.gethostname())[:255]
        self.failing_since: datetime | None = None
        self.error: str | None = None
        self.last_ok_at: datetime | None = None
        self._written_at: datetime | None = None
        self._dirty = True  # the database does not know the current state yet
        self._write_failed = False

    def ok(self) -> None:
        """A login or a sync worked."""
        now = self.clock.now()
        if self.failing_since is not None:
            self._dirty = True
        self.failing_since, self.error, self.last_ok_at = None, None, now
        self._maybe_write(now)

    def failed(self, reason: str) -> None:
        """A login or a sync failed with this reason (as logged)."""
        now = self.clock.now()
        reason = self.scrub(reason)[:MAX_ERROR]
        if self.failing_since is None:
            self.failing_since = now
            self._dirty = True
        if reason != self.error:
            self.error = reason
            self._dirty = True
        self._maybe_write(now)

    def scrub(self, text: str) -> str:
        for secret in self.secrets():
            if secret and len(secret) >= 4:
                text = text.replace(secret, MASK)
        return redact(text)

    def _maybe_write(self, now: datetime) -> None:
        if not self._dirty and self._written_at is not None and now - self._written_at < HEARTBEAT:
            return
        try:
            self._write(now)
        except Exception as error:  # never let bookkeeping stop intake
            self._dirty = True
            level = logging.DEBUG if self._write_failed else logging.WARNING
            log.log(
                level,
                "imap %s: could not record the account's state in the database: %s",
                self.account,
                self.scrub(str(error) or type(error).__name__),
            )
            self._write_failed = True
            return
        if self._write_failed:
            log.info("imap %s: recording the account's state again", self.account)
        self._written_at, self._dirty, self._write_failed = now, False, False

    def _write(self, now: datetime) -> None:
        with self.db.transaction() as session:
            row = session.scalar(
                select(ImapAccountStatus).where(
                    ImapAccountStatus.account == self.account,
                    ImapAccountStatus.daemon_host == self.host,
                )
            )
            if row is None:
                row = ImapAccountStatus(account=self.account, daemon_host=self.host)
                session.add(row)
            elif (
                self.failing_since is not None
                and row.failing_since is not None
                and row.failing_since < self.failing_since
            ):
                # A restarted daemon finds the outage it recorded before: it goes on.
                self.failing_since = row.failing_since
            row.mailbox = self.mailbox
            row.failing_since = self.failing_since
            row.last_error = self.error
            if self.last_ok_at is not None:
                row.last_ok_at = self.last_ok_at
            row.updated_at = now
