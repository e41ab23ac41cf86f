"""The words and times people read in mail, in the reader's language and the desk's zone.

Ticket states, categories and priorities are stored as English codes (`open`, `payment`,
`high`); a Turkish desk's agents read "açık", "ödeme", "yüksek". Templates call `label`
(`{{ label(status, "status") }}`), which looks the code up here for the template's
language; a code the catalogue does not know is shown as it is. Times are shown in the desk's
zone (`[desk] timezone`, default Europe/Istanbul for a `tr` desk, UTC for an `en` one) with the
zone's abbreviation or offset, never as bare UTC.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

LABELS: dict[str, dict[str, dict[str, str]]] = {
    "tr": {
        "status": {
            "open": "açık",
            "pending": "beklemede",
            "closed": "kapalı",
            "merged": "birleştirildi",
        },
        "category": {
            "account": "hesap",
            "payment": "ödeme",
            "bonus": "bonus",
            "technical": "teknik",
            "kyc": "kimlik",
            "complaint": "şikayet",
            "other": "diğer",
        },
        "priority": {"high": "yüksek", "normal": "normal", "low": "düşük"},
    },
    "en": {},
}


def label(language: str, kind: str, code: str | None) -> str:
    """The word for `code` (a status, a category, a priority) in `language`."""
    if code is None:
        return "-"
    return LABELS.get(language, {}).get(kind, {}).get(code, code)


def local_time(moment: datetime, zone: str) -> str:
    """`2026-12-02 14:30 +03` in the desk's zone (the abbreviation when the zone has one)."""
    local = moment.astimezone(ZoneInfo(zone))
    name = local.strftime("%Z")
    if not name or name[0] in "+-":
        offset = local.strftime("%z")
        name = offset[:3] if offset.endswith("00") else offset
    return f"{local:%Y-%m-%d %H:%M} {name}"
