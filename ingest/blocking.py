"""Blocked senders (`ticketd block`): their mail is ignored with the reason `blocked`.

A pattern is an address (`spam@example.com`) or a domain (`example.com`), which blocks its
subdomains too (`mail.example.com`). Both the From address and the envelope sender are matched,
so a spammer cannot slip past by changing the one a filter looks at. Ignored mail is journaled
like every other (promise 3: nothing dropped silently) and counted as `blocked`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from storage.models import BlockedSender

_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)+[a-z0-9-]{2,63}$")


def pattern_of(text: str) -> str | None:
    """The canonical pattern for an address or a domain, or None when it is neither."""
    value = text.strip().lower().rstrip(".")
    local, at, domain = value.rpartition("@")
    if at and (not local or any(c.isspace() or c in "<>,;" for c in local)):
        return None
    return value if _DOMAIN.match(domain) else None


def _candidates(address: str) -> list[str]:
    """The patterns that would block `address`: itself, its domain and each parent domain."""
    address = address.strip().lower()
    domain = address.rpartition("@")[2]
    labels = domain.split(".")
    return [address, *(".".join(labels[i:]) for i in range(len(labels) - 1))]


# Built once: building the statement per message cost more than running it. A Core statement
# on the session's connection: through the session it cost twice as much (issue 19).
_BLOCKED = BlockedSender.__table__
_BLOCKING = select(_BLOCKED.c.pattern).where(
    _BLOCKED.c.pattern.in_(bindparam("patterns", expanding=True))
)


def blocked_by(session: Session, addresses: Iterable[str]) -> tuple[str, str] | None:
    """(address, pattern) for the first of `addresses` a pattern blocks, or None."""
    asked: list[list[str]] = []
    for address in addresses:
        if not address or "@" not in address:
            continue
        candidates = _candidates(address)
        if candidates in asked:
            continue  # the same address again (From and envelope sender): the same answer
        asked.append(candidates)
        pattern = session.connection().execute(_BLOCKING, {"patterns": candidates}).scalar()
        if pattern is not None:
            return address.lower(), pattern
    return None


def block(session: Session, pattern: str, reason: str | None, now: datetime) -> bool:
    """Add the pattern; False when it was already blocked."""
    if session.scalar(select(BlockedSender.id).where(BlockedSender.pattern == pattern)):
        return False
    session.add(BlockedSender(pattern=pattern, reason=reason, created_at=now))
    return True


def unblock(session: Session, pattern: str) -> bool:
    row = session.scalar(select(BlockedSender).where(BlockedSender.pattern == pattern))
    if row is None:
        return False
    session.delete(row)
    return True


def blocked_list(session: Session) -> list[dict[str, str | None]]:
    rows = session.scalars(select(BlockedSender).order_by(BlockedSender.pattern))
    return [
        {"pattern": r.pattern, "reason": r.reason, "since": r.created_at.isoformat()} for r in rows
    ]
