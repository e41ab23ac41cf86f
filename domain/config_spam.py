"""`[spam]`: an optional spam filter, rspamd over its HTTP protocol (`/checkv2`).

`rspamd_url` is the base URL of rspamd's normal worker (`http://127.0.0.1:11333`); without it no
message is checked. `timeout` bounds one check (seconds). `trust_upstream_headers` honours the
spam verdict a trusted gateway in front wrote (`X-Spam-Flag: YES`, `X-Spam: Yes`,
`X-Rspamd-Action`); only a verdict that says spam is read that way, never one that says clean.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

Problems = list[tuple[str, str]]
SPAM_KEYS = ("rspamd_url", "timeout", "trust_upstream_headers")
SPAM_TIMEOUT = 10.0
_TIMEOUT_RANGE = (0.5, 120.0)


@dataclass(frozen=True)
class SpamConfig:
    rspamd_url: str | None = None
    timeout: float = SPAM_TIMEOUT
    trust_upstream_headers: bool = False


def parse_spam(problems: Problems, table: dict[str, Any]) -> SpamConfig:
    url = table.get("rspamd_url")
    if url is not None:
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            problems.append(("spam.rspamd_url", "must be an http:// or https:// URL of rspamd"))
            url = None
        else:
            url = url.rstrip("/")
    timeout = table.get("timeout", SPAM_TIMEOUT)
    lowest, highest = _TIMEOUT_RANGE
    number = isinstance(timeout, int | float) and not isinstance(timeout, bool)
    if not number or not lowest <= timeout <= highest:
        problems.append(("spam.timeout", f"must be a number of seconds from {lowest} to {highest}"))
        timeout = SPAM_TIMEOUT
    upstream = table.get("trust_upstream_headers", False)
    if not isinstance(upstream, bool):
        problems.append(("spam.trust_upstream_headers", "must be true or false"))
        upstream = False
    return SpamConfig(url, float(timeout), upstream)
