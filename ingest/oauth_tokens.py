"""The access tokens ticketd gets itself, cached and shared by the IMAP and SMTP sides.

One `OAuthBroker` per process hands out one `OAuthTokens` per provider block and token owner:
the app (client_credentials) or the user (refresh_token) own one token whatever the mailbox, a
Google service account one per mailbox it acts as. So the IMAP account and the relay of a
mailbox present the same token, and a refresh token that the endpoint rotates is redeemed by
one caller at a time. A token is renewed REFRESH_MARGIN before it expires, and once more when
a server refuses it (`refused`): a second refusal of the new token is the server's word about
the mailbox or its permission, not about the token, and is reported.

Tokens never reach a log line: the broker gives the log filter the tokens it holds
(`domain.logs.protect_source`), the current one and the one before it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from domain.clock import Clock
from domain.config import ImapAccountConfig
from domain.config_oauth import OAuthConfig
from domain.logs import protect_source
from domain.token_source import REFRESH_MARGIN, Token, TokenProvider, TokenSource
from ingest.oauth_client import TokenClient, make_client

log = logging.getLogger("ticketd.oauth")


class OAuthTokens:
    """The token of one provider block for one owner; safe to use from several threads."""

    def __init__(
        self, provider: OAuthConfig, client: TokenClient, subject: str, clock: Clock
    ) -> None:
        self.provider = provider
        self.client = client
        self.subject = subject  # the mailbox a service account acts as; "" otherwise
        self.clock = clock
        self._lock = threading.Lock()
        self._token: Token | None = None
        self._previous: str | None = None
        self._refresh: str | None = None  # a rotated refresh token, masked like the others
        self.fetches = 0  # requests to the token endpoint, for `check` and the tests

    def token(self, force: bool = False) -> Token:
        """A token valid for at least REFRESH_MARGIN; raises OAuthError (a TokenError)."""
        with self._lock:
            now = self.clock.now()
            current = self._token
            fresh = current is not None and (
                current.expires_at is None or current.expires_at - now > REFRESH_MARGIN
            )
            if current is not None and fresh and not force:
                return current
            issued = self.client.fetch(self.subject, now)
            self.fetches += 1
            if issued.refresh_token and self.provider.grant == "refresh_token":
                self.client.store.save(issued.refresh_token, now)
                self._refresh = issued.refresh_token
            self._previous = current.value if current is not None else self._previous
            self._token = Token(issued.access_token, issued.expires_at)
            log.info(
                "oauth %s: new access token%s, valid until %s",
                self.provider.name,
                f" for {self.subject}" if self.subject else "",
                issued.expires_at.isoformat(timespec="seconds"),
            )
            return self._token

    def refused(self, value: str) -> None:
        """A server refused this token: the next `token()` asks the endpoint, unless another
        caller has already replaced it (both sides of a mailbox may see the same refusal)."""
        with self._lock:
            if self._token is not None and self._token.value == value:
                self._previous, self._token = value, None

    def invalidate(self) -> None:
        with self._lock:
            if self._token is not None:
                self._previous, self._token = self._token.value, None

    def cached(self) -> str | None:
        token = self._token
        return None if token is None else token.value

    def secrets(self) -> list[str]:
        return [value for value in (self.cached(), self._previous, self._refresh) if value]

    def needs_refresh(self) -> bool:
        token = self._token
        if token is None or token.expires_at is None:
            return False
        return token.expires_at - self.clock.now() <= REFRESH_MARGIN

    def expiry_warning(self) -> str | None:
        # ticketd renews these itself; a token it cannot renew is an OAuthError, not a warning.
        return None


class OAuthBroker:
    """Every `[oauth.NAME]` token of this process."""

    def __init__(
        self,
        providers: tuple[OAuthConfig, ...],
        clock: Clock,
        make: Callable[[OAuthConfig], TokenClient] = make_client,
    ) -> None:
        self.providers = {provider.name: provider for provider in providers}
        self.clock = clock
        self.make = make
        self._clients: dict[str, TokenClient] = {}
        self._tokens: dict[tuple[str, str], OAuthTokens] = {}
        self._lock = threading.Lock()
        protect_source(self.secrets)

    def tokens(self, name: str, mailbox: str) -> OAuthTokens:
        provider = self.providers[name]
        subject = mailbox.lower() if provider.grant == "service_account" else ""
        with self._lock:
            found = self._tokens.get((name, subject))
            if found is None:
                client = self._clients.get(name)
                if client is None:
                    client = self._clients[name] = self.make(provider)
                found = self._tokens[(name, subject)] = OAuthTokens(
                    provider, client, subject, self.clock
                )
            return found

    def secrets(self) -> list[str]:
        with self._lock:
            holders = list(self._tokens.values())
        return [value for holder in holders for value in holder.secrets()]


def imap_tokens(
    account: ImapAccountConfig, clock: Clock, broker: OAuthBroker | None
) -> TokenSource | None:
    """Where an `[[imap]]` account's XOAUTH2 token comes from: ticketd's own client for
    `oauth = NAME`, else the admin's `token_command` or `token_file`; None for a password."""
    if account.auth != "xoauth2":
        return None
    if account.oauth is not None:
        if broker is None:
            raise ValueError(f"imap {account.name}: oauth = {account.oauth!r} without a broker")
        return broker.tokens(account.oauth, account.username)
    return TokenProvider(account.name, account.token_command, account.token_file, clock)
