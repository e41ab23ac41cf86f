"""Raw bytes to a `ParsedMessage`: what a person would read, decoded from any charset.

The standard library's parser does the MIME work in its lenient compat32 mode (it never raises on
broken structure, it records defects); every access that is known to raise on real mail (unknown
charsets, missing boundaries, headers that are not headers) is wrapped so that one bad part costs
that part, never the message. Undeclared 8-bit headers are read as UTF-8, then as windows-1254
(what Turkish Outlook writes), so a Turkish name or subject is never silently mangled.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from email import message_from_bytes
from email.header import Header, decode_header
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32

from domain.header_addresses import Address, find_sender, header_addresses
from domain.message import (
    DECORATION,
    ENCLOSED,
    FILE,
    FORWARDED,
    INLINE,
    AttachmentInfo,
    ParsedMessage,
)
from ingest.base64_runs import lift
from ingest.charsets import decode_bytes
from ingest.content_hash import content_hash
from ingest.delivery_status import recipient_statuses
from ingest.email_params import install as install_linear_params
from ingest.encoded_words import close_last_word, join_words, repair_base64
from ingest.filenames import safe_filename
from ingest.html_scan import LinearHTMLParser
from ingest.inline_images import (
    ImageUse,
    cid_images,
    is_decoration,
    is_image,
    normalise_cid,
    pixel_size,
)
from ingest.mime_shape import (
    DEFAULT_LIMITS,
    PartsCut,
    ShapeLimits,
    UnreadStructure,
    bound_fields,
    bound_parts,
    shape_notes,
    walk_parts,
)
from ingest.raw_header import header_end
from ingest.replies import latest_reply
from ingest.report_scan import all_failures, report_view
from ingest.status_part import bound_status
from ingest.tnef import TnefContents, looks_like_tnef
from ingest.tnef import unpack as unpack_tnef
from ingest.transfer_encoding import normalise as normalise_encodings

# flufl.bounce logs every detector it runs at INFO and re-raises a detector's error after logging
# its traceback; we catch that error ourselves (a message it cannot read is simply not a bounce it
# recognised), so its log would only be noise in the daemon's.
logging.getLogger("flufl.bounce").setLevel(logging.CRITICAL)

# Every message parsed in this process (and every module that reads one imports this one)
# splits header parameters in linear time: see ingest/email_params.py.
install_linear_params()


# One search in C instead of a Python test per character (every header of every part is read).
_SURROGATE = re.compile("[\udc80-\udcff]")


def _has_surrogates(text: str) -> bool:
    return _SURROGATE.search(text) is not None


def _undo_surrogates(text: str) -> str:
    # compat32 keeps undeclared 8-bit header bytes as surrogate escapes; read them again.
    if not _has_surrogates(text):
        return text
    return decode_bytes(text.encode("ascii", "surrogateescape"), None)


def decode_header_value(value: object) -> str:
    """A header as a person reads it: encoded words decoded, folding removed."""
    if value is None:
        return ""
    try:
        if isinstance(value, Header):
            # Its chunks keep the original bytes; str() would have replaced 8-bit ones by U+FFFD.
            text = ""
            parts = decode_header(value)
        else:
            text = _undo_surrogates(str(value))
            pieces = _pieces(close_last_word(text))
            parts = [p for piece in pieces for p in decode_header(repair_base64(piece))]
        parts = join_words(parts)
    except Exception:  # a malformed encoded word: show it as it came
        return _unfold(text or str(value))
    # Decode each chunk ourselves (unknown charsets fall back). decode_header drops the
    # whitespace between adjacent encoded words, as RFC 2047 says, but also the whitespace
    # between an encoded word and plain text (a folded "=?..?=\r\n talebim"): put one back
    # there, as email.header.make_header does.
    text_out = ""
    previous_encoded: bool | None = None
    for chunk, charset in parts:
        if isinstance(chunk, bytes) and charset is None:
            # The text between encoded words comes back in raw-unicode-escape, so that
            # non-ASCII text there (already read from 8-bit bytes) survives.
            piece = chunk.decode("raw-unicode-escape", "replace")
        elif isinstance(chunk, bytes):
            piece = decode_bytes(chunk, charset)
        else:
            piece = chunk
        encoded = charset is not None
        if (
            previous_encoded is not None
            and previous_encoded != encoded
            and piece
            and text_out
            and not piece[0].isspace()
            and not text_out[-1].isspace()
        ):
            text_out += " "
        text_out += piece
        previous_encoded = encoded
    return _unfold(text_out)


# The standard library's encoded-word pattern rescans the rest of the line from every "=?" that
# does not end: quadratic in a long header line. Encoded words are short and never hold
# whitespace (RFC 2047 2), so decoding pieces cut after whitespace gives the same words, each
# piece's cost bounded.
_DECODE_PIECE = 1024


def _pieces(text: str) -> Iterator[str]:
    if len(text) <= _DECODE_PIECE or "=?" not in text:
        yield text
        return
    start = 0
    while start < len(text):
        end = start + _DECODE_PIECE
        if end < len(text):
            # Cut after a whitespace character: decode_header drops a piece's leading spaces.
            space = max(text.rfind(" ", start, end), text.rfind("\t", start, end))
            end = space + 1 if space > start else end
        yield text[start:end]
        start = end


def _unfold(text: str) -> str:
    """Every run of whitespace that holds a line break becomes one space. Linear: the pattern
    `\\s*[\\r\\n]+\\s*` rescanned a long run of spaces from each of its characters."""
    lines = (line.strip() for line in _LINE_BREAKS.split(text))
    return " ".join(line for line in lines if line)


_LINE_BREAKS = re.compile(r"[\r\n]+")


# Control characters are never part of a Message-ID or an address; one that holds them is
# hostile or broken, and would be echoed into the headers of the mail we send.
_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")


def _msg_ids(value: str) -> tuple[str, ...]:
    ids = re.findall(r"<([^<>\s]+)>", value)
    if not ids and value.strip() and " " not in value.strip():
        ids = [value.strip().strip("<>")]
    return tuple(dict.fromkeys(i for i in ids if i and not _CONTROL.search(i)))


def _header_str(value: object) -> str:
    """A header value as text; compat32 hands out `Header` objects for some values."""
    if value is None:
        return ""
    if isinstance(value, Header):
        return decode_header_value(value)
    return _undo_surrogates(str(value))


def _repair_headers(part: Message) -> None:
    """Read undeclared 8-bit header bytes (UTF-8, else windows-1254) before anyone looks.

    compat32 keeps such bytes as surrogate escapes and hands the header out as a `Header` that
    prints them as U+FFFD, so a Turkish name, subject or attachment filename would be lost. Each
    header is stored again as the text it was meant to be, in its place.
    """
    try:
        items = list(part.raw_items())
    except Exception:
        return
    if not any(isinstance(v, str) and _has_surrogates(v) for _, v in items):
        return
    for name in {key.lower() for key, _ in items}:
        del part[name]
    for key, value in items:
        part[key] = _undo_surrogates(value) if isinstance(value, str) else value


def _addresses(message: Message, name: str) -> tuple[Address, ...]:
    try:
        values = [_header_str(v) for v in message.get_all(name) or []]
    except Exception:
        return ()
    return header_addresses(values, decode_header_value)


def _part_payload(part: Message) -> bytes:
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        payload = None
    if isinstance(payload, bytes):
        return payload
    try:
        raw = part.get_payload()
    except Exception:
        return b""
    return raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:
        name = None
    if name is None:
        return None
    decoded = decode_header_value(name)
    # Stored, shown and attached again later: never a path, a device or a hidden file.
    return safe_filename(decoded) if decoded else None


def _content_type(part: Message) -> str:
    try:
        return part.get_content_type()
    except Exception:
        return "application/octet-stream"


def _charset(part: Message) -> str | None:
    try:
        return part.get_content_charset()
    except Exception:
        return None


def _iter_parts(message: Message, limits: ShapeLimits) -> Iterator[Message]:
    """Every part, depth first like `Message.walk`, with limits: no more than `limits.parts`
    parts, none nested deeper than `limits.depth` (deeper than any mail client writes: the
    rest is not looked at)."""
    parts = walk_parts(message, max_depth=limits.depth)
    return (part for part, _ in itertools.islice(parts, limits.parts))


class _HtmlText(LinearHTMLParser):
    """HTML to plain text: enough to read a message that has no text part.

    Whitespace in the source collapses as a browser collapses it (a line break in the HTML
    source is a space; only block elements and <br> break lines); script, style, head, title
    and template are not text at all.
    """

    _BLOCK = frozenset(
        {
            "p",
            "div",
            "br",
            "li",
            "tr",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "blockquote",
            "hr",
            "table",
            "ul",
            "ol",
            "pre",
            "section",
            "article",
            "header",
            "footer",
            "address",
            "dt",
            "dd",
            "center",
            "form",
        }
    )
    _HIDDEN = frozenset({"script", "style", "head", "title", "template", "noscript"})

    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[str] = []
        self._skip = 0
        self._pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            self._skip = 0  # an unclosed <head> must not hide the whole message
        elif tag in self._HIDDEN:
            self._skip += 1
        elif tag in self._BLOCK:
            self.chunks.append("\n")
            if tag == "pre":
                self._pre += 1
        elif tag in ("td", "th"):
            self.chunks.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._BLOCK:
            self.chunks.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._HIDDEN:
            self._skip = max(0, self._skip - 1)
        elif tag in self._BLOCK:
            self.chunks.append("\n")
            if tag == "pre":
                self._pre = max(0, self._pre - 1)

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        self.chunks.append(data if self._pre else re.sub(r"\s+", " ", data))


def html_to_text(html: str) -> str:
    """What a person reads in an HTML body, as plain text."""
    parser = _HtmlText()
    try:
        parser.feed(html)
        parser.close()
    except Exception:
        return re.sub(r"<[^>]*>", " ", html)
    text = "".join(parser.chunks)
    text = re.sub(r"[ \t\xa0]+", " ", text)
    text = re.sub(r" *\n *", "\n", text)
    return re.sub(r"\n\s*\n\s*\n+", "\n\n", text).strip()


# A message attached to a message (a forward "as attachment", a bounce's returned original).
_FORWARD_TYPES = frozenset({"message/rfc822", "message/global"})


def _message_bytes(message: Message) -> bytes:
    """A forwarded message as an .eml file: its bytes as the parser holds them."""
    try:
        return message.as_bytes(policy=compat32)
    except Exception:  # a header the byte generator cannot write: the text form, then nothing
        try:
            return message.as_string(policy=compat32).encode("utf-8", "surrogateescape")
        except Exception:
            return b""


def _forwarded(part: Message, children: object) -> AttachmentInfo:
    """A forwarded message kept whole, named as sent, else by its subject."""
    first = children[0] if isinstance(children, list) and children else None
    inner = first if isinstance(first, Message) else None
    # A message/rfc822 part the parser could not read as a message: its bytes as they came.
    payload = _message_bytes(inner) if inner is not None else _part_payload(part)
    name = _filename(part)
    if name is None and inner is not None:
        subject = decode_header_value(inner.get("Subject"))[:100]
        name = safe_filename(f"{subject}.eml", "forwarded-message.eml") if subject else None
    return AttachmentInfo(
        name or "forwarded-message.eml", "message/rfc822", len(payload), payload, FORWARDED
    )


def _tnef_attachments(contents: TnefContents, enclosed: bool) -> Iterator[AttachmentInfo]:
    """The files of a winmail.dat as attachments; `enclosed` when it lies in a forward."""
    uses = cid_images(contents.html) if contents.html else {}
    for found in contents.files:
        inside = enclosed or found.depth > 0
        if found.embedded_message:
            if not inside:  # an inner one is already part of the outer one's bytes
                yield AttachmentInfo(
                    found.filename, found.content_type, len(found.payload), found.payload, FORWARDED
                )
            continue
        role = ENCLOSED if inside else FILE
        if found.inline:
            image_uses = uses.get(normalise_cid(found.content_id or ""), [])
            if is_decoration(pixel_size(found.payload), image_uses):
                role = DECORATION
            elif not inside:
                role = INLINE
        yield AttachmentInfo(
            found.filename, found.content_type, len(found.payload), found.payload, role
        )


@dataclass
class _BodyWalk:
    """What `_walk_body` has found so far. A part's scope is the forwarded message it lies in
    (the id of that message/rfc822 part), 0 for the message itself."""

    plain: list[str] = field(default_factory=list)
    html_of: dict[int, list[str]] = field(default_factory=lambda: {0: []})  # by scope
    attachments: list[AttachmentInfo] = field(default_factory=list)
    scope_of: dict[int, int] = field(default_factory=dict)  # by id of the part
    # (index in attachments, Content-ID, disposition, scope) of every image that may be inline.
    candidates: list[tuple[int, str, str, int]] = field(default_factory=list)
    tnef_texts: list[tuple[str, str]] = field(default_factory=list)  # (text, HTML) of each
    # The bodies decoded beside the parser, by id of their part (ingest/base64_runs.py).
    decoded: dict[int, bytes] = field(default_factory=dict)


def _read_part(walk: _BodyWalk, part: Message, top: bool) -> None:
    """One part of the walk: a forward kept whole, a container's children scoped, or a leaf."""
    scope = walk.scope_of.get(id(part), 0)
    try:
        content_type = _content_type(part)
        children = part.get_payload() if part.is_multipart() else None
    except Exception:  # one unreadable part costs that part, never the message
        return
    forwarded = content_type in _FORWARD_TYPES and not top
    if isinstance(children, list):
        inner = id(part) if forwarded else scope
        walk.scope_of.update((id(child), inner) for child in children)
    if forwarded:
        if not scope:
            walk.attachments.append(_forwarded(part, children))
        return
    if children is None:
        _read_leaf(walk, part, content_type, scope, top)


