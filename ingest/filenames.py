"""Attachment filenames as a sender wrote them are hostile input: `safe_filename` makes one that
can never name another place (a directory, a parent, a device) on any system it is saved on.

The name is still for people: Turkish letters and the extension stay, only what is dangerous or
invisible goes. Pure and idempotent, so a stored name passes through it again unchanged.
"""

from __future__ import annotations

import re
import unicodedata

# Most filesystems allow 255 bytes per name; stay below so a tool that adds "(1)" still fits.
MAX_BYTES = 200
# An extension longer than this is not one a person relies on ("x.tar.gz" keeps ".gz").
_MAX_EXTENSION = 16
# Windows opens a device, not a file, for these names with any extension ("con.txt", "COM1.pdf").
_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{port}{n}" for port in ("COM", "LPT") for n in (*"123456789", "¹", "²", "³")}
)
# Path separators of every system, and what Windows refuses in a name (":" also opens a stream).
_SEPARATORS = re.compile(r"[/\\]")
_FORBIDDEN = re.compile(r'[<>:"|?*]')
# Bidirectional overrides make "fatura\u202efdp.exe" look like "faturaexe.pdf".
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _visible(ch: str) -> str:
    if ch in _BIDI:
        return ""
    category = unicodedata.category(ch)
    if category == "Cs":
        return "\ufffd"  # a lone surrogate (undecodable bytes) cannot be written as UTF-8
    if category == "Cc" or category in ("Zl", "Zp"):
        return " " if ch in "\t\r\n\x0b\x0c\x85" else ""  # NUL and other controls vanish
    if category == "Zs":
        return " "
    return ch


def _truncate(text: str, limit: int) -> str:
    """At most `limit` bytes of UTF-8, never cutting a character in two."""
    encoded = text.encode("utf-8")[:limit]
    return encoded.decode("utf-8", "ignore")


def safe_filename(name: str, fallback: str = "attachment") -> str:
    """A harmless file name for `name`: its last path component, without control characters,
    forbidden or reserved names, leading dots, or more than MAX_BYTES bytes of UTF-8."""
    # Composed after filtering: a removed NUL between "e" and a combining accent joins them.
    text = unicodedata.normalize("NFC", "".join(_visible(ch) for ch in name))
    text = _SEPARATORS.split(text)[-1]  # "../../etc/passwd" and "C:\\x\\y.pdf": the last part
    text = _FORBIDDEN.sub("_", text)
    text = " ".join(text.split())
    # Leading dots hide a file or name a parent; trailing dots and spaces Windows drops.
    text = text.lstrip(". ").rstrip(". ")
    stem, dot, extension = text.rpartition(".")
    if not dot or len(extension) > _MAX_EXTENSION or not stem:
        stem, extension = text, ""
    if stem.split(".")[0].strip().upper() in _RESERVED:
        stem = "_" + stem
    suffix = f".{extension}" if extension else ""
    stem = _truncate(stem, MAX_BYTES - len(suffix.encode("utf-8"))).rstrip(". ")
    text = f"{stem}{suffix}" if stem else ""
    return text or fallback


# The extensions of a stored or exported document's detected type (ingest/documents_step): the
# sender's is kept when it is one of them (`IMG_0042.jpeg`, `tarama.TIF`), else the first one
# replaces it: the type found in the bytes decides, never the sender (`kimlik.hta` holding a
# PDF is `kimlik.pdf`).
TYPE_EXTENSIONS = {
    "jpeg": ("jpg", "jpeg", "jpe", "jfif"),
    "png": ("png",),
    "heic": ("heic",),
    "heif": ("heif", "hif"),
    "webp": ("webp",),
    "tiff": ("tif", "tiff"),
    "pdf": ("pdf",),
}


def typed_filename(name: str, detected: str) -> str:
    """`name` made safe, with an extension of the detected type: the customer's own when it is
    one (any case), else the type's first."""
    safe = safe_filename(name, "document")
    stem, dot, extension = safe.rpartition(".")
    if not dot or not stem:
        stem, extension = safe, ""
    extensions = TYPE_EXTENSIONS.get(detected, ("bin",))
    if extension.lower() in extensions:
        return safe
    return safe_filename(f"{stem}.{extensions[0]}", "document")
