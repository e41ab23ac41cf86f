"""A part's Content-Transfer-Encoding read as the token it is, by every decoder in the process.

The standard library's compat32 `get_payload(decode=True)` lowercases the header's value but
compares it unstripped: `base64 ` (a trailing space), `Base64<TAB>` or a value folded onto the
next line is no encoding it knows, so the part's base64 text came back as if it were the file
(quoted-printable and uuencode alike). RFC 2045 6.1 makes the value a case-insensitive token;
the whitespace around it is no part of it. So ticketd writes every part's value again as its
token (`normalise`) right after a message is parsed, before anything decodes a payload:
ticketd's own reads and flufl.bounce's detectors, which call `get_payload(decode=True)`
themselves, then agree. `transfer_encoding` reads one value the same way, for the code that
asks which encoding a part has.
"""

from __future__ import annotations

from collections.abc import Iterable
from email.message import Message

_HEADER = "Content-Transfer-Encoding"


def transfer_encoding(part: Message) -> str:
    """The part's transfer encoding, lowercase and without surrounding whitespace ("" when
    it has none)."""
    try:
        return str(part.get(_HEADER, "")).strip().lower()
    except Exception:  # a value the header classes cannot even turn into text
        return ""


def normalise(parts: Iterable[Message]) -> None:
    """Every part's transfer encoding written as its token, where whitespace around it would
    hide it from the standard library's decoder."""
    for part in parts:
        try:
            _normalise_part(part)
        except Exception:  # one unreadable part stays as it came, never costs the message
            continue


def _normalise_part(part: Message) -> None:
    raw_value = part.get(_HEADER)
    if raw_value is None:
        return
    encoding = transfer_encoding(part)
    # Only whitespace is rewritten: the standard library lowercases by itself, and a part
    # written out again (a forward's .eml) keeps the case it came with.
    if str(raw_value).lower() != encoding:
        part.replace_header(_HEADER, encoding)
