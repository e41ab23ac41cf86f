"""Whose word about a sender ticketd takes: `[smtp_in] authserv_id` and `trusted_authserv_ids`.

`authserv_id` names ticketd's own verdicts (the host name by default); an incoming
Authentication-Results header with that id is removed as a forgery. `trusted_authserv_ids` lists
the receiving servers in front of ticketd whose headers are believed: a gateway that is the MX,
the mailbox provider an IMAP account reads. Every other header proves nothing.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

Problems = list[tuple[str, str]]
TRUST_KEYS = ("authserv_id", "trusted_authserv_ids")


@dataclass(frozen=True)
class TrustConfig:
    authserv_id: str
    trusted_authserv_ids: tuple[str, ...] = ()


def _token(value: Any) -> str | None:
    """An authserv-id is one token (RFC 8601 2.2: a dot-atom or a quoted string, written
    without spaces or semicolons in practice)."""
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    if not text or any(c.isspace() or c in ';()"' for c in text):
        return None
    return text


def parse_trust(problems: Problems, smtp_in: dict[str, Any]) -> TrustConfig:
    own_raw = smtp_in.get("authserv_id", socket.gethostname())
    own = _token(own_raw)
    if own is None:
        problems.append(("smtp_in.authserv_id", "must be one word, like mx.example.com"))
        own = socket.gethostname().lower()
    listed = smtp_in.get("trusted_authserv_ids", [])
    trusted: list[str] = []
    if not isinstance(listed, list):
        problems.append(("smtp_in.trusted_authserv_ids", "must be a list of authserv-ids"))
        listed = []
    for index, item in enumerate(listed):
        key = f"smtp_in.trusted_authserv_ids[{index}]"
        token = _token(item)
        if token is None:
            problems.append((key, "must be one word, like mx.google.com"))
        elif token == own:
            problems.append((key, f"{token} is our own authserv_id: it cannot be trusted upstream"))
        else:
            trusted.append(token)
    return TrustConfig(own, tuple(trusted))