def _read_leaf(walk: _BodyWalk, part: Message, content_type: str, scope: int, top: bool) -> None:
    """A part without children: body text, the files of a winmail.dat, or an attachment."""
    try:
        disposition = _header_str(part.get("Content-Disposition")).split(";")[0]
        disposition = disposition.strip().lower()
        filename = _filename(part)
        payload = walk.decoded[id(part)] if id(part) in walk.decoded else _part_payload(part)
        content_id = _header_str(part.get("Content-ID"))
    except Exception:
        return
    if content_type.startswith("multipart/"):
        # A multipart whose boundary is missing or wrong: compat32 leaves its body as one
        # string. Show it as text rather than losing what the person wrote.
        content_type = "text/plain"
    is_body_text = content_type in ("text/plain", "text/html") and filename is None
    if is_body_text and disposition != "attachment":
        text = decode_bytes(payload, _charset(part))
        if content_type == "text/html":
            walk.html_of.setdefault(scope, []).append(text)
        elif not scope:
            walk.plain.append(text)
        return
    if content_type.startswith("message/") and not top:
        return
    if looks_like_tnef(content_type, filename, payload):
        contents = unpack_tnef(payload)
        if contents is not None:
            walk.attachments += _tnef_attachments(contents, enclosed=bool(scope))
            if not scope:
                walk.tnef_texts.append((contents.text, contents.html))
            return
    if disposition == "inline" or content_id.strip():
        walk.candidates.append((len(walk.attachments), content_id, disposition, scope))
    walk.attachments.append(
        AttachmentInfo(
            filename=filename or f"part-{len(walk.attachments) + 1}",
            content_type=content_type,
            size=len(payload),
            payload=payload,
            role=ENCLOSED if scope else FILE,
        )
    )


