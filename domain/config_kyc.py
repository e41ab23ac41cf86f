"""The `[kyc]` section: identity documents (issue 6) — key file, accepted types, limits, retention,
and the virus scanner (`clamd`, `clamd_timeout`) every attachment passes when it is configured.

Declared as a table (domain/config_schema.py) and built into a frozen record.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from domain.config_journal import DEFAULT_KEY_FILE, KEY_FILE, key_file_problem
from domain.config_kinds import Count, Custom, Invalid, Number, Problems, resolve, toml_value
from domain.config_schema import Table, key

# Real types (read from the bytes by `filetype`) an identity document may have: photos from
# phones (JPEG, HEIC, WebP), scans (PNG, TIFF) and PDFs.
KNOWN_TYPES = ("jpeg", "png", "heic", "heif", "webp", "tiff", "pdf")
# How customers read the type names (mail templates: `accepted_types`).
TYPE_NAMES = {
    "jpeg": "JPEG",
    "png": "PNG",
    "heic": "HEIC",
    "heif": "HEIF",
    "webp": "WebP",
    "tiff": "TIFF",
    "pdf": "PDF",
}
CLAMD_FORMS = "unix:/path/to/clamd.sock or tcp:HOST:PORT"
_UNIX_PATH_MAX = 107  # sun_path is 108 bytes on Linux, with the closing NUL


@dataclass(frozen=True)
class ClamdAddress:
    """Where clamd listens: a Unix socket (`path`) or TCP (`host`, `port`)."""

    path: Path | None = None
    host: str = ""
    port: int = 0

    def __str__(self) -> str:
        if self.path is not None:
            return f"unix:{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp:{host}:{self.port}"


@dataclass(frozen=True)
class KycConfig:
    key_file: Path
    accepted: tuple[str, ...] = KNOWN_TYPES
    max_file_size: int = 10 * 1024 * 1024
    # How many documents one message, and one customer in 24 hours, may bring: 3,000 tiny
    # "documents" in one mail would otherwise be 3,000 records and a receipt listing them all.
    max_documents_per_message: int = 10
    max_documents_per_day: int = 30
    # Days a document's content is kept after the decision; rejected ones go sooner.
    retention_days: int = 30
    rejected_retention_days: int = 7
    # The customer's verification state (ticketd/kyc_service.py): a request unanswered this
    # long expires; documents nobody decided on are purged (and the state expires) after
    # `abandoned_retention_days`; an approval lasts `approval_valid_days` (0: for ever).
    request_expiry_days: int = 14
    abandoned_retention_days: int = 14
    approval_valid_days: int = 0
    # How often the daemon runs the purge and the expiry (a first run at start).
    housekeeping_hours: int = 24
    # The virus scanner; None: attachments are not scanned.
    clamd: ClamdAddress | None = None
    clamd_timeout: float = 30.0


def parse_clamd(value: object, base: Path) -> ClamdAddress | str:
    """The address, or why `value` is not one."""
    if not isinstance(value, str) or not value.strip():
        return f"must be an address: {CLAMD_FORMS}"
    kind, _, rest = value.strip().partition(":")
    if kind == "unix" and rest.strip():
        path = resolve(rest, base)
        if len(str(path).encode()) > _UNIX_PATH_MAX:
            return f"{toml_value(str(path))}: a Unix socket path has at most {_UNIX_PATH_MAX} bytes"
        return ClamdAddress(path=path)
    if kind == "tcp":
        host, _, port_text = rest.rpartition(":")
        host = host.strip().removeprefix("[").removesuffix("]")
        if not host or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            return (
                f"{toml_value(value)}: tcp needs a host and a port from 1 to 65535 (tcp:HOST:PORT)"
            )
        return ClamdAddress(host=host, port=int(port_text))
    return f"{toml_value(value)}: use {CLAMD_FORMS}"


def _clamd(value: Any, base: Path) -> ClamdAddress:
    parsed = parse_clamd(value, base)
    if isinstance(parsed, str):
        raise Invalid(parsed)
    return parsed


def _file_types(value: Any, base: Path) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise Invalid("must be a list of file types")
    unknown = [v for v in value if v.lower() not in KNOWN_TYPES]
    if unknown:
        raise Invalid(f"{', '.join(unknown)}: not one of {', '.join(KNOWN_TYPES)}")
    return tuple(v.lower() for v in value)


_AT_LEAST_0 = Count(0, "a whole number of at least 0")
_AT_LEAST_1 = Count(1, "a whole number of at least 1")


class KycTable(Table):
    # The kind and default `ticketd ingest` reads it with too (domain/config_journal.py).
    key_file: Annotated[Path, KEY_FILE] = key(
        DEFAULT_KEY_FILE, doc="the key of documents at rest; its folder must exist"
    )
    accepted: Annotated[tuple[str, ...], Custom("a list of file types", _file_types)] = key(
        KNOWN_TYPES, doc=f"real types accepted: {', '.join(KNOWN_TYPES)}"
    )
    max_file_size: Annotated[int, Count(1, "a number of bytes of at least 1")] = key(
        10 * 1024 * 1024, doc="bytes of one document"
    )
    max_documents_per_message: Annotated[int, _AT_LEAST_1] = key(10, doc="documents kept")
    max_documents_per_day: Annotated[int, _AT_LEAST_1] = key(30, doc="per customer, 24 hours")
    retention_days: Annotated[int, _AT_LEAST_0] = key(30, doc="kept after the decision")
    rejected_retention_days: Annotated[int, _AT_LEAST_0] = key(7, doc="rejected ones")
    request_expiry_days: Annotated[int, _AT_LEAST_1] = key(14, doc="an unanswered request")
    abandoned_retention_days: Annotated[int, _AT_LEAST_1] = key(
        14, doc="documents nobody decided on are purged"
    )
    approval_valid_days: Annotated[int, _AT_LEAST_0] = key(0, doc="an approval lasts (0: ever)")
    housekeeping_hours: Annotated[int, _AT_LEAST_1] = key(24, doc="how often purge and expiry run")
    clamd: Annotated[ClamdAddress | None, Custom(CLAMD_FORMS, _clamd)] = key(
        None, live=True, doc="the virus scanner every attachment passes; unset: none"
    )
    clamd_timeout: Annotated[
        float, Number("a number of seconds above 0, at most 3600", 0, 3600, above=True)
    ] = key(30.0, live=True, doc="seconds for one scan")


def build_kyc(problems: Problems, table: KycTable) -> KycConfig:
    if "key_file" in table.model_fields_set:
        why = key_file_problem(table.key_file)
        if why is not None:
            problems.append(("kyc.key_file", why))
    return KycConfig(**dict(table))
