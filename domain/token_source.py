"""XOAUTH2 access tokens for IMAP (Microsoft 365, Gmail): from a command or a file.

ticketd never talks to a token endpoint itself: an admin's command (or a tool that keeps a file
fresh) does, and prints either the bare token or JSON with `access_token` and `expires_in`
(seconds) or `expires_at` (Unix time or ISO 8601). The provider caches the token and asks again
`REFRESH_MARGIN` before it expires, so a login never presents a token that dies mid-session; a
source that keeps handing back a token about to expire is reported, not silently retried.
"""

from __future__ import annotations

import json
import logging
import subprocess
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from domain.clock import Clock
from domain.errors import TicketdError

log = logging.getLogger("ticketd.imap")
REFRESH_MARGIN = timedelta(minutes=5)
# A bare token says nothing about its life; Microsoft's and Google's live about an hour.
ASSUMED_LIFETIME = timedelta(minutes=45)
COMMAND_TIMEOUT = 60.0


class TokenError(TicketdError):
    """No usable token: the command failed, the file is missing or empty."""


@dataclass(frozen=True)
class Token:
    value: str
    expires_at: datetime | None  # None: the source did not say (a bare token from a file)


class TokenSource(Protocol):
    """What logs in with XOAUTH2 asks of a token source: this provider (a command or a file)
    or ticketd's own OAuth2 client (ingest/oauth_tokens.py)."""

    def token(self, force: bool = False) -> Token: ...

    def cached(self) -> str | None: ...

    def invalidate(self) -> None: ...

    def refused(self, value: str) -> None: ...

    def needs_refresh(self) -> bool: ...

    def expiry_warning(self) -> str | None: ...


def xoauth2_string(username: str, token: str) -> str:
    """The SASL XOAUTH2 initial response (before base64), as Google and Microsoft define it."""
    return f"user={username}\x01auth=Bearer {token}\x01\x01"


def parse_token(text: str, now: datetime) -> Token:
    text = text.strip()
    if not text:
        raise TokenError("empty token")
    if not text.startswith("{"):
        return Token(text, None)
    try:
        data = json.loads(text)
        value = str(data["access_token"]).strip()
    except (ValueError, KeyError, TypeError) as error:
        raise TokenError(f"not a token nor JSON with access_token: {error}") from None
    if not value:
        raise TokenError("empty access_token")
    expires_at: datetime | None = None
    if "expires_in" in data:
        expires_at = now + timedelta(seconds=float(data["expires_in"]))
    elif isinstance(data.get("expires_at"), int | float):
        expires_at = datetime.fromtimestamp(float(data["expires_at"]), tz=now.tzinfo)
    elif isinstance(data.get("expires_at"), str):
        expires_at = datetime.fromisoformat(data["expires_at"])
        if expires_at.tzinfo is None:
            raise TokenError("expires_at has no time zone")
    return Token(value, expires_at)


class TokenProvider:
    """Hands out a token that is valid for at least REFRESH_MARGIN, refreshing when needed."""

    def __init__(
        self, name: str, command: tuple[str, ...], file: Path | None, clock: Clock
    ) -> None:
        self.name = name
        self.command = command
        self.file = file
        self.clock = clock
        self._token: Token | None = None
        self._fetched_at: datetime | None = None

    def _fresh_until(self) -> datetime | None:
        if self._token is None or self._fetched_at is None:
            return None
        if self._token.expires_at is not None:
            return self._token.expires_at
        # A bare token from a file is re-read every time (cheap, and the tool may have
        # replaced it); from a command, it is trusted for the assumed lifetime.
        return self._fetched_at + ASSUMED_LIFETIME if self.command else self._fetched_at

    def needs_refresh(self) -> bool:
        """The cached token (with a known expiry) is within REFRESH_MARGIN of it."""
        token = self._token
        if token is None or token.expires_at is None:
            return False
        return token.expires_at - self.clock.now() <= REFRESH_MARGIN

    def token(self, force: bool = False) -> Token:
        now = self.clock.now()
        until = self._fresh_until()
        if force or until is None or until - now <= REFRESH_MARGIN:
            self._token = self._fetch(now)
            self._fetched_at = now
            warning = self.expiry_warning()
            if warning:
                log.warning("imap %s: %s", self.name, warning)
        assert self._token is not None
        return self._token

    def cached(self) -> str | None:
        """The token last handed out, if any (to mask it in stored error texts)."""
        return None if self._token is None else self._token.value

    def invalidate(self) -> None:
        """The server refused the token: the next login asks the source again."""
        self._token = None

    def refused(self, value: str) -> None:
        if self._token is not None and self._token.value == value:
            self._token = None

    def expiry_warning(self) -> str | None:
        """Why this account's token is about to stop working, or None."""
        token = self._token
        if token is None or token.expires_at is None:
            return None
        left = token.expires_at - self.clock.now()
        if left <= REFRESH_MARGIN:
            minutes = max(int(left.total_seconds() // 60), 0)
            return (
                f"the access token expires at {token.expires_at.isoformat()} (in {minutes} min) "
                "and its source gave no newer one"
            )
        return None

    def _fetch(self, now: datetime) -> Token:
        if self.command:
            try:
                result = subprocess.run(
                    self.command,
                    capture_output=True,
                    text=True,
                    timeout=COMMAND_TIMEOUT,
                    check=False,
                )
            except (OSError, subprocess.TimeoutExpired) as error:
                raise TokenError(f"token command failed: {error}") from None
            if result.returncode != 0:
                detail = result.stderr.strip().splitlines()[-1:] or [""]
                raise TokenError(f"token command exited {result.returncode}: {detail[0]}")
            return parse_token(result.stdout, now)
        assert self.file is not None
        try:
            return parse_token(self.file.read_text(encoding="utf-8"), now)
        except OSError as error:
            raise TokenError(f"cannot read token file: {error}") from None
