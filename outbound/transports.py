"""Where mail leaves: an SMTP relay (aiosmtplib) or a local Maildir.

Both raise `TemporaryFailure` (try again later) or `PermanentFailure` (record it, stop trying).
The relay takes a password (AUTH PLAIN/LOGIN) or an OAuth2 token (AUTH XOAUTH2, `auth =
"xoauth2"`): a token that is refused is renewed once and tried again; when logging in still
fails the mail waits in the outbox (`CredentialsFailure`, a temporary failure), the outage is
logged once and recorded for `ticketd health`, and the mail leaves once logging in works again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import aiosmtplib

from domain.account_status import RELAY_ACCOUNT, AccountStatus
from domain.config import SmtpOutConfig
from domain.errors import Permanent, Temporary
from domain.token_source import TokenError, TokenSource

log = logging.getLogger("ticketd.sender")
__all__ = ["RELAY_ACCOUNT"]  # where the daemon records the relay's login state


class TemporaryFailure(Temporary):
    pass


class PermanentFailure(Permanent):
    pass


class CredentialsFailure(TemporaryFailure):
    """The relay could not be logged in to: no token, or the relay refused it. The transport
    logs the outage once; the sender need not log each mail that waits because of it."""


@dataclass(frozen=True)
class OutgoingMail:
    outbox_id: int
    message_id: str
    envelope_sender: str  # "" for automatic mail: RFC 3834 wants no bounces to auto-replies
    recipients: tuple[str, ...]
    raw: bytes


class Transport(Protocol):
    async def deliver(self, mail: OutgoingMail) -> str: ...


class MaildirTransport:
    """Writes each mail once into Maildir `new/`: the file name is derived from the outbox row,
    so delivering the same row again (after a crash) finds the file and writes nothing."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for sub in ("tmp", "new", "cur"):
            (root / sub).mkdir(parents=True, exist_ok=True)

    def _name(self, mail: OutgoingMail) -> str:
        digest = hashlib.sha256(mail.message_id.encode()).hexdigest()[:16]
        return f"ticketd-{mail.outbox_id}-{digest}.{socket.gethostname()}"

    async def deliver(self, mail: OutgoingMail) -> str:
        name = self._name(mail)
        final = self.root / "new" / name
        already = final.exists() or any((self.root / "cur").glob(name + ":*"))
        if already:
            return f"already in {final}"
        tmp = self.root / "tmp" / name
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
            try:
                os.write(fd, mail.raw)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, final)
        except OSError as error:
            raise TemporaryFailure(f"Maildir {self.root}: {error}") from error
        return f"written to {final}"


class SmtpRelayTransport:
    def __init__(
        self,
        config: SmtpOutConfig,
        local_hostname: str | None = None,
        tokens: TokenSource | None = None,
        status: AccountStatus | None = None,
    ) -> None:
        assert config.relay is not None
        self.config = config
        self.local_hostname = local_hostname
        self.tokens = tokens
        self.status = status
        self.login_failing: str | None = None  # the reason, while logging in fails
        self.password: str | None = None
        if config.password_file is not None:
            self.password = config.password_file.read_text(encoding="utf-8").strip()
        # A private CA (a relay with its own certificate) instead of the system store.
        self.tls_context = (
            ssl.create_default_context(cafile=str(config.ca_file)) if config.ca_file else None
        )

    def client(self) -> aiosmtplib.SMTP:
        relay = self.config.relay
        assert relay is not None
        # The SMTP client rather than aiosmtplib.send(): send() refuses the empty envelope
        # sender ("MAIL FROM:<>") that automatic mail must use.
        return aiosmtplib.SMTP(
            hostname=relay.host,
            port=relay.port,
            timeout=self.config.timeout,
            local_hostname=self.local_hostname,
            start_tls=self.config.starttls,
            use_tls=False,
            tls_context=self.tls_context,
        )

    async def deliver(self, mail: OutgoingMail) -> str:
        try:
            async with self.client() as client:
                await self.log_in(client)
                errors, response = await client.sendmail(
                    mail.envelope_sender, list(mail.recipients), mail.raw
                )
        except aiosmtplib.SMTPRecipientsRefused as error:
            codes = [r.code for r in error.recipients]
            text = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in error.recipients)
            if all(code >= 500 for code in codes):
                raise PermanentFailure(text) from error
            raise TemporaryFailure(text) from error
        except aiosmtplib.SMTPResponseException as error:
            text = f"{error.code} {error.message}"
            if error.code >= 500:
                raise PermanentFailure(text) from error
            raise TemporaryFailure(text) from error
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
            raise TemporaryFailure(f"{type(error).__name__}: {error}") from error
        if errors:
            # Some recipients refused; ours are single-recipient mails, so report them.
            refused = "; ".join(
                f"{addr}: {resp.code} {resp.message}" for addr, resp in errors.items()
            )
            raise PermanentFailure(refused)
        return response

    async def log_in(self, client: aiosmtplib.SMTP) -> None:
        """AUTH as configured (nothing without credentials); CredentialsFailure if it fails."""
        try:
            if self.config.auth == "xoauth2":
                await self._xoauth2(client)
            elif self.config.username and self.password is not None:
                await client.login(self.config.username, self.password)
        except CredentialsFailure as failure:
            if self.login_failing is None:
                log.error("relay %s: %s; mail waits in the outbox", self.config.relay, failure)
            self.login_failing = str(failure)
            if self.status is not None:
                await asyncio.to_thread(self.status.failed, str(failure))
            raise
        if self.login_failing is not None:
            log.info("relay %s: logging in works again", self.config.relay)
        self.login_failing = None
        if self.status is not None:
            await asyncio.to_thread(self.status.ok)

    async def _xoauth2(self, client: aiosmtplib.SMTP) -> None:
        assert self.tokens is not None and self.config.username is not None
        username = self.config.username
        for attempt in (1, 2):
            try:
                token = await asyncio.to_thread(self.tokens.token)
            except TokenError as error:
                raise CredentialsFailure(f"no access token for {username}: {error}") from None
            try:
                await client.auth_xoauth2(username, token.value)
                return
            except aiosmtplib.SMTPAuthenticationError as error:
                self.tokens.refused(token.value)  # renewed once, at the next token()
                if attempt == 2:
                    raise CredentialsFailure(
                        f"AUTH XOAUTH2 as {username} refused with a new token: {error.code} "
                        f"{error.message} (may the app send as this mailbox?)"
                    ) from None

    async def probe(self) -> str:
        """Connect and log in without sending (`check --connect`): what worked, or raises."""
        try:
            async with self.client() as client:
                await self.log_in(client)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
            raise TemporaryFailure(f"{type(error).__name__}: {error}") from error
        if self.config.auth == "xoauth2":
            return f"AUTH XOAUTH2 as {self.config.username} accepted"
        if self.password is not None:
            return f"AUTH as {self.config.username} accepted"
        return "connected (no AUTH configured)"


def make_transport(
    config: SmtpOutConfig, tokens: TokenSource | None = None, status: AccountStatus | None = None
) -> Transport:
    """`tokens`: the relay's XOAUTH2 token source (`auth = "xoauth2"`); `status`: where its
    login state is recorded for `ticketd health`."""
    if config.relay is not None:
        return SmtpRelayTransport(config, tokens=tokens, status=status)
    return MaildirTransport(config.maildir)
