"""The top-level header of a raw message, read without copying its body."""

from __future__ import annotations


def header_end(raw: bytes | bytearray) -> int:
    """Where the top-level header of `raw` ends: its first empty line (CRLF or LF), or the end
    of `raw` when it has none."""
    ends = [at for at in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if at >= 0]
    return min(ends) if ends else len(raw)


def header_block(raw: bytes | bytearray) -> bytes:
    """The top-level header of `raw`, up to its first empty line. Found, not split off: a split
    copies the body too, which for a 25 MB message was the parsing process's peak."""
    return bytes(raw[: header_end(raw)])