def _judge_images(walk: _BodyWalk) -> None:
    """Each image that may be inline, once all the HTML of its message is known: INLINE content
    or a DECORATION; one attached on purpose and not shown stays a file."""
    uses_of: dict[int, dict[str, list[ImageUse]]] = {}
    for index, content_id, disposition, scope in walk.candidates:
        if scope not in uses_of:
            uses_of[scope] = cid_images("\n".join(walk.html_of.get(scope, [])))
        uses = uses_of[scope].get(normalise_cid(content_id), []) if content_id.strip() else []
        if disposition == "attachment" and not uses:
            continue  # attached on purpose, and not shown in the body
        attachment = walk.attachments[index]
        size = pixel_size(attachment.payload)  # the header read once, for both questions
        if not is_image(attachment.content_type, size):
            continue  # a PDF or a document with a Content-ID: an ordinary file
        if is_decoration(size, uses):
            walk.attachments[index] = replace(attachment, role=DECORATION)
        elif not scope:
            walk.attachments[index] = replace(attachment, role=INLINE)


def _walk_body(
    message: Message, limits: ShapeLimits, decoded: dict[int, bytes]
) -> tuple[str, str, list[AttachmentInfo]]:
    """The sender's own text (plain and HTML) and every attachment, each with its role.

    - A forwarded message (message/rfc822 below the top) is not what the sender wrote: its text
      is not read; it is kept whole as an .eml attachment (FORWARDED) and the files inside it,
      as deep as `_iter_parts` goes, are found too (ENCLOSED).
    - A winmail.dat is replaced by the files it holds (ingest/tnef.py); one that cannot be read
      stays one attachment. Its body is the message's text only when the MIME has none.
    - An image shown in the body (inline, or a Content-ID the HTML shows) is INLINE content or a
      DECORATION such as a signature logo (ingest/inline_images.py), judged once all the HTML
      of its message is known.
    """
    walk = _BodyWalk(decoded=decoded)
    for part in _iter_parts(message, limits):
        _read_part(walk, part, top=part is message)
    _judge_images(walk)
    plain, html = walk.plain, walk.html_of[0]
    if not any(p.strip() for p in plain) and not any(h.strip() for h in html):
        plain += [text for text, _ in walk.tnef_texts]
        html += [body for _, body in walk.tnef_texts]
    full_plain = "\n".join(p.strip("\n") for p in plain if p.strip())
    full_html = "\n".join(html)
    return full_plain, full_html, walk.attachments


