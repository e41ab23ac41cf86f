"""Raw bytes to a `ParsedMessage`: what a person would read, decoded from any charset.

The standard library's parser does the MIME work in its lenient compat32 mode (it never raises on
broken structure, it records defects); every access that is known to raise on real mail (unknown
charsets, missing boundaries, headers that are not headers) is wrapped so that one bad part costs
that part, never the message. Undeclared 8-bit headers are read as UTF-8, then as windows-1254
(what Turkish Outlook writes), so a Turkish name or subject is never silently mangled.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from email import message_from_bytes
from email.header import decode_header, make_header
from email.message import Message
from email.policy import compat32
from email.utils import getaddresses, parseaddr
from html.parser import HTMLParser

from ingest.replies import latest_reply

# Charsets mail claims that Python does not know, mapped to what the sender meant.
_CHARSET_ALIASES = {
    "x-unknown": "windows-1254",
    "unknown-8bit": "windows-1254",
    "iso-8859-8-i": "iso-8859-8",
    "ks_c_5601-1987": "cp949",
    "x-user-defined": "windows-1252",
    "cp-850": "cp850",
    "utf8": "utf-8",
    "x-mac-turkish": "mac_turkish",
}
_FALLBACK_CHARSETS = ("utf-8", "windows-1254")


@dataclass(frozen=True)
class Address:
    email: str  # lowercase, "" when the header held no usable address
    name: str


@dataclass(frozen=True)
class AttachmentInfo:
    filename: str
    content_type: str
    size: int


@dataclass(frozen=True)
class ParsedMessage:
    message_id: str | None
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    sender: Address
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    reply_to: tuple[Address, ...]
    subject: str
    text: str  # the new text, quoted history removed
    full_text: str
    attachments: tuple[AttachmentInfo, ...]
    headers: tuple[tuple[str, str], ...]  # every header, decoded, lowercase names
    content_type: str
    sha256: str

    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return None

    @property
    def dedupe_key(self) -> str:
        """What makes two copies the same message: its Message-ID, else its bytes."""
        return f"mid:{self.message_id}" if self.message_id else f"sha256:{self.sha256}"


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Bytes in a declared (possibly wrong or unknown) charset to text, never raising."""
    candidates: list[str] = []
    if charset:
        name = charset.strip().strip('"').lower()
        candidates.append(_CHARSET_ALIASES.get(name, name))
    candidates += [c for c in _FALLBACK_CHARSETS if c not in candidates]
    for candidate in candidates:
        try:
            return data.decode(candidate)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("latin-1")


def _undo_surrogates(text: str) -> str:
    # compat32 keeps undeclared 8-bit header bytes as surrogate escapes; read them again.
    if not any("\udc80" <= ch <= "\udcff" for ch in text):
        return text
    return decode_bytes(text.encode("ascii", "surrogateescape"), None)


def decode_header_value(value: object) -> str:
    """A header as a person reads it: encoded words decoded, folding removed."""
    if value is None:
        return ""
    text = _undo_surrogates(str(value))
    try:
        parts = decode_header(text)
    except Exception:  # a malformed encoded word: show it as it came
        return _unfold(text)
    # Decode each chunk ourselves (unknown charsets fall back), then let make_header put
    # the spaces back between encoded and plain chunks as RFC 2047 says.
    chunks: list[tuple[bytes | str, str | None]] = []
    for chunk, charset in parts:
        if isinstance(chunk, bytes):
            chunks.append((decode_bytes(chunk, charset), "utf-8" if charset else None))
        else:
            chunks.append((chunk, None))
    try:
        return _unfold(str(make_header(chunks)))
    except Exception:
        return _unfold("".join(str(c) for c, _ in chunks))


def _unfold(text: str) -> str:
    return re.sub(r"\s*[\r\n]+\s*", " ", text).strip()


def _msg_ids(value: str) -> tuple[str, ...]:
    ids = re.findall(r"<([^<>\s]+)>", value)
    if not ids and value.strip() and " " not in value.strip():
        ids = [value.strip().strip("<>")]
    return tuple(dict.fromkeys(ids))


