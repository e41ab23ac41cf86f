"""Bytes in a declared charset to text, never raising: what mail claims is not always so.

A declared charset may be unknown to Python (mapped to what the sender meant), only say "8-bit,
not declared", or be wrong. Undeclared bytes, and bytes declared UTF-8 or US-ASCII (a superset
and a subset of what senders mean by them), are read as UTF-8; the runs that are not UTF-8 are
read as windows-1254 (what Turkish Outlook writes), a byte it leaves undefined as latin-1. Only
the failing runs: a mail gateway that appends a latin-1 footer to a UTF-8 mail must not turn the
customer's own Turkish into mojibake. When most of the 8-bit text is not UTF-8 at all (a Turkish
Outlook mail labelled UTF-8), the whole is read as windows-1254, so a stray pair of its bytes
that happens to form a UTF-8 sequence is not read as one. Another declared charset that fails is
read as UTF-8 when that is what the bytes are, else in the declared charset with only the bytes
it cannot read taken as windows-1254. Used by the MIME parser (ingest/parsing.py) and by the
TNEF reader it calls (ingest/tnef.py), so it sits below both.
"""

from __future__ import annotations

import codecs
import re

# Charsets mail claims that Python does not know, mapped to what the sender meant.
_CHARSET_ALIASES = {
    "iso-8859-8-i": "iso-8859-8",
    "ks_c_5601-1987": "cp949",
    "x-user-defined": "windows-1252",
    "cp-850": "cp850",
    "utf8": "utf-8",
    "x-mac-turkish": "mac_turkish",
}
# Charset names that only say "8-bit, charset not declared": guessed like undeclared bytes.
_UNDECLARED = frozenset({"unknown-8bit", "x-unknown", "unknown", "8bit", "default", "none"})
# Python's names of the charsets whose failing bytes are guessed like undeclared ones.
_GUESSED = frozenset({"utf-8", "ascii"})
_FALLBACK = "windows-1254"
_ERRORS = "ticketd-windows-1254"

# A well-formed UTF-8 sequence of two to four bytes (overlong and surrogate forms aside: this
# only weighs how much of the text is UTF-8, the decoder itself is strict).
_UTF8_SEQUENCE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}"
)
_HIGH_BYTES = bytes(range(0x80, 0x100))


def _fallback_byte(byte: int) -> str:
    try:
        return bytes((byte,)).decode(_FALLBACK)
    except UnicodeDecodeError:  # the few bytes windows-1254 leaves undefined
        return chr(byte)


def _read_failing_run(error: UnicodeError) -> tuple[str, int]:
    """A codec error handler: the bytes a decoder could not read, in windows-1254."""
    if not isinstance(error, UnicodeDecodeError):
        raise error
    run = bytes(error.object[error.start : error.end])
    return "".join(_fallback_byte(byte) for byte in run), error.end


codecs.register_error(_ERRORS, _read_failing_run)


def _guess(data: bytes) -> str:
    """Undeclared 8-bit bytes: UTF-8 where they are, windows-1254 for the runs that are not."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    sequences = _UTF8_SEQUENCE.findall(data)
    high_bytes = len(data) - len(data.translate(None, _HIGH_BYTES))
    other_bytes = high_bytes - sum(len(found) for found in sequences)
    if len(sequences) < other_bytes:
        return data.decode(_FALLBACK, _ERRORS)
    return data.decode("utf-8", _ERRORS)


def codec_name(charset: str) -> str | None:
    """Python's name for a declared charset, None when undeclared or unknown."""
    name = charset.strip().strip('"').strip("'").lower()
    # RFC 2231 lets a charset carry a language ("utf-8*tr"); the charset is before the star.
    name = name.split("*", 1)[0]
    if not name or name in _UNDECLARED:
        return None
    try:
        return codecs.lookup(_CHARSET_ALIASES.get(name, name)).name
    except LookupError:
        return None


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Bytes in a declared (possibly wrong or unknown) charset to text, never raising."""
    name = codec_name(charset) if charset else None
    if name is None or name in _GUESSED:
        return _guess(data)
    try:
        return data.decode(name)
    except (LookupError, UnicodeError, ValueError):
        pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode(name, _ERRORS)
    except (LookupError, UnicodeError, ValueError):  # not a text codec ("base64"), or it broke
        return _guess(data)