# Signs that a message was written by a machine: only such mail is scanned for a delivery
# report in its body (a person's reply that quotes one must not become a bounce).
_SYSTEM_LOCALPARTS = re.compile(
    r"^(mailer-daemon|mailerdaemon|mail-daemon|mdaemon|post[-_]?master|mail\.?delivery|"
    r"mail-?delivery-?(system|subsystem)|ndr|bounces?|bounce[-+.].*|.*[-+]bounces?|"
    r"\"?system administrator\"?|smtp[-_.]?gateway|.*antivirus.*|mailscanner|mailsweeper)$",
    re.IGNORECASE,
)
_REPORT_SUBJECT = re.compile(
    r"(undeliver|non[- ]?deliver|not (been |be )?deliver|deliver(y|ed)?\b.{0,30}"
    r"(fail|problem|status|notification|error|report|warning|delay)|failed (mail|delivery)|"
    r"returned mail|returning message|mail (delivery )?(failed|failure|error)|failure notice|"
    r"delayed mail|delivery (failure|status)|non remis|unzustellbar|"
    r"user unknown|could not be delivered|warning: message|не доставлено|"
    r"iletilemedi|teslim edilemedi)",
    re.IGNORECASE,
)


def is_system_address(address: str) -> bool:
    """A mail system's own address (MAILER-DAEMON, postmaster, ...), not a person's."""
    return bool(_SYSTEM_LOCALPARTS.match(address.rpartition("@")[0] or address))


