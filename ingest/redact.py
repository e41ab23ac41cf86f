"""Copies of a raw message with parts taken out (issue 16): what retention and purges keep.

Two copies are made of a message whose bytes must not all stay:

- `without_files(raw, digests)`: every part whose decoded bytes have one of these SHA-256s (an
  identity document whose retention ended) is replaced by a short text part naming what was
  there; a winmail.dat holding such a file goes whole. Everything else stays as it was.
- `without_attachments(raw)`: only the text the sender wrote (text/plain and text/html parts
  that are not attachments) stays; every file, inline image and winmail.dat is replaced.

The copy is then read back with ticketd's own parser (ingest/parsing.py), the one that found
the documents in the first place, whatever form they came in (base64, inside a forwarded
message at any depth, inside a winmail.dat). If a file that had to go is still found, or the
copy cannot be written, the copy falls back to the message's headers alone: losing a body is
allowed, keeping a document is not. Both read the message within `limits`, which must reach as
far as the parser that found the files did (`[limits]`, ticketd/retention.py `reach`): a file
the documents step found 60 levels down is a file the copy must not keep, even though the
default limits would never see it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection
from email import message_from_bytes
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32

from ingest.filenames import safe_filename
from ingest.mime_shape import DEFAULT_LIMITS, ShapeLimits
from ingest.parsing import decode_encodings, decode_header_value, parse_message
from ingest.tnef import looks_like_tnef
from ingest.tnef import unpack as unpack_tnef

# The headers that described the content of a replaced part; the note is plain text.
_CONTENT_HEADERS = (
    "Content-Type",
    "Content-Transfer-Encoding",
    "Content-Disposition",
    "Content-ID",
    "Content-Description",
    "Content-Location",
)
REMOVED_NOTE = "The raw message was removed by ticketd ({why})."

Drop = Callable[[Message, bytes], bool]


def _payload(part: Message) -> bytes:
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        return b""
    return payload if isinstance(payload, bytes) else b""


def _replace(part: Message, payload: bytes, why: str) -> None:
    """The part, in place, becomes a text note naming what was there (never its content)."""
    try:
        name = decode_header_value(part.get_filename() or "")
    except Exception:
        name = ""
    kind = part.get_content_type()
    digest = hashlib.sha256(payload).hexdigest()
    label = safe_filename(name, "unnamed") if name else "unnamed"
    note = f"[{label} ({kind}, {len(payload)} bytes, sha256 {digest}) removed by ticketd: {why}]"
    for header in _CONTENT_HEADERS:
        del part[header]
    part["Content-Type"] = 'text/plain; charset="utf-8"'
    part["Content-Transfer-Encoding"] = "8bit"
    part.set_payload(note.encode("utf-8").decode("ascii", "surrogateescape"))


def _leaves(message: Message) -> list[Message]:
    return [part for part in message.walk() if not part.is_multipart()]


def _rewrite(raw: bytes, drop: Drop, why: str, limits: ShapeLimits) -> bytes | None:
    """A copy with each leaf `drop` names replaced; None when nothing had to go."""
    message = message_from_bytes(raw, policy=compat32)
    # Decoded as parse_message decodes them (a forward sent base64 too, as deep as `limits`
    # reach), so each file's digest is the one it found and the copy can replace it.
    decode_encodings(message, limits)
    changed = False
    for part in _leaves(message):
        payload = _payload(part)
        if drop(part, payload):
            _replace(part, payload, why)
            changed = True
    if not changed:
        return None
    return message.as_bytes(policy=compat32)


def headers_only(raw: bytes, why: str) -> bytes:
    """The message's headers and a note: what is left when nothing of its body may stay."""
    message = BytesParser(policy=compat32).parsebytes(raw, headersonly=True)
    for header in _CONTENT_HEADERS:
        del message[header]
    message["Content-Type"] = 'text/plain; charset="utf-8"'
    message["Content-Transfer-Encoding"] = "8bit"
    message.set_payload(REMOVED_NOTE.format(why=why))
    try:
        return message.as_bytes(policy=compat32)
    except Exception:  # a header the generator cannot write: nothing of the message then
        return f"Subject: removed\r\n\r\n{REMOVED_NOTE.format(why=why)}\r\n".encode()


def file_digests(raw: bytes, limits: ShapeLimits = DEFAULT_LIMITS) -> set[str]:
    """The SHA-256 of every file ticketd's parser finds in the message, as the documents
    step saw them: the files inside a forwarded message too, at any depth `limits` reach."""
    found = parse_message(raw, limits).attachments
    return {hashlib.sha256(a.payload).hexdigest() for a in found}


def _holds(part: Message, payload: bytes, digests: Collection[str]) -> bool:
    if hashlib.sha256(payload).hexdigest() in digests:
        return True
    if looks_like_tnef(part.get_content_type(), part.get_filename(), payload):
        contents = unpack_tnef(payload)
        files = contents.files if contents is not None else ()
        return any(hashlib.sha256(f.payload).hexdigest() in digests for f in files)
    return False


def _checked(
    raw: bytes, copy: bytes | None, digests: Collection[str], why: str, limits: ShapeLimits
) -> bytes:
    if copy is None:
        copy = raw
    try:
        if not file_digests(copy, limits) & set(digests):
            return copy
    except Exception:  # the copy does not even parse: keep nothing of it
        pass
    return headers_only(raw, why)


def without_files(
    raw: bytes, digests: Collection[str], why: str, limits: ShapeLimits = DEFAULT_LIMITS
) -> bytes | None:
    """`raw` without the files whose SHA-256 is in `digests`; None when it holds none."""
    try:
        if not file_digests(raw, limits) & set(digests):
            return None
        copy = _rewrite(raw, lambda part, payload: _holds(part, payload, digests), why, limits)
    except Exception:
        return headers_only(raw, why)
    return _checked(raw, copy, digests, why, limits)


def _is_body_text(part: Message) -> bool:
    if part.get_content_type() not in ("text/plain", "text/html"):
        return False
    disposition = str(part.get("Content-Disposition", "")).split(";")[0].strip().lower()
    return part.get_filename() is None and disposition != "attachment"


def without_attachments(raw: bytes, why: str, limits: ShapeLimits = DEFAULT_LIMITS) -> bytes:
    """`raw` with only the text the sender wrote; every file replaced by a note."""
    try:
        digests = file_digests(raw, limits)
        if not digests:
            return raw
        copy = _rewrite(raw, lambda part, _payload: not _is_body_text(part), why, limits)
    except Exception:
        return headers_only(raw, why)
    return _checked(raw, copy, digests, why, limits)
