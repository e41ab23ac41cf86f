"""The `[kyc]` section: identity documents (issue 6) — key file, accepted types, limits, retention,
and the virus scanner (`clamd`, `clamd_timeout`) every attachment passes when it is configured.

Parsed into a frozen record; every problem is appended to the caller's list as (key, reason),
so `ticketd check` reports them together with the rest of the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from domain.config_keys import check_keys

# Real types (read from the bytes by `filetype`) an identity document may have: photos from
# phones (JPEG, HEIC, WebP), scans (PNG, TIFF) and PDFs.
KNOWN_TYPES = ("jpeg", "png", "heic", "heif", "webp", "tiff", "pdf")
Problems = list[tuple[str, str]]
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


def _days(problems: Problems, table: dict[str, Any], name: str, default: int) -> int:
    value = table.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        problems.append((f"kyc.{name}", "must be a whole number of at least 0"))
        return default
    return value


BASE_KEYS = (
    "key_file",
    "accepted",
    "max_file_size",
    "max_documents_per_message",
    "max_documents_per_day",
    "retention_days",
    "rejected_retention_days",
    "clamd",
    "clamd_timeout",
)
# The verification-state keys, checked by parse_kyc_state.
STATE_KEYS = (
    "request_expiry_days",
    "abandoned_retention_days",
    "approval_valid_days",
    "housekeeping_hours",
)


def _at_least_one(problems: Problems, table: dict[str, Any], name: str, default: int) -> int:
    value = table.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        problems.append((f"kyc.{name}", "must be a whole number of at least 1"))
        return default
    return value


class StateSettings(TypedDict):
    request_expiry_days: int
    abandoned_retention_days: int
    approval_valid_days: int
    housekeeping_hours: int


def parse_kyc_state(problems: Problems, table: dict[str, Any]) -> StateSettings:
    """The verification-state keys of `[kyc]`, as KycConfig's keyword arguments."""
    return {
        "request_expiry_days": _at_least_one(problems, table, "request_expiry_days", 14),
        "abandoned_retention_days": _at_least_one(problems, table, "abandoned_retention_days", 14),
        "approval_valid_days": _days(problems, table, "approval_valid_days", 0),
        "housekeeping_hours": _at_least_one(problems, table, "housekeeping_hours", 24),
    }


def parse_clamd(value: object, base: Path) -> ClamdAddress | str:
    """The address, or why `value` is not one."""
    if not isinstance(value, str) or not value.strip():
        return f"must be an address: {CLAMD_FORMS}"
    kind, _, rest = value.strip().partition(":")
    if kind == "unix" and rest.strip():
        path = Path(rest.strip()).expanduser()
        path = path if path.is_absolute() else base / path
        if len(str(path).encode()) > _UNIX_PATH_MAX:
            return f"{str(path)!r}: a Unix socket path has at most {_UNIX_PATH_MAX} bytes"
        return ClamdAddress(path=path)
    if kind == "tcp":
        host, _, port_text = rest.rpartition(":")
        host = host.strip().removeprefix("[").removesuffix("]")
        if not host or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            return f"{value!r}: tcp needs a host and a port from 1 to 65535 (tcp:HOST:PORT)"
        return ClamdAddress(host=host, port=int(port_text))
    return f"{value!r}: use {CLAMD_FORMS}"


def _clamd(problems: Problems, table: dict[str, Any], base: Path) -> ClamdAddress | None:
    if "clamd" not in table:
        return None
    parsed = parse_clamd(table["clamd"], base)
    if isinstance(parsed, str):
        problems.append(("kyc.clamd", parsed))
        return None
    return parsed


def _timeout(problems: Problems, table: dict[str, Any]) -> float:
    value = table.get("clamd_timeout", 30)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 3600:
        problems.append(("kyc.clamd_timeout", "must be a number of seconds above 0, at most 3600"))
        return 30.0
    return float(value)


def parse_kyc(problems: Problems, data: dict[str, Any], base: Path) -> KycConfig:
    table = data.get("kyc", {})
    if not isinstance(table, dict):
        problems.append(("kyc", "must be a table ([kyc])"))
        table = {}
    check_keys(problems, table, "kyc", (*BASE_KEYS, *STATE_KEYS))
    raw_key = table.get("key_file", "var/kyc.key")
    if not isinstance(raw_key, str) or not raw_key.strip():
        problems.append(("kyc.key_file", "must be a path"))
        raw_key = "var/kyc.key"
    key_file = Path(raw_key).expanduser()
    key_file = key_file if key_file.is_absolute() else base / key_file
    if "key_file" in table and not key_file.parent.is_dir():
        # Never made silently (as root, with root's umask): the folder of the key is the
        # admin's to create, owned by the user ticketd runs as.
        problems.append(
            (
                "kyc.key_file",
                f"{key_file}: its folder {key_file.parent} does not exist; create it (owned by "
                "the user ticketd runs as, mode 0700) or point key_file at an existing folder",
            )
        )
    accepted_raw = table.get("accepted", list(KNOWN_TYPES))
    accepted: tuple[str, ...] = KNOWN_TYPES
    if not isinstance(accepted_raw, list) or not all(isinstance(v, str) for v in accepted_raw):
        problems.append(("kyc.accepted", "must be a list of file types"))
    else:
        unknown = [v for v in accepted_raw if v.lower() not in KNOWN_TYPES]
        if unknown:
            problems.append(
                ("kyc.accepted", f"{', '.join(unknown)}: not one of {', '.join(KNOWN_TYPES)}")
            )
        accepted = tuple(v.lower() for v in accepted_raw if v.lower() in KNOWN_TYPES)
    size = table.get("max_file_size", 10 * 1024 * 1024)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        problems.append(("kyc.max_file_size", "must be a number of bytes of at least 1"))
        size = 10 * 1024 * 1024
    return KycConfig(
        key_file=key_file,
        accepted=accepted,
        max_file_size=size,
        max_documents_per_message=_at_least_one(problems, table, "max_documents_per_message", 10),
        max_documents_per_day=_at_least_one(problems, table, "max_documents_per_day", 30),
        retention_days=_days(problems, table, "retention_days", 30),
        rejected_retention_days=_days(problems, table, "rejected_retention_days", 7),
        **parse_kyc_state(problems, table),
        clamd=_clamd(problems, table, base),
        clamd_timeout=_timeout(problems, table),
    )