def looks_automatic(message: ParsedMessage) -> bool:
    """Any sign that a machine wrote this: the gate for reading a delivery report in the body."""
    if message.null_sender:
        return True
    return_path = message.header("return-path")
    if return_path is not None and is_system_address(return_path.strip().strip("<>").strip()):
        return True
    if not message.sender.email or is_system_address(message.sender.email):
        return True
    if message.header("auto-submitted") not in (None, "no") or message.content_type.startswith(
        "multipart/report"
    ):
        return True
    if (message.header("precedence") or "").strip().lower() in ("bulk", "junk", "auto_reply"):
        return True
    return bool(_REPORT_SUBJECT.search(message.subject))


# An SMTP reply a mail system quotes in its report ("550 - Requested action not taken", "550
# 5.1.1 ..."), at the start of a line: the sign of a report in prose.
_SMTP_REPLY_LINE = re.compile(r"(?m)^[ \t]*[45][0-9][0-9](?:[ -]|$)")
REPORT_SCAN = 64 * 1024


def looks_like_report(message: ParsedMessage) -> bool:
    """A delivery report's subject, a returned message attached, its headers quoted, or an
    SMTP error reply quoted. Asked only of mail from system and no-reply addresses."""
    if _REPORT_SUBJECT.search(message.subject) or message.embedded_message_ids:
        return True
    if _SMTP_REPLY_LINE.search(message.full_text[:REPORT_SCAN]):
        return True
    return any(
        a.role == FORWARDED or a.content_type == "text/rfc822-headers" for a in message.attachments
    )


# Where Message-IDs quoted in a report's text are looked for (a linear scan, line by line): a
# prose report quotes the returned header near its start. A returned message in its own part is
# found by the MIME structure wherever it lies (`_returned_ids`).
BOUNCE_SCAN_LIMIT = 512 * 1024


