"""`ticketd check --connect`: log in to each IMAP account and say which one fails, and why."""

from __future__ import annotations

from dataclasses import dataclass

from imapclient.exceptions import IMAPClientError

from domain.clock import Clock
from domain.config import ImapAccountConfig
from ingest.imap_session import NETWORK_ERRORS, ImapUnavailable, LoginRefused, close, connect
from ingest.oauth_tokens import OAuthBroker, imap_tokens


@dataclass(frozen=True)
class ProbeResult:
    name: str
    ok: bool
    detail: str

    def __str__(self) -> str:
        return f"imap {self.name}: {'ok' if self.ok else 'FAILED'}: {self.detail}"


def probe(
    account: ImapAccountConfig, clock: Clock, broker: OAuthBroker | None = None
) -> ProbeResult:
    tokens = imap_tokens(account, clock, broker)
    try:
        client = connect(account, tokens)
    except LoginRefused as error:
        return ProbeResult(account.name, False, f"login failed: {error}")
    except ImapUnavailable as error:
        return ProbeResult(account.name, False, f"server unavailable: {error}")
    try:
        status = client.select_folder(account.folder, readonly=True)
        if account.move_to is not None and not client.folder_exists(account.move_to):
            note = f"; {account.move_to} will be created"
        else:
            note = ""
        mode = "IDLE" if account.idle and client.has_capability("IDLE") else "polling"
        detail = f"{status.get(b'EXISTS', 0)} messages in {account.folder}, {mode}{note}"
    except IMAPClientError as error:
        return ProbeResult(account.name, False, f"folder {account.folder}: {error}")
    except NETWORK_ERRORS as error:
        return ProbeResult(account.name, False, f"server unavailable: {error}")
    finally:
        close(client)
    warning = tokens.expiry_warning() if tokens is not None else None
    if warning is not None:
        return ProbeResult(account.name, False, warning)
    return ProbeResult(account.name, True, detail)
