"""The spam filter's verdict on a message: rspamd over its HTTP protocol (`POST /checkv2`).

Run by the worker with the parse, before the write lock, within `[spam] timeout`; never by the
SMTP handler. rspamd is told what the SMTP session showed (client IP, HELO, envelope sender and
recipients) and answers an action and a score. `reject`, `add header` and `rewrite subject` mean
spam; `no action`, `greylist` and `soft reject` do not (the last two are about retrying, which
mail already accepted cannot do).

A filter that cannot be reached, or answers nonsense, does not stop intake and never passes mail
as clean: the verdict is `checked = False` with the reason, the message goes on, and its ticket
and journal row say it was not checked. A trusted gateway's own verdict (`[spam]
trust_upstream_headers`) counts only when it says spam.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from domain.config_spam import SpamConfig
from domain.message import SpamVerdict

SPAM_ACTIONS = frozenset({"reject", "add header", "rewrite subject"})
_UPSTREAM_YES = {
    "x-spam-flag": ("yes",),
    "x-spam": ("yes", "true"),
    "x-rspamd-action": SPAM_ACTIONS,
}


def upstream_verdict(headers: Sequence[tuple[str, str]]) -> SpamVerdict | None:
    """A spam verdict a trusted gateway wrote, when it says spam."""
    for name, value in headers:
        yes = _UPSTREAM_YES.get(name)
        if yes is not None and value.strip().lower().split(",")[0].strip() in yes:
            return SpamVerdict(True, True, action=f"{name}: {value.strip()}", by="upstream")
    return None


@dataclass(frozen=True)
class Session:
    ip: str = ""
    helo: str = ""
    mail_from: str = ""
    rcpt: tuple[str, ...] = ()


def _ask(config: SpamConfig, raw: bytes | bytearray, session: Session) -> object:
    assert config.rspamd_url is not None
    url = urlsplit(config.rspamd_url)
    kind = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
    connection = kind(url.hostname or "", url.port, timeout=config.timeout)
    try:
        connection.putrequest("POST", f"{url.path}/checkv2")
        headers = [("Content-Type", "message/rfc822"), ("Content-Length", str(len(raw)))]
        headers += [("IP", session.ip), ("Helo", session.helo), ("From", session.mail_from)]
        headers += [("Rcpt", rcpt) for rcpt in session.rcpt]  # one header per recipient
        for name, value in headers:
            if value:
                connection.putheader(name, value)
        connection.endheaders(raw)
        response = connection.getresponse()
        body = response.read(1024 * 1024)
        if response.status != 200:
            raise ValueError(f"HTTP {response.status} {response.reason}")
        return json.loads(body)
    finally:
        connection.close()


def check(config: SpamConfig, raw: bytes | bytearray, session: Session) -> SpamVerdict:
    """rspamd's verdict, or an unchecked one with the reason; never raises."""
    try:
        answer = _ask(config, raw, session)
    except (OSError, ValueError, http.client.HTTPException) as error:  # down, slow, not JSON
        return SpamVerdict(False, error=f"rspamd at {config.rspamd_url}: {error}")
    if not isinstance(answer, dict) or not isinstance(answer.get("action"), str):
        return SpamVerdict(False, error=f"rspamd at {config.rspamd_url}: no action in its answer")
    action = answer["action"].lower()
    score = answer.get("score")
    number = float(score) if isinstance(score, int | float) else None
    return SpamVerdict(True, action in SPAM_ACTIONS, number, action)


def ping(config: SpamConfig) -> str | None:
    """Why rspamd cannot be used (for `ticketd check --connect`), or None when it answers."""
    assert config.rspamd_url is not None
    url = urlsplit(config.rspamd_url)
    kind = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
    connection = kind(url.hostname or "", url.port, timeout=config.timeout)
    try:
        connection.request("GET", f"{url.path}/ping")
        response = connection.getresponse()
        body = response.read(1024)
    except (OSError, http.client.HTTPException) as error:
        return f"rspamd at {config.rspamd_url}: {error}"
    finally:
        connection.close()
    if response.status != 200 or b"pong" not in body:
        return f"rspamd at {config.rspamd_url}: /ping answered HTTP {response.status}"
    return None
