"""Outlook's winmail.dat (TNEF) opened into the files it holds, so they reach the ticket like any.

Outlook sends rich-text mail as one `application/ms-tnef` part named winmail.dat; the customer's
photos and PDFs are inside it, invisible to any other mail client. `tnefparse` (PyPI) reads the
TNEF framing, the codepage and the body; this module turns its result into plain files:

- The name: the long filename (MAPI), else the short one, else the attachment title, else the
  display name. 8-bit names are in the TNEF's own codepage (attOemCodepage, e.g. cp1254 from a
  Turkish Outlook); they are read in that codepage with ticketd's fallbacks (`decode_bytes`), never
  as UTF-8 as tnefparse's `name` does, and an undecodable name never loses the file.
- The bytes: exact. tnefparse strips trailing NUL bytes from MAPI binary values (its way of
  removing the padding to 4 bytes), which cuts real data, e.g. the zero-filled last sector of a
  Word file; the exact length is read back from the value's length field.
- An embedded message (an email attached inside Outlook) is kept whole, as the TNEF bytes
  Outlook sent, and the files inside it are found too (`depth` > 0), to `_MAX_EMBED_DEPTH`.
- The message body (plain, else HTML) is returned for a message whose MIME carries no text of
  its own; a body that exists only as compressed RTF is not read.

Bad input costs the winmail.dat its unpacking, never the message: `unpack` answers None for
anything it cannot read completely, a TNEF cut short or with garbage in its framing included (the
caller keeps the winmail.dat as one attachment). tnefparse
copies the rest of the data for every TNEF object it reads, so the framing is walked first and a
TNEF whose unpacking would copy more than `_MAX_COPY` bytes, or that holds more than
`_MAX_OBJECTS` objects or `_MAX_EMBEDDED` embedded messages, is not unpacked.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tnefparse import properties as mapi_names
from tnefparse.mapi import IMESSAGE_SIG, decode_mapi
from tnefparse.tnef import TNEF

from ingest.charsets import decode_bytes
from ingest.filenames import safe_filename

# tnefparse logs each property list it cannot fully decode at ERROR and each bad checksum at
# WARNING; a TNEF we cannot read is handled here (kept whole), so its log is only noise.
logging.getLogger("tnefparse").setLevel(logging.CRITICAL)

SIGNATURE = b"\x78\x9f\x3e\x22"
TNEF_TYPES = frozenset({"application/ms-tnef", "application/vnd.ms-tnef"})
TNEF_NAMES = frozenset({"winmail.dat", "win.dat"})

_MAX_OBJECTS = 4096
_MAX_EMBEDDED = 16
_MAX_EMBED_DEPTH = 8
_MAX_COPY = 4 * 1024 * 1024 * 1024

# TNEF attribute ids (MS-OXTNEF 2.1.3.3) and levels.
_LEVEL_ATTACHMENT = 0x02
_LEVELS = frozenset({0x01, _LEVEL_ATTACHMENT})
_ATT_ATTACH_REND_DATA = 0x9002
_ATT_ATTACH_TITLE = 0x8010
_ATT_ATTACH_DATA = 0x800F
_ATT_ATTACHMENT = 0x9005
_PT_STRING8 = 0x001E
_ATTACH_EMBEDDED_MSG = 5
_ATT_MHTML_REF = 0x4  # PidTagAttachFlags: the attachment is referenced from the HTML body


@dataclass(frozen=True)
class TnefFile:
    filename: str  # already safe (ingest.filenames.safe_filename)
    payload: bytes
    content_type: str  # what Outlook declared (PidTagAttachMimeTag), else octet-stream
    content_id: str | None  # how the TNEF's HTML body refers to it (cid:), if it does
    inline: bool  # shown in the body (a Content-ID or Outlook's "referenced from HTML" flag)
    embedded_message: bool  # an email attached inside Outlook, kept as its TNEF bytes
    depth: int  # 0: an attachment of the winmail.dat; 1 and more: inside an embedded message


@dataclass(frozen=True)
class TnefContents:
    files: tuple[TnefFile, ...]
    text: str  # the plain body, "" when there is none
    html: str  # the HTML body, "" when there is none


def looks_like_tnef(content_type: str, filename: str | None, payload: bytes) -> bool:
    """A part that declares itself TNEF (type or Outlook's file name) and starts like one."""
    declared = content_type in TNEF_TYPES or (filename or "").lower() in TNEF_NAMES
    return declared and payload.startswith(SIGNATURE)


def _uint32(data: bytes, offset: int) -> int:
    value: int = struct.unpack_from("<I", data, offset)[0]
    return value


def _framing(data: bytes) -> tuple[int, int, bool]:
    """(objects, bytes tnefparse will copy, whether it is whole) for the top-level framing,
    walked as tnefparse walks it.

    Whole means: at least one TNEF attribute, and none whose data runs past the end (tnefparse
    quietly cuts such an object, which would hand out a cut-off file as if it were whole; only the
    2-byte checksum may be missing, as in tnefparse's bad_checksum example). Objects of no TNEF
    level are skipped, as tnefparse skips them: real winmail.dat files carry trailing junk.
    """
    size, offset, objects, copied = len(data), 6, 0, 0
    attributes, cut = 0, False
    while offset + 12 < size:
        remaining = size - offset
        declared = _uint32(data, offset + 5) + 11
        objects += 1
        copied += remaining
        if data[offset] in _LEVELS:
            attributes += 1
            cut = cut or declared - 2 > remaining
        offset += min(remaining, declared)
    return objects, copied, attributes > 0 and not cut


def _within_limits(data: bytes) -> bool:
    """Whole, and cheap enough to unpack (see the module docstring)."""
    if data.count(IMESSAGE_SIG) > _MAX_EMBEDDED:
        return False
    objects, copied, whole = _framing(data)
    # An embedded message is parsed again from where it starts; counting its framing to the end
    # of the whole TNEF bounds its cost from above.
    start = data.find(IMESSAGE_SIG)
    while start >= 0:
        nested_objects, nested_copied, _ = _framing(data[start + len(IMESSAGE_SIG) :])
        objects, copied = objects + nested_objects, copied + nested_copied
        start = data.find(IMESSAGE_SIG, start + 1)
    return whole and objects <= _MAX_OBJECTS and copied <= _MAX_COPY


def _text(value: object, codepage: str) -> str:
    if isinstance(value, bytes):
        return decode_bytes(value.rstrip(b"\x00"), codepage)
    return value.rstrip("\x00") if isinstance(value, str) else ""


def _exact(container: bytes, padded: bytes) -> bytes:
    """A MAPI binary value without its padding, however many NUL bytes it really ends with.

    tnefparse hands out the value padded to a multiple of 4 bytes; the 4 bytes before it in the
    property list hold its real length.
    """
    if not padded.endswith(b"\x00"):
        return padded
    start = container.find(padded)
    if start >= 4:
        length = _uint32(container, start - 4)
        if len(padded) - 3 <= length <= len(padded):
            return padded[:length]
    return padded.rstrip(b"\x00")


@dataclass
class _Attachment:
    """What the TNEF says about one attachment, gathered from its attributes in order."""

    title: bytes = b""
    data: bytes = b""
    properties: dict[int, Any] | None = None
    embedded: bytes | None = None


def _attachments(tnef: TNEF, codepage: str) -> Iterator[tuple[int, _Attachment]]:
    """Each attachment (with its index in tnef.attachments), as tnefparse frames them."""
    index, current = -1, None
    for obj in tnef.objects:
        if obj.name == _ATT_ATTACH_REND_DATA:
            if current is not None:
                yield index, current
            index, current = index + 1, _Attachment()
        if obj.level != _LEVEL_ATTACHMENT or current is None:
            continue
        if obj.name == _ATT_ATTACH_TITLE:
            current.title = bytes(obj.data)
        elif obj.name == _ATT_ATTACH_DATA:
            current.data = bytes(obj.data)
        elif obj.name == _ATT_ATTACHMENT:
            # Decoded as latin-1, which maps every byte to one character and never fails, so
            # that an 8-bit string is read below in the TNEF's codepage with our fallbacks.
            current.properties = {}
            for attr in decode_mapi(obj.data, "latin-1"):
                if attr.name == mapi_names.MAPI_ATTACH_DATA_OBJ and attr.raw_data:
                    value = _exact(obj.data, attr.raw_data[0])
                    if value.startswith(IMESSAGE_SIG):
                        current.embedded = value[len(IMESSAGE_SIG) :]
                    else:
                        current.data = value
                elif attr.attr_type == _PT_STRING8:
                    raw = "".join(attr.raw_data).encode("latin-1")
                    current.properties[attr.name] = _text(raw, codepage)
                else:
                    current.properties[attr.name] = attr.data
    if current is not None:
        yield index, current


def _name(found: _Attachment, codepage: str) -> str:
    props = found.properties or {}
    for key in (mapi_names.MAPI_ATTACH_LONG_FILENAME, mapi_names.MAPI_ATTACH_FILENAME):
        value = _text(props.get(key), codepage).strip()
        if value:
            return value
    title = _text(found.title, codepage).strip()
    if title:
        return title
    return _text(props.get(mapi_names.MAPI_DISPLAY_NAME), codepage).strip()


def _files(tnef: TNEF, depth: int) -> Iterator[TnefFile]:
    codepage = tnef.codepage or "cp1252"
    for index, found in _attachments(tnef, codepage):
        props = found.properties or {}
        name = safe_filename(_name(found, codepage), "Untitled Attachment")
        content_id = _text(props.get(mapi_names.MAPI_ATTACH_CONTENT_ID), codepage).strip("<> ")
        flags = props.get(mapi_names.MAPI_ATTACH_FLAGS)
        inline = bool(content_id) or (isinstance(flags, int) and bool(flags & _ATT_MHTML_REF))
        mime = _text(props.get(mapi_names.MAPI_ATTACH_MIME_TAG), codepage).strip().lower()
        method = props.get(mapi_names.MAPI_ATTACH_METHOD)
        if found.embedded is not None or method == _ATTACH_EMBEDDED_MSG:
            payload = found.embedded if found.embedded is not None else found.data
            yield TnefFile(name, payload, "application/ms-tnef", None, False, True, depth)
            inner = getattr(tnef.attachments[index], "embed", None)
            if isinstance(inner, TNEF) and depth < _MAX_EMBED_DEPTH:
                yield from _files(inner, depth + 1)
            continue
        content_type = mime if "/" in mime else "application/octet-stream"
        yield TnefFile(name, found.data, content_type, content_id or None, inline, False, depth)


def unpack(payload: bytes) -> TnefContents | None:
    """The files and body of a TNEF; None when it cannot be read (keep it whole then)."""
    if not payload.startswith(SIGNATURE) or not _within_limits(payload):
        return None
    try:
        tnef = TNEF(payload)
        files = tuple(_files(tnef, 0))
        codepage = tnef.codepage or "cp1252"
        text = _text(tnef.body, codepage)
        html = _text(tnef.htmlbody, codepage)
    except Exception:  # tnefparse raises whatever its input makes it raise: not readable
        return None
    return TnefContents(files, text, html)
