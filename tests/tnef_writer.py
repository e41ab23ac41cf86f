"""A minimal TNEF (winmail.dat) writer, per MS-OXTNEF, for what the shared corpus lacks.

The corpus's TNEF files all come from Western or Russian/Chinese Outlooks; a Turkish Outlook
writes 8-bit names in windows-1254. This writes such a file the way Outlook lays it out: the
version, the codepage, the message class, then per attachment its rendering data, title, data
and MAPI property list (long filename as an 8-bit or a UTF-16 string, or the data itself as the
PR_ATTACH_DATA_OBJ binary property, padded to 4 bytes as the format requires).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

SIGNATURE = 0x223E9F78
LEVEL_MESSAGE, LEVEL_ATTACHMENT = 1, 2
# Attribute ids (low word) and their types (high word, MS-OXTNEF 2.1.3.3).
ATP_STRING, ATP_BYTE, ATP_WORD, ATP_DWORD = 0x0001, 0x0006, 0x0007, 0x0008
ATT_TNEF_VERSION, ATT_OEM_CODEPAGE, ATT_MESSAGE_CLASS = 0x9006, 0x9007, 0x8008
ATT_ATTACH_REND_DATA, ATT_ATTACH_TITLE, ATT_ATTACH_DATA, ATT_ATTACHMENT = (
    0x9002,
    0x8010,
    0x800F,
    0x9005,
)
PT_LONG, PT_STRING8, PT_UNICODE, PT_BINARY = 0x0003, 0x001E, 0x001F, 0x0102
PR_ATTACH_DATA_OBJ, PR_ATTACH_LONG_FILENAME, PR_ATTACH_METHOD = 0x3701, 0x3707, 0x3705


@dataclass(frozen=True)
class TnefAttachment:
    data: bytes
    title: str = ""  # attAttachTitle, in the TNEF's codepage
    long_filename: str = ""  # PR_ATTACH_LONG_FILENAME
    long_filename_unicode: bool = False  # as PT_UNICODE instead of PT_STRING8
    data_as_property: bool = False  # the data in PR_ATTACH_DATA_OBJ, not attAttachData


def _attribute(level: int, name: int, kind: int, data: bytes) -> bytes:
    checksum = sum(data) & 0xFFFF
    return struct.pack("<BHHI", level, name, kind, len(data)) + data + struct.pack("<H", checksum)


def _padded(value: bytes) -> bytes:
    return value + b"\x00" * (-len(value) % 4)


def _property(kind: int, name: int, value: bytes | int) -> bytes:
    head = struct.pack("<HH", kind, name)
    if isinstance(value, int):
        return head + struct.pack("<I", value)
    return head + struct.pack("<II", 1, len(value)) + _padded(value)


def write_tnef(attachments: list[TnefAttachment], codepage: int = 1254) -> bytes:
    encoding = f"cp{codepage}"
    out = struct.pack("<IH", SIGNATURE, 0x0001)
    out += _attribute(LEVEL_MESSAGE, ATT_TNEF_VERSION, ATP_DWORD, struct.pack("<I", 0x00010000))
    out += _attribute(LEVEL_MESSAGE, ATT_OEM_CODEPAGE, ATP_BYTE, struct.pack("<II", codepage, 0))
    out += _attribute(LEVEL_MESSAGE, ATT_MESSAGE_CLASS, ATP_WORD, b"IPM.Microsoft Mail.Note\x00")
    for attachment in attachments:
        rendering = struct.pack("<HIHHI", 1, 0xFFFFFFFF, 0xFFFF, 0xFFFF, 0)
        out += _attribute(LEVEL_ATTACHMENT, ATT_ATTACH_REND_DATA, ATP_BYTE, rendering)
        if attachment.title:
            title = attachment.title.encode(encoding) + b"\x00"
            out += _attribute(LEVEL_ATTACHMENT, ATT_ATTACH_TITLE, ATP_STRING, title)
        if not attachment.data_as_property:
            out += _attribute(LEVEL_ATTACHMENT, ATT_ATTACH_DATA, ATP_BYTE, attachment.data)
        properties = [_property(PT_LONG, PR_ATTACH_METHOD, 1)]
        if attachment.long_filename:
            if attachment.long_filename_unicode:
                name = (attachment.long_filename + "\x00").encode("utf-16-le")
                properties.append(_property(PT_UNICODE, PR_ATTACH_LONG_FILENAME, name))
            else:
                name = attachment.long_filename.encode(encoding) + b"\x00"
                properties.append(_property(PT_STRING8, PR_ATTACH_LONG_FILENAME, name))
        if attachment.data_as_property:
            properties.append(_property(PT_BINARY, PR_ATTACH_DATA_OBJ, attachment.data))
        mapi = struct.pack("<I", len(properties)) + b"".join(properties)
        out += _attribute(LEVEL_ATTACHMENT, ATT_ATTACHMENT, ATP_BYTE, mapi)
    return out