def _addresses(message: Message, name: str) -> tuple[Address, ...]:
    try:
        raw_values = message.get_all(name) or []
    except Exception:
        return ()
    values = [_undo_surrogates(str(v)) for v in raw_values]
    result: list[Address] = []
    try:
        pairs = getaddresses(values)
    except Exception:
        pairs = [parseaddr(v) for v in values]
    for display, addr in pairs:
        addr = addr.strip().lower()
        if "@" not in addr:
            continue
        result.append(Address(email=addr, name=decode_header_value(display)))
    return tuple(result)


def _part_payload(part: Message) -> bytes:
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        payload = None
    if isinstance(payload, bytes):
        return payload
    raw = part.get_payload()
    return raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:
        name = None
    if name is None:
        return None
    return decode_header_value(name) or None


class _HtmlText(HTMLParser):
    """HTML to plain text: enough to read a message that has no text part."""

    _BLOCK = frozenset({"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "blockquote"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "head"):
            self._skip += 1
        elif tag in self._BLOCK:
            self.chunks.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "head") and self._skip:
            self._skip -= 1
        elif tag in self._BLOCK:
            self.chunks.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.chunks.append(data)


def html_to_text(html: str) -> str:
    parser = _HtmlText()
    try:
        parser.feed(html)
        parser.close()
    except Exception:
        return re.sub(r"<[^>]*>", " ", html)
    text = "".join(parser.chunks)
    text = re.sub(r"[ \t\xa0]+", " ", text)
    return re.sub(r"\n\s*\n\s*\n+", "\n\n", text).strip()


def _walk_body(message: Message) -> tuple[str, str, list[AttachmentInfo]]:
    plain: list[str] = []
    html: list[str] = []
    attachments: list[AttachmentInfo] = []
    for part in message.walk():
        if part.is_multipart():
            continue
        content_type = part.get_content_type()
        disposition = (part.get("Content-Disposition") or "").split(";")[0].strip().lower()
        filename = _filename(part)
        payload = _part_payload(part)
        is_body_text = content_type in ("text/plain", "text/html") and filename is None
        if is_body_text and disposition != "attachment":
            charset = part.get_content_charset()
            text = decode_bytes(payload, charset)
            (plain if content_type == "text/plain" else html).append(text)
            continue
        if content_type.startswith("message/") and part is not message:
            continue
        attachments.append(
            AttachmentInfo(
                filename=filename or f"part-{len(attachments) + 1}",
                content_type=content_type,
                size=len(payload),
            )
        )
    full_plain = "\n".join(p.strip("\n") for p in plain if p.strip())
    full_html = "\n".join(html)
    return full_plain, full_html, attachments


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse a raw message; works for any bytes, however broken."""
    message = message_from_bytes(raw, policy=compat32)
    headers: list[tuple[str, str]] = []
    for key, value in message.items():
        headers.append((key.lower(), decode_header_value(value)))

    def first(name: str) -> str:
        for key, value in headers:
            if key == name:
                return value
        return ""

    ids = _msg_ids(first("message-id"))
    senders = _addresses(message, "From") or _addresses(message, "Sender")
    sender = senders[0] if senders else Address(email="", name="")
    plain, html, attachments = _walk_body(message)
    full_text = plain if plain.strip() else html_to_text(html)
    full_text = full_text.replace("\r\n", "\n").replace("\r", "\n")
    return ParsedMessage(
        message_id=ids[0] if ids else None,
        in_reply_to=_msg_ids(first("in-reply-to")),
        references=_msg_ids(first("references")),
        sender=sender,
        to=_addresses(message, "To"),
        cc=_addresses(message, "Cc"),
        reply_to=_addresses(message, "Reply-To"),
        subject=first("subject"),
        text=latest_reply(full_text),
        full_text=full_text,
        attachments=tuple(attachments),
        headers=tuple(headers),
        content_type=message.get_content_type(),
        sha256=hashlib.sha256(raw).hexdigest(),
    )
