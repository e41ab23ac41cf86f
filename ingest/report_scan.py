"""The failed and delayed recipients of a delivery report, read by flufl.bounce's detectors
from a bounded view of the message, so that what they cost grows with the size of a report,
never with the size of what an attacker can send.

Most of flufl.bounce's fifty address patterns cost the square of a line's length when the line
holds no address (`<[^>]*>` from every "<", `\\s*\\S+@` from every space, `[^\\s@]+@` from every
letter), and Netscape's `.*<[^>]*>` the cube: one line of 998 "<" took a second, a report of
them minutes. So, the way Postfix's, exim's and flufl.bounce's own callers treat a bounce (its
information is in its first kilobytes: the report, then the returned message's headers), the
detectors read:

- the first REPORT_VIEW_BYTES and REPORT_VIEW_LINES of the message only (every line costs
  them some fifty searches: 20,000 blank lines took a second; an Office 365 report's
  delivery-status part starts near its 60th KB and 1,200th line), and its delivery-status part
  wherever it lies, found by its boundary and bounded too (ingest/status_part.py): a long
  first part (a transcript, a returned text of long lines) put it past those, and the failed
  address was never named;
- every line cut at REPORT_LINE_LIMIT characters, the lines a part's transfer encoding hides
  (base64, quoted-printable) too: those are decoded, cut, and encoded again;
- every run of spaces and tabs cut at WHITESPACE_RUN characters;
- Netscape's pattern anchored at the start of the line, where it matches if it matches at all.

A report's lines are short: the address and the reason in the first hundred characters; a
mail system's indentation is a few spaces. The view changes nothing else.
"""

from __future__ import annotations

import base64
import quopri
import re
from email import message_from_bytes
from email.message import Message
from io import BytesIO
from typing import cast

from flufl.bounce._detectors import (
    aol,
    caiwireless,
    dsn,
    exchange,
    exim,
    groupwise,
    llnl,
    microsoft,
    netscape,
    postfix,
    qmail,
    simplematch,
    simplewarning,
    sina,
    smtp32,
    yahoo,
    yale,
)
from flufl.bounce._interfaces import BounceDetector, NoFailures, NoTemporaryFailures, Recipients

from ingest.status_part import StatusPart, bounded_end, status_parts, status_view
from ingest.transfer_encoding import normalise, transfer_encoding

REPORT_VIEW_BYTES = 128 * 1024
REPORT_VIEW_LINES = 2500
REPORT_LINE_LIMIT = 128
WHITESPACE_RUN = 8
# Delivery-status parts the view takes from past its head: one, or a report returned in a report.
STATUS_VIEW_PARTS = 4

_ANY_LINE_END = re.compile(rb"\r\n|\r|\n")
_LONG_WHITESPACE = re.compile(rb"([ \t]{%d})[ \t]+" % WHITESPACE_RUN)


def _safe_line(line: bytes) -> bytes:
    return _LONG_WHITESPACE.sub(rb"\1", line[:REPORT_LINE_LIMIT])


def _safe_lines(data: bytes | bytearray, limit: int | None = None) -> bytes:
    lines = _ANY_LINE_END.split(data, maxsplit=limit or 0)[:limit]
    return b"\n".join(_safe_line(line) for line in lines)


def _is_safe(data: bytes) -> bool:
    lines = data.split(b"\n")
    return all(len(line) <= REPORT_LINE_LIMIT for line in lines) and not _LONG_WHITESPACE.search(
        data
    )


def _bound_encoded_part(part: Message) -> None:
    """A base64 or quoted-printable leaf whose decoded lines are not safe: decoded, made safe,
    encoded again in the same encoding (the detectors that read the encoded text still see
    encoded text, those that decode it see safe lines)."""
    encoding = transfer_encoding(part)
    if encoding not in ("base64", "quoted-printable") or part.is_multipart():
        return
    decoded = part.get_payload(decode=True)
    if not isinstance(decoded, bytes) or _is_safe(decoded):
        return
    safe = _safe_lines(decoded)
    if encoding == "base64":
        part.set_payload(base64.encodebytes(safe).decode("ascii"))
    else:
        part.set_payload(quopri.encodestring(safe).decode("ascii"))


