"""Where mail leaves: an SMTP relay (aiosmtplib) or a local Maildir.

Both raise `TemporaryFailure` (try again later) or `PermanentFailure` (record it, stop trying).
"""

from __future__ import annotations

import hashlib
import os
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import aiosmtplib

from ticketd.config import SmtpOutConfig


class TemporaryFailure(Exception):
    pass


class PermanentFailure(Exception):
    pass


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
    def __init__(self, config: SmtpOutConfig, local_hostname: str | None = None) -> None:
        assert config.relay is not None
        self.config = config
        self.local_hostname = local_hostname
        self.password: str | None = None
        if config.password_file is not None:
            self.password = config.password_file.read_text(encoding="utf-8").strip()
        # A private CA (a relay with its own certificate) instead of the system store.
        self.tls_context = (
            ssl.create_default_context(cafile=str(config.ca_file)) if config.ca_file else None
        )

    async def deliver(self, mail: OutgoingMail) -> str:
        relay = self.config.relay
        assert relay is not None
        # The SMTP client rather than aiosmtplib.send(): send() refuses the empty envelope
        # sender ("MAIL FROM:<>") that automatic mail must use.
        client = aiosmtplib.SMTP(
            hostname=relay.host,
            port=relay.port,
            timeout=self.config.timeout,
            local_hostname=self.local_hostname,
            start_tls=self.config.starttls,
            use_tls=False,
            tls_context=self.tls_context,
        )
        try:
            async with client:
                if self.config.username and self.password is not None:
                    await client.login(self.config.username, self.password)
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


def make_transport(config: SmtpOutConfig) -> Transport:
    if config.relay is not None:
        return SmtpRelayTransport(config)
    return MaildirTransport(config.maildir)
