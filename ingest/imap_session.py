"""Opening an authenticated IMAP connection for one `[[imap]]` account.

Errors are sorted into the two kinds the account loop treats differently: `LoginRefused` (the
server said no to our credentials: say so plainly, retry slowly, an admin must act) and
`ImapUnavailable` (network, TLS, the server went away: reconnect with backoff).
"""

from __future__ import annotations

import contextlib
import socket
import ssl

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError

from domain.config import ImapAccountConfig
from domain.errors import Permanent, Temporary
from domain.token_source import TokenError, TokenSource

NETWORK_ERRORS = (OSError, socket.timeout, ssl.SSLError, IMAPClientError)


class ImapUnavailable(Temporary):
    """The server could not be reached or the connection broke."""


class LoginRefused(Permanent):
    """The server refused the credentials (or we had none to give)."""


def mailbox_key(account: ImapAccountConfig) -> str:
    """The folder's identity: checkpoints and journal origins hang on it, not on the name an
    admin gave the account, so renaming an account neither loses nor repeats mail."""
    return f"{account.username}@{account.host.lower()}:{account.port}/{account.folder}"


def tls_context(account: ImapAccountConfig) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if account.ca_file is not None:
        context.load_verify_locations(cafile=str(account.ca_file))
    return context


def read_password(account: ImapAccountConfig) -> str:
    assert account.password_file is not None
    try:
        return account.password_file.read_text(encoding="utf-8").strip("\r\n")
    except OSError as error:
        raise LoginRefused(f"cannot read password_file: {error}") from None


def connect(account: ImapAccountConfig, tokens: TokenSource | None) -> IMAPClient:
    """A logged-in client; raises ImapUnavailable or LoginRefused with a readable reason."""
    try:
        client = IMAPClient(
            account.host,
            port=account.port,
            ssl=account.security == "tls",
            ssl_context=tls_context(account) if account.security == "tls" else None,
            timeout=float(account.timeout),
        )
    except NETWORK_ERRORS as error:
        raise ImapUnavailable(f"cannot connect to {account.host}:{account.port}: {error}") from None
    # INTERNALDATE with its zone: the age rule compares it with an aware clock.
    client.normalise_times = False
    try:
        if account.security == "starttls":
            client.starttls(tls_context(account))
        _login(client, account, tokens)
    except BaseException:
        _close(client)
        raise
    return client


def _login(client: IMAPClient, account: ImapAccountConfig, tokens: TokenSource | None) -> None:
    try:
        if account.auth == "xoauth2":
            assert tokens is not None
            _oauth2_login(client, account, tokens)
        else:
            client.login(account.username, read_password(account))
    except LoginError as error:
        raise LoginRefused(f"login as {account.username} refused: {_text(error)}") from None
    except NETWORK_ERRORS as error:
        raise ImapUnavailable(f"{type(error).__name__}: {_text(error)}") from None


def _oauth2_login(client: IMAPClient, account: ImapAccountConfig, tokens: TokenSource) -> None:
    """XOAUTH2 with the source's token; refused, once more with a new one (revoked early, or
    the server's clock disagrees). A new token refused too is about the mailbox: said so."""
    for attempt in (1, 2):
        try:
            token = tokens.token()
        except TokenError as error:
            raise LoginRefused(f"no access token: {error}") from None
        try:
            client.oauth2_login(account.username, token.value)
            return
        except LoginError as error:
            tokens.refused(token.value)
            if attempt == 2:
                raise LoginRefused(
                    f"login as {account.username} refused with a new token: {_text(error)} "
                    "(does the app have access to this mailbox?)"
                ) from None


def _text(error: BaseException) -> str:
    text = str(error)
    # imaplib wraps server text as "b'...'"; show what the server said.
    if text.startswith(("b'", 'b"')) and text.endswith(("'", '"')):
        text = text[2:-1]
    return text


def _close(client: IMAPClient) -> None:
    with contextlib.suppress(Exception):  # closing a broken connection: nothing left to do
        client.shutdown()


def close(client: IMAPClient) -> None:
    """Log out politely when the connection still works; just drop it otherwise."""
    try:
        client.logout()
    except Exception:
        _close(client)
