"""Messages over the size limit from the sources that cannot refuse them while they arrive.

SMTP refuses with 552 while reading (ingest/smtp_data.py). The other sources bring mail that is
already somewhere else, so they read at most the limit and say what they left:

- `ticketd ingest` (an MTA pipe) reads standard input up to the limit, drains the rest without
  keeping it (so the MTA sees an exit status, not a broken pipe) and exits 65 (EX_DATAERR), which
  Postfix's pipe(8) and Exim's pipe transport treat as permanent: the sender gets a bounce;
- IMAP asks RFC822.SIZE first and fetches only the first 64 KiB of the header of a message over
  the limit; `ticketd import` reads a file up to the limit. Both journal a quarantined record with
  the reason and the message's From, Subject and Message-ID (`ticketd quarantine list`), and IMAP
  leaves the message on the server untouched: nothing is lost, nothing is flagged.

The limit is `[smtp_in] max_message_size` for every source: one answer to "how big may mail be".
"""

from __future__ import annotations

from email.parser import BytesParser
from email.policy import compat32
from typing import Protocol

from ingest.raw_header import header_end

HEADER_PEEK = 64 * 1024  # what is read of an oversized message: enough for its header
_STEP = 1024 * 1024
_NAMED = ("From", "Subject", "Message-ID", "Date")


class Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


def read_bounded(stream: Readable, limit: int) -> bytes | tuple[bytes, int]:
    """The whole stream if it holds at most `limit` bytes; else (its first bytes, its size),
    having read the rest in steps and dropped it."""
    data = stream.read(limit + 1)
    if len(data) <= limit:
        return data
    size = len(data)
    head = data[:HEADER_PEEK]
    del data
    while chunk := stream.read(_STEP):
        size += len(chunk)
    return head, size


def header_summary(head: bytes) -> str:
    """From, Subject, Message-ID and Date of a message's first bytes, for a person to find it."""
    # Here, not at the top: the parser brings PIL, flufl.bounce and more, and `ticketd ingest`
    # (an MTA pipe, started once a message) reads every message through read_bounded.
    from ingest.parsing import decode_header_value

    header = head[: header_end(head)]
    try:
        message = BytesParser(policy=compat32).parsebytes(header, headersonly=True)
    except Exception:
        return "header unreadable"
    found = []
    for name in _NAMED:
        value = message.get(name)
        if value is not None:
            text = " ".join(decode_header_value(value).split())
            found.append(f"{name}: {text[:200]}")
    return "; ".join(found) or "no From, Subject or Message-ID"


def too_big(size: int, limit: int) -> str:
    return (
        f"over the size limit: {size} bytes, the limit is {limit} bytes "
        "([smtp_in] max_message_size)"
    )
