"""The per-recipient blocks of a delivery report (RFC 3464 2.3), read from the parsed message.

flufl.bounce's detectors (ingest/report_scan.py) say which addresses failed or are delayed,
nothing more; what the report says of each (the address the mail was sent to when the
reporting system kept it, the status code, the remote server's words) is read here, so the
bounce is tied to the recipient of our mail it names and the note on the ticket says exactly
what the report said (ingest/bounces.py).

Only the report's own delivery-status parts are read, never those of a message it returns (a
report returned inside a report is about another mail). The parts were bounded before parsing
(ingest/status_part.py); the blocks kept and the length of each value are bounded again here.
"""

from __future__ import annotations

import re
from email.header import decode_header, make_header
from email.message import Message
from email.parser import HeaderParser
from email.policy import compat32
from email.utils import parseaddr

from domain.message import RecipientStatus
from ingest.mime_shape import MAX_PARTS, walk_parts

MAX_BLOCKS = 200
MAX_VALUE = 300
_STATUS_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
_RETURNED_TYPES = frozenset({"message/rfc822", "message/global"})
_SPACES = re.compile(r"\s+")
_BLANK_LINES = re.compile(r"\r?\n[ \t]*\r?\n")


def _value(block: Message, name: str) -> str:
    raw = block.get(name)
    if raw is None:
        return ""
    try:
        text = str(make_header(decode_header(str(raw))))
    except Exception:  # an undecodable value is kept as it came
        text = str(raw)
    return _SPACES.sub(" ", text).strip()[:MAX_VALUE]


def _address(value: str) -> str:
    """`rfc822; b@x.example` (or `utf-8; ...`, or an angle-addr without its type) as an address."""
    _kind, semicolon, rest = value.partition(";")
    found = parseaddr((rest if semicolon else value).strip())[1]
    return found if "@" in found else ""


def _text_blocks(text: str) -> list[Message]:
    parser = HeaderParser(policy=compat32)
    return [parser.parsestr(chunk) for chunk in _BLANK_LINES.split(text) if chunk.strip()]


def _blocks(part: Message) -> list[Message]:
    """The header blocks of a delivery-status part: the parser makes each a Message for
    message/delivery-status; a global one, or a part built as text, is read from its text."""
    payload = part.get_payload()
    if isinstance(payload, str):
        return _text_blocks(payload)
    blocks: list[Message] = []
    for block in payload if isinstance(payload, list) else []:
        if isinstance(block, Message):
            blocks.append(block)
            rest = block.get_payload()
            if isinstance(rest, str) and rest.strip():
                blocks.extend(_text_blocks(rest))
    return blocks


def _own_status_parts(message: Message) -> list[Message]:
    """The delivery-status parts of the report itself, not inside a message it returns."""
    returned: set[int] = set()
    found: list[Message] = []
    for index, (part, _depth) in enumerate(walk_parts(message)):
        if index >= MAX_PARTS:
            break
        children = part.get_payload() if part.is_multipart() else None
        inside = id(part) in returned or (
            part is not message and part.get_content_type() in _RETURNED_TYPES
        )
        if inside and isinstance(children, list):
            returned.update(id(child) for child in children)
        if id(part) not in returned and part.get_content_type() in _STATUS_TYPES:
            found.append(part)
    return found


def recipient_statuses(message: Message) -> tuple[RecipientStatus, ...]:
    """Every per-recipient block (one with a Final-Recipient) of the report's delivery-status
    parts, in order, at most MAX_BLOCKS of them."""
    found: list[RecipientStatus] = []
    try:
        for part in _own_status_parts(message):
            for block in _blocks(part):
                final = _address(_value(block, "final-recipient"))
                if not final:
                    continue  # the per-message block (Reporting-MTA), or an unreadable one
                found.append(
                    RecipientStatus(
                        final_recipient=final,
                        original_recipient=_address(_value(block, "original-recipient")),
                        action=_value(block, "action").lower(),
                        status=_value(block, "status"),
                        diagnostic=_value(block, "diagnostic-code"),
                    )
                )
                if len(found) >= MAX_BLOCKS:
                    return tuple(found)
    except Exception:  # a report the parser left unreadable: the detectors' addresses stand
        return tuple(found)
    return tuple(found)
