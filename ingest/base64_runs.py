"""A large message's long base64 runs decoded beside the parser, not through it (issue 19).

The standard library's parser holds a base64 attachment many times over while it reads it: the
message as text, a string per line, the part's body joined, its bytes, its lines again, joined
again, then decoded; a 24 MB mail grew the parsing process by about 200 MB. So before a large
message is parsed, each long run of base64 lines is cut out and a short marker line stands in
its place; the run is decoded straight from the raw bytes (binascii skips the line ends), and
the part whose whole body is one marker gets those bytes.

The shortcut must never change what is read. A run is cut out only when it is clean base64 (the
alphabet, padding only at its very end, whole quanta), so its decoding is the parser's. Once the
cut message is parsed, every marker must be the entire body of a base64 leaf part, outside any
forwarded message (whose bytes are kept whole); when one is anywhere else (in a text part, in a
part that is not base64, beside other lines) `placed` says so, and the caller parses the message
as it came.
"""

from __future__ import annotations

import binascii
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.message import Message

from ingest.transfer_encoding import transfer_encoding

# Smaller messages are parsed as they came: the parser's copies of them cost little.
LIFT_FROM = 1024 * 1024
# Shorter runs stay in the text (a small image, a signature logo).
RUN_MIN = 64 * 1024

# Lines of the base64 alphabet, each ending in a line end; possessive, so a line that turns
# out not to be one (a word followed by a space) costs its length once, never more.
_RUN = re.compile(rb"(?m)^(?:[A-Za-z0-9+/]++={0,2}\r?\n)++")


@dataclass
class Lifted:
    """The message with its long runs cut out (`text`, or the raw bytes themselves when it
    has none) and each run's decoded bytes by the marker standing in for it. The markers are
    `prefix` and a number: one search for the prefix tells whether a part holds any."""

    text: bytes | bytearray
    prefix: str = ""
    decoded: dict[str, bytes] = field(default_factory=dict)

    def placed(self, parts: Iterable[Message]) -> dict[int, bytes] | None:
        """The decoded bytes by `id` of the part whose body each marker is, or None when a
        marker stands anywhere else (or nowhere the walk reached): parse the original."""
        if not self.decoded:
            return {}
        try:
            return self._placed(parts)
        except Exception:  # a part the parser left unreadable: the original is parsed
            return None

    def _placed(self, parts: Iterable[Message]) -> dict[int, bytes] | None:
        found: dict[int, bytes] = {}
        for part in parts:
            if part.is_multipart():
                if part.get_content_maintype() == "message":
                    return None  # a forward is kept as its bytes: they must be the real ones
                continue
            payload = part.get_payload()
            if not isinstance(payload, str) or self.prefix not in payload:
                continue
            decoded = self.decoded.get(payload.strip("\r\n"))
            # Read as the parsed message will be decoded (its values made tokens first).
            cte = transfer_encoding(part)
            if decoded is None or cte != "base64" or part.get_content_maintype() == "message":
                return None
            found[id(part)] = decoded
        return found if len(found) == len(self.decoded) else None


def lift(raw: bytes | bytearray) -> Lifted:
    """`raw` with each long clean base64 run after its header replaced by a marker line."""
    if len(raw) < LIFT_FROM:
        return Lifted(raw)
    body_start = _body_start(raw)
    pieces: list[bytes | bytearray] = []
    decoded: dict[str, bytes] = {}
    # 12 random characters of the alphabet and a 12-digit number: 24 characters, 18 bytes of
    # base64 (no padding), never in the message by chance.
    prefix = secrets.token_urlsafe(9).replace("-", "+").replace("_", "/")
    kept_to = 0
    for run in _RUN.finditer(raw, body_start):
        start, end = run.span()
        if end - start < RUN_MIN or not _clean(raw, start, end):
            continue
        marker = f"{prefix}{len(decoded):012d}"
        decoded[marker] = binascii.a2b_base64(memoryview(raw)[start:end])
        line_end = b"\r\n" if raw[end - 2 : end] == b"\r\n" else b"\n"
        pieces += (raw[kept_to:start], marker.encode("ascii"), line_end)
        kept_to = end
    if not decoded:
        return Lifted(raw)
    pieces.append(raw[kept_to:])
    return Lifted(b"".join(pieces), prefix, decoded)


def _body_start(raw: bytes | bytearray) -> int:
    """Where the top-level header ends (its empty line), or the end: no run is looked for
    in the header, which the parser reads differently."""
    ends = [end + len(blank) for blank in (b"\n\n", b"\n\r\n") if (end := raw.find(blank)) >= 0]
    return min(ends) if ends else len(raw)


def _clean(raw: bytes | bytearray, start: int, end: int) -> bool:
    """Whole base64 quanta, padding only on the run's last line: decoding it strictly (as the
    parser first tries) and leniently (binascii) give the same bytes."""
    line_ends = raw.count(b"\n", start, end) + raw.count(b"\r", start, end)
    if (end - start - line_ends) % 4:
        return False
    padding = raw.find(b"=", start, end)
    last_line = raw.rfind(b"\n", start, end - 1) + 1
    return padding < 0 or padding >= last_line