def _delivery_failures(raw: bytes | bytearray) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(failed, delayed) recipients in a delivery report, as flufl.bounce's detectors read
    them from a bounded view of it (ingest/report_scan.py)."""
    try:
        temporary, permanent = all_failures(report_view(raw))
    except Exception:  # a detector that cannot read this message: it found no report
        return (), ()

    def text(found: frozenset[bytes]) -> tuple[str, ...]:
        return tuple(sorted({decode_bytes(address, None) for address in found}))

    return text(permanent), text(temporary)


_EMBEDDED_ID = re.compile(rb"(?im)^[ \t>]*(?:message-id|in-reply-to|references):[ \t]*(.{0,2000})$")


def _quoted_ids(text: bytes | bytearray) -> Iterator[str]:
    for line in _EMBEDDED_ID.findall(text):
        yield from _msg_ids(line.decode("ascii", "replace"))


# The parts a report returns the original in (RFC 6522 3: the whole message, or its header);
# the header is its first kilobytes, however large the message.
_RETURNED_HEADERS = frozenset(
    {"text/rfc822-headers", "message/rfc822-headers", "message/global-headers"}
)
_RETURNED_HEADER_SCAN = 64 * 1024
_ID_FIELDS = ("message-id", "in-reply-to", "references")


def _returned_ids(
    message: Message, limits: ShapeLimits, decoded: dict[int, bytes]
) -> Iterator[str]:
    """The Message-IDs in the header of every message the report returns in a part of its
    own: a bounce of a large mail puts it megabytes in (after a long transcript, before a 2 MB
    attachment), past any byte offset a scan could stop at. The parts are the ones parse_message
    walked, so the cost is theirs."""
    for part in _iter_parts(message, limits):
        try:
            content_type = _content_type(part)
            if content_type in _FORWARD_TYPES and part is not message:
                children = part.get_payload()
                inner = children[0] if isinstance(children, list) and children else None
                if isinstance(inner, Message):
                    for name in _ID_FIELDS:
                        for value in inner.get_all(name) or []:
                            yield from _msg_ids(_header_str(value)[:2000])
            elif content_type in _RETURNED_HEADERS:
                payload = decoded.get(id(part)) or _part_payload(part)
                yield from _quoted_ids(payload[:_RETURNED_HEADER_SCAN])
        except Exception:  # one unreadable part costs that part
            continue


def _embedded_message_ids(
    raw: bytes | bytearray, message: Message, limits: ShapeLimits, decoded: dict[int, bytes]
) -> tuple[str, ...]:
    """Message-IDs of the messages a report is about: in header lines quoted in its first
    BOUNCE_SCAN_LIMIT bytes below the top-level header, then in the returned parts."""
    body = raw[header_end(raw) : BOUNCE_SCAN_LIMIT]
    found = itertools.chain(_quoted_ids(body), _returned_ids(message, limits, decoded))
    return tuple(dict.fromkeys(found))


def _parse_bytes(raw: bytes | bytearray) -> Message:
    try:
        return message_from_bytes(raw, policy=compat32)
    except Exception:  # nesting so deep the parser recursed out: keep the headers and the text
        message = BytesParser(policy=compat32).parsebytes(raw, headersonly=True)
        message.set_type("text/plain")
        message.defects.append(UnreadStructure())
        return message


def _parse_lifted(raw: bytes | bytearray) -> tuple[Message, dict[int, bytes]] | None:
    """The message parsed with its long base64 runs decoded beside the parser, or None when
    a run's marker lands where it would change what is read."""
    lifted = lift(raw)
    message = _parse_bytes(lifted.text)
    decoded = lifted.placed(part for part, _ in walk_parts(message))
    return None if decoded is None else (message, decoded)


class _ForwardParser:
    """Parses the forwards `normalise_encodings` decodes: their parts count against the
    message's own limit, which `bound_parts` could not see inside the encoded text (500
    forwards of 5,000 empty parts each would otherwise be parsed whole)."""

    def __init__(self, limits: ShapeLimits, used: int) -> None:
        self.limits = limits
        self.remaining = limits.parts - used
        self.cut = False

    def __call__(self, raw: bytes) -> Message | None:
        if self.remaining <= 0:
            self.cut = True
            return None
        bounded, cut = bound_parts(raw, self.remaining)
        message = _parse_bytes(bounded)
        self.cut = self.cut or cut
        self.remaining -= sum(1 for _ in walk_parts(message, max_depth=self.limits.depth))
        return message


