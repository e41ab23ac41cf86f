"""What the sender sent, as one hash: the key that tells an exact copy from a different message.

Deduplication (promise 2) must recognise the same message arriving again (an SMTP retry, an
IMAP re-fetch, the same mail delivered to two monitored addresses, over SMTP and IMAP) and must
not take a different message for a copy because it reuses a Message-ID (broken mailers, web
forms, scanners and some ticket systems do). Hashing the raw bytes fails the first way: every
hop adds its own trace headers (Received, Return-Path, Delivered-To, X-Original-To, the
`Received` and `Return-Path` ticketd's listener adds itself, spam and authentication results),
so a retry is never byte-identical. Hashing the Message-ID alone fails the second way.

The hash covers what the author's side wrote: the body, and the header fields in
`AUTHOR_FIELDS`; every other header, all of them added in transit, is left out. The header
ends where the parser (the email package's feedparser) ends it: at the empty line, or at the
first line that is no header field, which begins the body. Line ends (CRLF from SMTP and
IMAP, LF from an MTA pipe, CR alone), folding, runs of whitespace in a header, trailing blank
lines, a leading mbox `From ` line and a byte order mark do not count.
Linear in the message, and never a copy of it whole: only the header's line ends are looked
for with a regular expression, the body is hashed a piece at a time.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Iterator

AUTHOR_FIELDS = frozenset(
    {
        "from",
        "sender",
        "reply-to",
        "to",
        "cc",
        "subject",
        "date",
        "message-id",
        "in-reply-to",
        "references",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "content-disposition",
    }
)
_WANTED = frozenset(name.encode() for name in AUTHOR_FIELDS)


# Printable ASCII but space: what a field name is made of in feedparser's headerRE,
# `^(From |[\041-\071\073-\176]*:|[\t ])` (the colon it leaves out ends the name anyway).
_NAME_BYTES = bytes(range(0x21, 0x7F))


def _is_header_line(line: bytes | bytearray) -> bool:
    """Whether the email package's feedparser, which ticketd parses with, reads `line` (its
    line end taken off) as a header line: a field, a continuation or a `From ` line."""
    if line[:1] in (b" ", b"\t") or line.startswith(b"From "):
        return True
    name, colon, _ = line.partition(b":")
    return bool(colon) and not name.translate(None, _NAME_BYTES)


_LINE_END = re.compile(rb"\r\n|\r|\n")  # each a line end for the parser, and made LF here
# The body is hashed a piece at a time with its line ends made LF: a 25 MB message was copied
# three times over (both line-end replacements, the body's slice) in the parsing process.
PIECE = 256 * 1024


def _split(raw: bytes | bytearray) -> tuple[list[bytes], bytes, int]:
    """(header lines, what the body begins with, where the rest of the body begins in `raw`):
    the header ended where the parser ends it, so a message without the empty line after its
    header (a script's, a cron alert's) has its text hashed, and two that differ only in it
    are not one message. Line ends are CRLF, LF or CR alone; the lines come without them."""
    start = 3 if raw.startswith(b"\xef\xbb\xbf") else 0
    if raw.startswith(b"From ", start):  # an mbox separator line some MTA pipes put first
        first_end = _LINE_END.search(raw, start)
        start = first_end.end() if first_end else len(raw)
    head: list[bytes] = []
    body_from = len(raw)
    while start < len(raw):
        found = _LINE_END.search(raw, start)
        end, after = found.span() if found else (len(raw), len(raw))
        line = bytes(raw[start:end])  # a header line: small
        if not _is_header_line(line):
            # The empty line is the separator; any other line is the body's first.
            body_from = after if not line else start
            break
        head.append(line)
        start = after
    lead = b""
    if head and head[-1].startswith(b"From "):
        # feedparser gives a `From ` line that ends the header (not the first line) to the body.
        lead = head.pop() + b"\n"
    return head, lead, body_from


def _normalised_pieces(raw: bytes | bytearray, start: int) -> Iterator[bytes | bytearray]:
    """`raw[start:]` with its line ends made LF, in pieces of about PIECE bytes; a CRLF is
    never split between two pieces."""
    while start < len(raw):
        end = min(start + PIECE, len(raw))
        while end < len(raw) and raw[end - 1] == 0x0D:
            end += 1  # the LF that may follow a CR belongs with it (and a CR may follow a CR)
        yield raw[start:end].replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        start = end


def _author_fields(lines: list[bytes]) -> list[tuple[bytes, bytes]]:
    fields: list[tuple[bytes, bytes]] = []
    for line in lines:
        if line[:1] in (b" ", b"\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, value + b" " + line)  # a folded line continues its field
            continue
        name, colon, value = line.partition(b":")
        if colon:
            fields.append((name.strip().lower(), value))
    kept = [(name, b" ".join(value.split())) for name, value in fields if name in _WANTED]
    # Stable: a field written twice keeps its order; an MTA that reorders fields does not count.
    return sorted(kept, key=lambda field: field[0])


def content_hash(raw: bytes | bytearray) -> str:
    """The SHA-256 (hex) of the author's header fields and the body of `raw`."""
    lines, lead, body_from = _split(raw)
    digest = hashlib.sha256()
    for name, value in _author_fields(lines):
        digest.update(name + b":" + value + b"\n")
    digest.update(b"\n")
    # The body without its trailing whitespace: what may end it is held back until more text
    # comes after it, or dropped at the end.
    held = bytearray()
    for piece in itertools.chain((lead,), _normalised_pieces(raw, body_from)):
        text = piece.rstrip(b"\n \t")
        if text:
            digest.update(held)
            digest.update(text)
            held.clear()
        held += piece[len(text) :]
    return digest.hexdigest()
