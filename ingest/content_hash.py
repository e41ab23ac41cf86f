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
Linear in the message: no regular expression runs over it.
"""

from __future__ import annotations

import hashlib

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


def _is_header_line(line: bytes) -> bool:
    """Whether the email package's feedparser, which ticketd parses with, reads `line` (its
    line end taken off) as a header line: a field, a continuation or a `From ` line."""
    if line[:1] in (b" ", b"\t") or line.startswith(b"From "):
        return True
    name, colon, _ = line.partition(b":")
    return bool(colon) and not name.translate(None, _NAME_BYTES)


def _split(raw: bytes) -> tuple[list[bytes], bytes]:
    """(header lines, body) of `raw` with its line ends made LF, the header ended where the
    parser ends it: a message without the empty line after its header (a script's, a cron
    alert's) has its text hashed, so two that differ only in it are not one message."""
    text = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if text.startswith(b"\xef\xbb\xbf"):
        text = text[3:]
    if text.startswith(b"From "):  # an mbox separator line some MTA pipes put first
        text = text.partition(b"\n")[2]
    head: list[bytes] = []
    start, body = 0, b""
    while start < len(text):
        end = text.find(b"\n", start)
        end = len(text) if end < 0 else end
        line = text[start:end]
        if not _is_header_line(line):
            # The empty line is the separator; any other line is the body's first.
            body = text[end + 1 :] if not line else text[start:]
            break
        head.append(line)
        start = end + 1
    if head and head[-1].startswith(b"From "):
        # feedparser gives a `From ` line that ends the header (not the first line) to the body.
        body = head.pop() + b"\n" + body
    return head, body


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


def content_hash(raw: bytes) -> str:
    """The SHA-256 (hex) of the author's header fields and the body of `raw`."""
    lines, body = _split(raw)
    digest = hashlib.sha256()
    for name, value in _author_fields(lines):
        digest.update(name + b":" + value + b"\n")
    digest.update(b"\n")
    digest.update(body.rstrip(b"\n \t"))
    return digest.hexdigest()
