"""Limits on a message's MIME shape, and the notes that say what they left unread.

The standard library's parser builds one object per MIME part, about 400 bytes of memory for a
part that takes 10 bytes of mail: 25 MB of empty parts would take gigabytes and minutes. So the
raw bytes are cut before the part past `ShapeLimits.parts` is ever parsed (`bound_parts`),
counting only delimiter lines of boundaries the message declares (a text full of "--" lines is
not cut). `ShapeLimits.depth` bounds how deep `parsing._iter_parts` looks. Both are `[limits]
max_mime_parts` and `max_mime_depth` in the configuration; the defaults are `MAX_PARTS` and
`MAX_DEPTH`. Honest mail comes nowhere near either (a mail client writes a few levels and at
most hundreds of parts), so the message is still read: what lies past a limit is left out and
`shape_notes` says so, naming the limit, for the ticket's note; a base64 part that is not
base64 keeps what decodes, with a note too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from email.errors import MessageDefect
from email.message import Message

from domain.header_addresses import Address
from domain.message import ParsedMessage
from ingest.transfer_encoding import transfer_encoding

MAX_PARTS = 5000
MAX_DEPTH = 50


@dataclass(frozen=True)
class ShapeLimits:
    """How many MIME parts of one message are read, and how deeply nested."""

    parts: int = MAX_PARTS
    depth: int = MAX_DEPTH


DEFAULT_LIMITS = ShapeLimits()

# Header fields that become a ticket's subject, names and participants, and go out again in
# our mail: a 1 MB subject would make a 1 MB acknowledgement header, 60,000 Cc addresses
# 60,000 participants. Longer than any person writes; the rest is cut, with a note.
MAX_SUBJECT = 1000
MAX_NAME = 200
MAX_ADDRESSES = 100

_BOUNDARY = re.compile(rb'(?i)boundary\s*=\s*(?:"([^"\r\n]{1,200})"|([^\s;"]{1,200}))')
_DELIMITER = re.compile(rb"(?m)^--([^\r\n]*)")
_NOT_BASE64 = re.compile(r"[^A-Za-z0-9+/=\s]")


def bound_fields(parsed: ParsedMessage) -> ParsedMessage:
    """`parsed` with its subject, names and address lists cut to the limits above, and a note
    for each cut in `shape_notes`."""
    notes: list[str] = []
    subject = parsed.subject
    if len(subject) > MAX_SUBJECT:
        notes.append(f"The subject has {len(subject)} characters: the first {MAX_SUBJECT} kept.")
        subject = subject[:MAX_SUBJECT]

    def named(address: Address) -> Address:
        if len(address.name) <= MAX_NAME:
            return address
        return replace(address, name=address.name[:MAX_NAME])

    def first(addresses: tuple[Address, ...], header: str) -> tuple[Address, ...]:
        if len(addresses) > MAX_ADDRESSES:
            notes.append(
                f"{header} names more than {MAX_ADDRESSES} addresses: "
                f"only the first {MAX_ADDRESSES} kept."
            )
        return tuple(named(a) for a in addresses[:MAX_ADDRESSES])

    to, cc = first(parsed.to, "To"), first(parsed.cc, "Cc")
    reply_to = first(parsed.reply_to, "Reply-To")
    if any(len(a.name) > MAX_NAME for a in (parsed.sender, *parsed.to, *parsed.cc)):
        notes.append(f"A display name longer than {MAX_NAME} characters was cut.")
    if not notes:
        return parsed
    return replace(
        parsed,
        subject=subject,
        sender=named(parsed.sender),
        to=to,
        cc=cc,
        reply_to=reply_to,
        shape_notes=(*parsed.shape_notes, *notes),
    )


class UnreadStructure(MessageDefect):
    """Set by the parser's fallback: the structure could not be parsed, only header and text."""


class PartsCut(MessageDefect):
    """Set when `bound_parts` cut the message before part `limit` + 1."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit


def declared_boundaries(raw: bytes | bytearray) -> set[bytes]:
    """Every boundary a Content-Type parameter in the message declares: the only delimiter
    lines that count (a text full of "--" lines is no structure)."""
    return {a or b for a, b in _BOUNDARY.findall(raw)}


def bound_parts(raw: bytes | bytearray, limit: int = MAX_PARTS) -> tuple[bytes | bytearray, bool]:
    """The raw bytes up to the delimiter line that would start part `limit` + 1, and whether
    anything was cut."""
    boundaries = declared_boundaries(raw)
    if not boundaries:
        return raw, False
    opened = 0
    for match in _DELIMITER.finditer(raw):
        line = match.group(1).rstrip()
        if line in boundaries:
            opened += 1
            if opened > limit:
                return raw[: match.start()], True
    return raw, False


def walk_parts(message: Message, max_depth: int | None = None) -> Iterator[tuple[Message, int]]:
    """(part, depth) for every part, depth first like `Message.walk`, without recursion (a
    message nested thousands deep must not exhaust the stack); the children of a part at
    `max_depth` are not visited."""
    stack: list[tuple[Message, int]] = [(message, 0)]
    while stack:
        part, depth = stack.pop()
        yield part, depth
        if max_depth is not None and depth >= max_depth:
            continue
        try:
            children = part.get_payload() if part.is_multipart() else None
        except Exception:
            children = None
        if isinstance(children, list):
            stack.extend((c, depth + 1) for c in reversed(children) if isinstance(c, Message))


def _broken_base64(part: Message) -> bool:
    try:
        if transfer_encoding(part) != "base64":
            return False
        payload = part.get_payload()
    except Exception:
        return False
    if not isinstance(payload, str):
        return False
    if _NOT_BASE64.search(payload):
        return True
    # Counted without copying: a part can be megabytes. One character past a multiple of four
    # cannot be base64, whatever the padding.
    spaces = sum(payload.count(c) for c in " \t\r\n")
    tail = payload[-200:].rstrip()
    padding = len(tail) - len(tail.rstrip("="))
    return (len(payload) - spaces - padding) % 4 == 1


def _name(part: Message, index: int) -> str:
    try:
        name = part.get_filename()
    except Exception:
        name = None
    return f'"{name}"' if isinstance(name, str) and name else f"part {index}"


def shape_notes(message: Message, limits: ShapeLimits = DEFAULT_LIMITS) -> tuple[str, ...]:
    """What the limits left unread, in words for the agents; () for an ordinary message."""
    notes: list[str] = []
    if any(isinstance(d, UnreadStructure) for d in message.defects):
        notes.append(
            "The MIME structure is nested too deep to be parsed: only the header and the body "
            "as plain text were read."
        )
    for cut in [d for d in message.defects if isinstance(d, PartsCut)][:1]:
        notes.append(
            f"The message has more than {cut.limit} MIME parts: only the first {cut.limit} "
            "were read."
        )
    too_deep = 0
    broken: list[str] = []
    for index, (part, depth) in enumerate(walk_parts(message)):
        if depth > limits.depth:
            too_deep += 1
        elif not part.is_multipart() and _broken_base64(part):
            broken.append(_name(part, index))
    if too_deep:
        notes.append(
            f"{too_deep} MIME part(s) nested more than {limits.depth} levels deep were not read."
        )
    if broken:
        shown = ", ".join(broken[:10])
        if len(broken) > 10:
            shown += f" and {len(broken) - 10} more"
        notes.append(
            f"Declared base64 but not valid base64: {shown}. What could be decoded was kept; "
            "ask the sender for the file again if it does not open."
        )
    return tuple(notes)
