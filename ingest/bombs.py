"""Decompression bombs among identity documents: recognised without ever being expanded.

ticketd opens no archive and renders no PDF; the danger is to the person who does, an agent of
the identity queue opening the file in a viewer that inflates it to gigabytes. So:

- a zip (refused anyway: archives are not identity documents) is described from its central
  directory alone, the sizes its entries declare, so the agents' note says what it is;
- a PDF's compressed streams are inflated in 64 KiB steps, counting and keeping nothing, and the
  count stops at `PDF_INFLATE_LIMIT`: a PDF that would inflate past it is refused as damaged.
  Honest scans are JPEG inside the PDF and inflate little; a page of Flate-compressed pixels at
  300 dpi is about 26 MB, so the limit leaves room for ten of them. A stream compressed twice
  (a bomb's way past a per-layer ratio) is followed through every layer, still in small steps.
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from collections.abc import Iterable, Iterator

PDF_INFLATE_LIMIT = 256 * 1024 * 1024
_STEP = 64 * 1024
_MAX_LAYERS = 4
_STREAM = re.compile(rb"(?<!end)stream\r?\n")


def _looks_zlib(data: bytes) -> bool:
    return len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0


def _inflate(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """A zlib stream inflated lazily, at most `_STEP` bytes at a time; stops at an error."""
    inflater = zlib.decompressobj()
    try:
        for chunk in chunks:
            pending = chunk
            while pending and not inflater.eof:
                out = inflater.decompress(pending, _STEP)
                if out:
                    yield out
                pending = inflater.unconsumed_tail
            if inflater.eof:
                return
        tail = inflater.flush()
        if tail:
            yield tail
    except zlib.error:
        return  # a damaged stream inflates no further


def _pieces(data: memoryview) -> Iterator[bytes]:
    for start in range(0, len(data), _STEP):
        yield bytes(data[start : start + _STEP])


def _inflated_size(data: memoryview, budget: int) -> int:
    """What one stream inflates to through all its zlib layers, counted up to `budget` + 1."""
    chunks: Iterator[bytes] = _pieces(data)
    first = bytes(data[:2])
    layers = 0
    while _looks_zlib(first) and layers < _MAX_LAYERS:
        chunks = _inflate(chunks)
        layers += 1
        head = next(chunks, b"")
        chunks = _prepend(head, chunks)
        first = head[:2]
    if layers == 0:
        return 0
    total = 0
    for out in chunks:
        total += len(out)
        if total > budget:
            break
    return total


def _prepend(head: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if head:
        yield head
    yield from rest


def pdf_inflates_past(pdf: bytes, limit: int = PDF_INFLATE_LIMIT) -> int | None:
    """The inflated size counted so far when the PDF's streams would inflate past `limit`,
    else None. Never holds more than a few steps of inflated data."""
    view = memoryview(pdf)
    total = 0
    end = -1  # the "endstream" after the last stream start, found once for all before it
    for match in _STREAM.finditer(pdf):
        if end < match.end():
            # Looked for only past the last one: a search from every "stream" to the end of a
            # file without "endstream" was quadratic (2 MB of "stream\n": two minutes).
            end = pdf.find(b"endstream", match.end())
            end = len(pdf) if end < 0 else end
        stream = view[match.end() : end]
        total += _inflated_size(stream, limit - total)
        if total > limit:
            return total
    return None


def describe_zip(payload: bytes) -> str:
    """What a zip's central directory declares, read without unpacking anything."""
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError, EOFError):
        return "an unreadable zip"
    unpacked = sum(entry.file_size for entry in entries)
    packed = sum(entry.compress_size for entry in entries) or 1
    text = f"{len(entries)} file(s), {unpacked} bytes when unpacked"
    if unpacked > 100 * packed and unpacked > 100 * 1024 * 1024:
        text += f" from {packed} bytes: a zip bomb"
    return text + "; never unpacked"
