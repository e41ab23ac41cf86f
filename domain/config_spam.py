"""`[spam]`: an optional spam filter, rspamd over its HTTP protocol (`/checkv2`).

`rspamd_url` is the base URL of rspamd's normal worker (`http://127.0.0.1:11333`); without it no
message is checked. `timeout` bounds one check (seconds). `trust_upstream_headers` honours the
spam verdict a trusted gateway in front wrote (`X-Spam-Flag: YES`, `X-Spam: Yes`,
`X-Rspamd-Action`); only a verdict that says spam is read that way, never one that says clean.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from domain.config_kinds import Flag, Number, Url
from domain.config_schema import Table, key

SPAM_TIMEOUT = 10.0


@dataclass(frozen=True)
class SpamConfig:
    rspamd_url: str | None = None
    timeout: float = SPAM_TIMEOUT
    trust_upstream_headers: bool = False


class SpamTable(Table):
    rspamd_url: Annotated[str | None, Url("an http:// or https:// URL of rspamd", True)] = key(
        None, doc="rspamd's normal worker; without it nothing is checked"
    )
    timeout: Annotated[float, Number("a number of seconds from 0.5 to 120.0", 0.5, 120)] = key(
        SPAM_TIMEOUT, doc="seconds for one check"
    )
    trust_upstream_headers: Annotated[bool, Flag()] = key(
        False, doc="a gateway's X-Spam-Flag, X-Spam or X-Rspamd-Action marks spam"
    )


def build_spam(table: SpamTable | None) -> SpamConfig:
    return SpamConfig(**dict(table)) if table is not None else SpamConfig()
