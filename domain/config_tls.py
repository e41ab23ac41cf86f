"""`[smtp_in]` STARTTLS keys: tls_cert, tls_key (PEM paths) and require_tls.

Parsed apart from the listener's limits because the files are checked as well (ticketd/
tls_files.py): a configuration with a missing file or a key that does not belong to the
certificate is refused at `ticketd check`, at start and on SIGHUP, naming the key. Only there
(`config.load_listener_config`): every other command, `ticketd ingest` from an MTA pipe above all,
loads the configuration without reading a certificate or a key it may not even be allowed to
read, and must not fail because the listener's files are being renewed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from domain.tls_files import Problems

TLS_KEYS = ("tls_cert", "tls_key", "require_tls")


@dataclass(frozen=True)
class ListenerTls:
    cert: Path | None = None
    key: Path | None = None
    require: bool = False


def _path(problems: Problems, table: dict[str, Any], name: str, base: Path) -> Path | None:
    value = table.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        problems.append((f"smtp_in.{name}", "must be the path of a PEM file"))
        return None
    path = Path(value.strip()).expanduser()
    return path if path.is_absolute() else base / path


def parse_listener_tls(problems: Problems, table: dict[str, Any], base: Path) -> ListenerTls:
    cert = _path(problems, table, "tls_cert", base)
    key = _path(problems, table, "tls_key", base)
    require = table.get("require_tls", False)
    if not isinstance(require, bool):
        problems.append(("smtp_in.require_tls", "must be true or false"))
        require = False
    if ("tls_cert" in table) != ("tls_key" in table):
        missing = "tls_key" if "tls_cert" in table else "tls_cert"
        problems.append((f"smtp_in.{missing}", "tls_cert and tls_key go together: set both"))
    if require and "tls_cert" not in table:
        problems.append(("smtp_in.require_tls", "needs tls_cert and tls_key to offer STARTTLS"))
    return ListenerTls(cert, key, require)
