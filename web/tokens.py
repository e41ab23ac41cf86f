"""Bearer tokens of the API: created by `ticketd tokens create`, only their SHA-256 stored.

A token is 32 random bytes (URL-safe text, prefixed `tkd_` so a leaked one is recognisable in a
log or a repository); with that much randomness a plain SHA-256 is as good as a slow hash, and a
lookup by it costs one indexed read per request. An agent's token acts as that agent: the
tickets of their queues and those assigned to them. An admin's token sees everything.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from domain.config import Config
from domain.config_team import AgentConfig
from domain.errors import Permanent
from storage.db import Database
from storage.models import ApiToken

PREFIX = "tkd_"
# Rows of the console's sign-in (web/console_session.py) share the table: a mailed link or a
# browser's session cookie is never a bearer token of the API (it would outlive its 15 minutes
# or 12 hours there), and no API token may take one of these names.
CONSOLE_LINK = "console link"
CONSOLE_SESSION = "console session"
CONSOLE_ADMIN_LINK = "console admin link"
CONSOLE_ADMIN_SESSION = "console admin session"
CONSOLE_ROWS = frozenset({CONSOLE_LINK, CONSOLE_SESSION, CONSOLE_ADMIN_LINK, CONSOLE_ADMIN_SESSION})


class TokenError(Permanent):
    """A token cannot be made or changed as asked; the message says why."""


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: the audit's actor, and the agent whose queues bound it (None for
    an admin token)."""

    token_id: int
    actor: str
    agent: AgentConfig | None

    @property
    def admin(self) -> bool:
        return self.agent is None


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def create_token(
    db: Database, config: Config, now: datetime, agent: str | None, name: str | None
) -> tuple[int, str]:
    """A new token for a configured agent (or the admin when `agent` is None): its id and the
    token, which is never shown again."""
    if name in CONSOLE_ROWS:
        raise TokenError(f"the name {name!r} is the console's sign-in's: choose another")
    email = None
    if agent is not None:
        found = config.team.agent(agent)
        if found is None:
            raise TokenError(f"{agent} is not a configured agent ([[agents]] email)")
        email = found.email
    token = PREFIX + secrets.token_urlsafe(32)
    with db.transaction() as session:
        row = ApiToken(token_hash=digest(token), agent=email, name=name, created_at=now)
        session.add(row)
        session.flush()
        return row.id, token


def list_tokens(db: Database) -> list[dict[str, Any]]:
    with db.read() as session:
        rows = session.scalars(select(ApiToken).order_by(ApiToken.id))
        return [
            {
                "id": row.id,
                "agent": row.agent,
                "admin": row.agent is None
                or row.name in (CONSOLE_ADMIN_LINK, CONSOLE_ADMIN_SESSION),
                "name": row.name,
                "created_at": row.created_at.isoformat(),
                "last_used_at": row.last_used_at.isoformat() if row.last_used_at else None,
                "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
            }
            for row in rows
        ]


def revoke_token(db: Database, token_id: int, now: datetime) -> bool:
    """False when there is no such token; revoking twice keeps the first time."""
    with db.transaction() as session:
        row = session.get(ApiToken, token_id)
        if row is None:
            return False
        row.revoked_at = row.revoked_at or now
        return True


# last_used_at is written at most this often per token: not one write per request.
_USE_RESOLUTION_SECONDS = 60


def authenticate(db: Database, config: Config, token: str, now: datetime) -> Principal | None:
    """The principal of a valid token; None for an unknown or revoked one, or an agent's token
    whose agent is no longer configured (removing an agent takes their tokens' power away)."""
    if not token.startswith(PREFIX):
        return None
    with db.read() as session:
        row = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest(token)))
        if row is None or row.revoked_at is not None or row.name in CONSOLE_ROWS:
            return None
        token_id, email, used = row.id, row.agent, row.last_used_at
    agent = config.team.agent(email) if email is not None else None
    if email is not None and agent is None:
        return None
    if used is None or (now - used).total_seconds() >= _USE_RESOLUTION_SECONDS:
        with db.transaction() as session:
            found = session.get(ApiToken, token_id)
            if found is not None:
                found.last_used_at = now
    actor = agent.email if agent is not None else f"admin (API token {token_id})"
    return Principal(token_id=token_id, actor=actor, agent=agent)
