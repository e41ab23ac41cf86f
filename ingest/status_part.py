"""A delivery report's message/delivery-status part found in the raw bytes, wherever it lies,
by the MIME boundaries the message declares, and bounded before any parser reads it.

Two costs are bounded here, both set by the sender of a report:

- where the part is: the bounce detectors read a bounded view of a report (ingest/report_scan.py),
  and a report whose first part is long (a transcript, a returned text of long lines) put its
  delivery-status part past that view, so the failed address was never named. `find_status`
  locates the part by its delimiter line, reading only each part's header; `status_view` is the
  part's header and at most STATUS_VIEW_BYTES and STATUS_VIEW_LINES of its body, for the view.
- how long it is: the standard library parses a delivery-status body as a series of header
  blocks, one Message for each blank-line-separated block, and every later walk of the message
  visits them all: a 2 MB part of blank lines cost its parser 12-14 s. `bound_status` cuts
  each such part's body at the same bound before the message is parsed. A real part is a
  block for the message and one per recipient, a few hundred bytes each; what is cut is past
  anything a mail system writes.

Only delimiter lines of boundaries the message declares count (as in ingest/mime_shape.py),
and a part's body ends at the next delimiter line of the boundary that opened it, so a part
holding lines of another boundary is still read to its true end.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from email.parser import BytesHeaderParser
from email.policy import compat32

from ingest.mime_shape import MAX_PARTS, declared_boundaries

STATUS_VIEW_BYTES = 64 * 1024
STATUS_VIEW_LINES = 1000
# A part's header is a few lines; one longer than this is no status part's.
_HEADER_READ = 8 * 1024
_STATUS_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
# At a line's start, a CR-only line end's too (the detectors' view reads those files).
_DELIMITER = re.compile(rb"(?m)(?:^|(?<=\r))--([^\r\n]*)(\r\n|\r|\n|$)")
_BLANK_LINE = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_LINE_END = re.compile(rb"\r\n|\r|\n")
_STATUS_WORD = re.compile(rb"(?i)delivery-status")


@dataclass(frozen=True)
class StatusPart:
    """Offsets in the raw message: the delimiter line that opens the part, its header, its
    body and where the body ends (the next delimiter line of `boundary`, or the end)."""

    boundary: bytes
    opened_at: int
    header_at: int
    body_at: int
    end: int


# (start, end of the line, boundary, closing) of a delimiter line.
_Delimiter = tuple[int, int, bytes, bool]


def _delimiters(raw: bytes | bytearray) -> Iterator[_Delimiter]:
    """Every delimiter line of a declared boundary, in order (read as they come: a message
    of a million delimiter lines is never held as a list of them)."""
    boundaries = declared_boundaries(raw)
    if not boundaries:
        return
    for match in _DELIMITER.finditer(raw):
        text = match.group(1).rstrip()
        closing = text.endswith(b"--") and text[:-2] in boundaries
        boundary = text[:-2] if closing else text
        if boundary in boundaries:
            yield match.start(), match.end(), boundary, closing


def _is_status_header(header: bytes | bytearray) -> bool:
    if b"delivery-status" not in header.lower():
        return False  # most parts: no header parse at all
    try:
        parsed = BytesHeaderParser(policy=compat32).parsebytes(bytes(header))
        return parsed.get_content_type() in _STATUS_TYPES
    except Exception:  # a header the parser cannot read is no status part's
        return False


def _opened_status(raw: bytes | bytearray, opened: _Delimiter, stop: int) -> StatusPart | None:
    """The status part `opened` starts, if it is one, its end not known yet (the end of
    `raw`); its header is read up to _HEADER_READ bytes and never past `stop`, the next
    delimiter line, so the search reads the message about once, however many parts it has."""
    start, line_end, boundary, _ = opened
    head = raw[line_end : min(stop, line_end + _HEADER_READ)]
    blank = _BLANK_LINE.search(head)
    if blank is None or not _is_status_header(head[: blank.end()]):
        return None
    return StatusPart(boundary, start, line_end, line_end + blank.end(), len(raw))


def status_parts(raw: bytes | bytearray, most: int = MAX_PARTS) -> list[StatusPart]:
    """The first `most` delivery-status parts of the message, in order, each ending at the
    next delimiter line of its boundary."""
    if not _STATUS_WORD.search(raw):
        return []  # nearly all mail: one search, no delimiter read
    found: list[StatusPart] = []
    waiting: dict[bytes, int] = {}  # boundary: the part in `found` it will end
    previous: _Delimiter | None = None
    for delimiter in itertools.chain(_delimiters(raw), [None]):
        stop = len(raw) if delimiter is None else delimiter[0]
        if previous is not None and not previous[3] and len(found) < most:
            part = _opened_status(raw, previous, stop)
            if part is not None:
                waiting[part.boundary] = len(found)
                found.append(part)
        if delimiter is not None and delimiter[2] in waiting:
            index = waiting.pop(delimiter[2])
            found[index] = replace(found[index], end=delimiter[0])
        if delimiter is None or (len(found) >= most and not waiting):
            break
        previous = delimiter
    return found


def find_status(raw: bytes | bytearray) -> StatusPart | None:
    """The message's first delivery-status part (a report has one)."""
    parts = status_parts(raw, most=1)
    return parts[0] if parts else None


def bounded_end(raw: bytes | bytearray, part: StatusPart) -> int:
    """Where the part's body stops being read: its end, or the line end past
    STATUS_VIEW_BYTES or STATUS_VIEW_LINES of it, whichever comes first."""
    end = min(part.end, part.body_at + STATUS_VIEW_BYTES)
    for lines, match in enumerate(_LINE_END.finditer(raw, part.body_at, end), 1):
        if lines >= STATUS_VIEW_LINES:
            return match.end()
    if end < part.end:  # cut at a line end, never inside a field
        last = max(raw.rfind(b"\n", part.body_at, end), raw.rfind(b"\r", part.body_at, end))
        return last + 1 if last >= part.body_at else end
    return end


def status_view(raw: bytes | bytearray, part: StatusPart, boundary: bytes) -> bytes:
    """The part as the detectors read it: a delimiter line of `boundary` (its own, or the
    boundary of the part read before it: a report returned inside a report is read beside
    it), its header and its bounded body, ending in a line end. The caller ends it with a
    delimiter line."""
    kept = bytes(raw[part.header_at : bounded_end(raw, part)])
    if not kept.endswith((b"\n", b"\r")):
        kept += b"\r\n"
    return b"--" + boundary + b"\r\n" + kept


def bound_status(raw: bytes | bytearray) -> bytes | bytearray:
    """`raw` with the body of each delivery-status part cut at the view's bound: the
    delimiter lines of declared boundaries in what is cut stay, so the message's structure is
    the one it had (whichever of them the parser takes to end the part); only the status lines
    past the bound go."""
    cuts = [(bounded_end(raw, p), p.end) for p in status_parts(raw)]
    cuts = [(cut_at, end) for cut_at, end in cuts if cut_at < end]
    if not cuts:
        return raw
    pieces: list[bytes | bytearray] = []
    kept_to = 0
    delimiters = _delimiters(raw)
    for cut_at, end in cuts:
        if cut_at < kept_to:
            continue  # inside the part just cut (a status header among its lines): cut with it
        pieces.append(raw[kept_to:cut_at])
        for start, line_end, _, _ in delimiters:
            if start >= end:
                break
            if start >= cut_at:
                pieces.append(raw[start:line_end])
        kept_to = end
    pieces.append(raw[kept_to:])
    return b"".join(pieces)