def decode_encodings(message: Message, limits: ShapeLimits = DEFAULT_LIMITS) -> None:
    """Every part's transfer encoding made its token, and every forward sent base64 or
    quoted-printable decoded into the message it holds, within `limits`; a limit that left a
    forward unread is a PartsCut of the message, as for its own parts."""
    parse = _ForwardParser(limits, sum(1 for _ in _iter_parts(message, limits)))
    normalise_encodings(_iter_parts(message, limits), parse)
    if parse.cut and not any(isinstance(d, PartsCut) for d in message.defects):
        message.defects.append(PartsCut(limits.parts))


def _parse_structure(
    raw: bytes | bytearray, limits: ShapeLimits
) -> tuple[Message, dict[int, bytes]]:
    """The parsed message, and the bodies of its long base64 runs decoded beside the parser
    by id of their part (ingest/base64_runs.py: a large message, parsed whole, cost the
    parsing process many times its size)."""
    if raw.startswith(b"\xef\xbb\xbf"):  # a byte order mark some Windows tools write first
        raw = raw[3:]
    raw, cut = bound_parts(raw, limits.parts)  # never more parts than the limit reach the parser
    # Nor a delivery-status part past its bound: its parser makes a Message of every blank line.
    raw = bound_status(raw)
    lifted = _parse_lifted(raw)
    # A marker where the shortcut would change what is read: parsed as it came (the runs'
    # decoded bytes are gone by then).
    message, decoded = lifted if lifted is not None else (_parse_bytes(raw), {})
    if cut:
        message.defects.append(PartsCut(limits.parts))
    # Before anything decodes a payload: `base64 ` must read as base64, a forward sent base64
    # as the message it is (ingest/transfer_encoding.py).
    decode_encodings(message, limits)
    for part in _iter_parts(message, limits):
        _repair_headers(part)
    return message, decoded


def envelope_address_text(path: str) -> str:
    """An envelope sender as the journal holds it ("<>" or "" for the null sender)."""
    return path.strip().strip("<>").strip().lower()


def parse_message(
    raw: bytes | bytearray, limits: ShapeLimits = DEFAULT_LIMITS, envelope_from: str | None = None
) -> ParsedMessage:
    """Parse a raw message; works for any bytes, however broken. `limits` bound how many MIME
    parts are read and how deep ([limits] max_mime_parts, max_mime_depth); `envelope_from` is
    the envelope sender the source gave, if any (the last place the sender is looked for)."""
    message, decoded = _parse_structure(raw, limits)
    headers: list[tuple[str, str]] = []
    for key, value in message.raw_items():
        headers.append((str(key).lower(), decode_header_value(value)))

    def first(name: str) -> str:
        for key, value in headers:
            if key == name:
                return value
        return ""

    ids = _msg_ids(first("message-id"))
    reply_to = _addresses(message, "Reply-To")
    sender = find_sender(
        _addresses(message, "From"),
        _addresses(message, "Sender"),
        reply_to,
        envelope_from,
        first("return-path"),
    )
    plain, html, attachments = _walk_body(message, limits, decoded)
    full_text = plain if plain.strip() else html_to_text(html)
    full_text = full_text.replace("\r\n", "\n").replace("\r", "\n")
    parsed = ParsedMessage(
        message_id=ids[0] if ids else None,
        in_reply_to=_msg_ids(first("in-reply-to")),
        references=_msg_ids(first("references")),
        sender=sender,
        to=_addresses(message, "To"),
        cc=_addresses(message, "Cc"),
        reply_to=reply_to,
        subject=first("subject"),
        text=latest_reply(full_text),
        full_text=full_text,
        attachments=tuple(attachments),
        headers=tuple(headers),
        content_type=_content_type(message),
        content_hash=content_hash(raw),
        envelope_sender=None if envelope_from is None else envelope_address_text(envelope_from),
    )
    parsed = bound_fields(replace(parsed, shape_notes=shape_notes(message, limits)))
    if looks_automatic(parsed):
        failed, delayed = _delivery_failures(raw)
        if failed or delayed:
            parsed = replace(parsed, failed_recipients=failed, delayed_recipients=delayed)
        statuses = recipient_statuses(message)
        if statuses:
            parsed = replace(parsed, delivery_status=statuses)
        embedded = _embedded_message_ids(raw, message, limits, decoded)
        parsed = replace(parsed, embedded_message_ids=embedded)
    return parsed
