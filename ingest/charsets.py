"""Bytes in a declared charset to text, never raising: what mail claims is not always so.

A declared charset may be unknown to Python (mapped to what the sender meant), only say "8-bit,
not declared", or be wrong; undeclared and failing bytes are read as UTF-8, then as windows-1254
(what Turkish Outlook writes), then as latin-1, which reads any byte. Used by the MIME parser
(ingest/parsing.py) and by the TNEF reader it calls (ingest/tnef.py), so it sits below both.
"""

from __future__ import annotations

# Charsets mail claims that Python does not know, mapped to what the sender meant.
_CHARSET_ALIASES = {
    "iso-8859-8-i": "iso-8859-8",
    "ks_c_5601-1987": "cp949",
    "x-user-defined": "windows-1252",
    "cp-850": "cp850",
    "utf8": "utf-8",
    "x-mac-turkish": "mac_turkish",
}
_FALLBACK_CHARSETS = ("utf-8", "windows-1254")
# Charset names that only say "8-bit, charset not declared": guessed like undeclared bytes.
_UNDECLARED = frozenset({"unknown-8bit", "x-unknown", "unknown", "8bit", "default", "none"})


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Bytes in a declared (possibly wrong or unknown) charset to text, never raising."""
    candidates: list[str] = []
    if charset:
        name = charset.strip().strip('"').strip("'").lower()
        if name not in _UNDECLARED:
            candidates.append(_CHARSET_ALIASES.get(name, name))
    candidates += [c for c in _FALLBACK_CHARSETS if c not in candidates]
    for candidate in candidates:
        try:
            return data.decode(candidate)
        except (LookupError, UnicodeDecodeError, ValueError):
            continue
    return data.decode("latin-1")