def _in_view(raw: bytes | bytearray, head_length: int, part: StatusPart) -> bool:
    """Whether the view's head holds as much of the status part as `status_view` would."""
    end = bounded_end(raw, part)
    lines = max(raw.count(b"\n", 0, end), raw.count(b"\r", 0, end))  # CRLF, LF or CR alone
    return end <= head_length and lines < REPORT_VIEW_LINES


def _view_bytes(raw: bytes | bytearray) -> bytes:
    """The bounded head of the message; and when a delivery-status part lies past it (a long
    first part), the head up to that part, then it and the status parts after it (a report
    returning a report has two), each bounded too."""
    head = raw[:REPORT_VIEW_BYTES]
    if len(raw) > REPORT_VIEW_BYTES:
        head = head[: max(head.rfind(b"\n"), head.rfind(b"\r")) + 1] or head
    parts = status_parts(raw, most=STATUS_VIEW_PARTS)
    outside = [p for p in parts if not _in_view(raw, len(head), p)]
    if not outside:
        return _safe_lines(head, REPORT_VIEW_LINES)
    before = _safe_lines(head[: outside[0].opened_at], REPORT_VIEW_LINES)
    if before and not before.endswith(b"\n"):
        before += b"\n"
    # The first status part's delimiter line ends whatever part the cut head left open, and
    # the parts after it are read as its siblings (inside a returned message, their own
    # boundary is declared in a header the view does not hold).
    boundary = outside[0].boundary
    spliced = [status_view(raw, p, boundary) for p in parts[parts.index(outside[0]) :]]
    return before + _safe_lines(b"".join(spliced) + b"--" + boundary + b"--\r\n")


def report_view(raw: bytes | bytearray) -> Message:
    """The message as the detectors read it: see the module's docstring."""
    message = message_from_bytes(_view_bytes(raw))
    # The detectors decode parts themselves: `base64 ` is base64, a forward sent base64 is read
    # as a message (the view is bounded: so is what it decodes).
    normalise(message.walk(), message_from_bytes)
    for part in message.walk():
        _bound_encoded_part(part)
    return message


class _Netscape(netscape.Netscape):
    """flufl.bounce's Netscape detector, its address pattern matched at the start of each line.

    `(?P<reply>please reply to)?.*<(?P<addr>[^>]*)>` searched from every position cost the cube
    of a line without a ">"; `.*` matches any prefix of a line (it holds no LF but its last
    character), so the search matches where the match from the first character does.
    """

    def process(self, msg: Message) -> tuple[Recipients, Recipients]:
        if not msg.is_multipart():
            return NoFailures
        plainmsg = None
        leaves = [p for p in msg.walk() if not p.is_multipart()]
        for subpart in leaves[:-1]:
            if subpart.get_content_type() == "text/plain":
                plainmsg = subpart
                break
        if plainmsg is None:
            return NoFailures
        body = BytesIO(cast(bytes, plainmsg.get_payload(decode=True)))
        addresses: set[bytes] = set()
        for line in body:
            if netscape.pcre.search(line):
                for line in body:
                    if (mo := netscape.acre.match(line)) and not mo.group("reply"):
                        addresses.add(mo.group("addr"))
        return NoTemporaryFailures, frozenset(addresses)


# flufl.bounce's own detectors in its order (its `_scan._DETECTORS`, which tests/
# test_hostile_bounce_scan.py holds this to), Netscape's replaced.
DETECTORS: tuple[type[BounceDetector], ...] = (
    dsn.DSN,
    exim.Exim,
    sina.Sina,
    yahoo.Yahoo,
    yale.Yale,
    smtp32.SMTP32,
    postfix.Postfix,
    qmail.Qmail,
    groupwise.GroupWise,
    microsoft.Microsoft,
    caiwireless.Caiwireless,
    exchange.Exchange,
    _Netscape,
    aol.AOL,
    simplematch.SimpleMatch,
    simplewarning.SimpleWarning,
    llnl.LLNL,
)


def all_failures(message: Message) -> tuple[Recipients, Recipients]:
    """(temporary, permanent) failures, as flufl.bounce's `all_failures`: the detectors in
    order, the first that finds any address decides."""
    for detector in DETECTORS:
        temporary, permanent = detector().process(message)
        if temporary or permanent:
            return frozenset(temporary), frozenset(permanent)
    return frozenset(), frozenset()
