"""The `[kyc]` section: identity documents (issue 6) — key file, accepted types, limits, retention.

Parsed into a frozen record; every problem is appended to the caller's list as (key, reason),
so `ticketd check` reports them together with the rest of the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

# Real types (read from the bytes by `filetype`) an identity document may have: photos from
# phones (JPEG, HEIC, WebP), scans (PNG, TIFF) and PDFs.
KNOWN_TYPES = ("jpeg", "png", "heic", "heif", "webp", "tiff", "pdf")
Problems = list[tuple[str, str]]


@dataclass(frozen=True)
class KycConfig:
    key_file: Path
    accepted: tuple[str, ...] = KNOWN_TYPES
    max_file_size: int = 10 * 1024 * 1024
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


def _days(problems: Problems, table: dict[str, Any], name: str, default: int) -> int:
    value = table.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        problems.append((f"kyc.{name}", "must be a whole number of at least 0"))
        return default
    return value


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


def parse_kyc(problems: Problems, data: dict[str, Any], base: Path) -> KycConfig:
    table = data.get("kyc", {})
    if not isinstance(table, dict):
        problems.append(("kyc", "must be a table ([kyc])"))
        table = {}
    for key in table:
        if key not in ("key_file", "accepted", "max_file_size", "retention_days",
                       "rejected_retention_days") and key not in STATE_KEYS:  # fmt: skip
            problems.append((f"kyc.{key}", "unknown key"))
    raw_key = table.get("key_file", "var/kyc.key")
    if not isinstance(raw_key, str) or not raw_key.strip():
        problems.append(("kyc.key_file", "must be a path"))
        raw_key = "var/kyc.key"
    key_file = Path(raw_key).expanduser()
    key_file = key_file if key_file.is_absolute() else base / key_file
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
        retention_days=_days(problems, table, "retention_days", 30),
        rejected_retention_days=_days(problems, table, "rejected_retention_days", 7),
        **parse_kyc_state(problems, table),
    )
