"""Is the whole file what its first bytes say? A document's structure, checked end to end.

`filetype` reads a few magic bytes: `%PDF-1.4` followed by `<html><script>` is a "PDF" to it, and
saved as `kimlik.hta` it runs as a program. So an accepted document must also parse as its type:
- a PDF is read by pypdf (its cross-reference table and trailer, and at least one page), in a
  child process with a time limit (`PDF_SECONDS` for all the PDFs of one message together):
  pypdf's repair of a broken table can take seconds on a few MB of crafted whitespace, and a
  child can be stopped;
- an image is decoded whole by Pillow, after its header says its size is at most `MAX_PIXELS`
  (a decompression bomb is refused before it is decoded).
HEIC/HEIF have no decoder here: for them the header check is all there is.

`python -m ingest.document_structure` is the child: the PDF on standard input, the problem (or
nothing) on standard output.
"""

from __future__ import annotations

import io
import logging
import subprocess
import sys
import time
import warnings

from PIL import Image, UnidentifiedImageError

PDF_SECONDS = 10.0
# A 50-megapixel photo is more than any phone makes; decoding one is a few hundred MB at most.
MAX_PIXELS = 50_000_000
# Pillow's format names for the detected types it can decode.
_PILLOW_FORMATS = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "tiff": "TIFF"}


def image_problem(payload: bytes, detected: str) -> str | None:
    """Why the image does not decode as `detected`, or None."""
    expected = _PILLOW_FORMATS.get(detected)
    if expected is None:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns on odd EXIF; the decode decides
            with Image.open(io.BytesIO(payload), formats=[expected]) as image:
                width, height = image.size
                if width * height > MAX_PIXELS:
                    return f"{width}x{height} pixels, more than {MAX_PIXELS}"
                image.load()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return f"does not decode as {expected}"
    return None


def read_pdf(payload: bytes) -> str | None:
    """In this process: why pypdf cannot read the PDF, or None."""
    # Here: only the child reads PDFs. Imported at the top, pypdf was a twentieth of the
    # start-up of every command that parses mail, and of the parsing process's (issue 19).
    from pypdf import PdfReader

    logging.disable(logging.WARNING)  # pypdf logs every repair; the answer is what counts
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pages = len(PdfReader(io.BytesIO(payload), strict=False).pages)
    except Exception as error:  # any failure of the parser is a PDF we cannot open
        return f"not a readable PDF ({type(error).__name__})"
    return None if pages else "a PDF without pages"


def pdf_problem(payload: bytes, seconds: float = PDF_SECONDS) -> str | None:
    """Why the PDF is not readable, checked in a child process stopped after `seconds`."""
    try:
        result = subprocess.run(
            [sys.executable, "-I", "-m", "ingest.document_structure"],
            input=payload,
            capture_output=True,
            timeout=seconds,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"not readable as a PDF within {seconds:g} s"
    if result.returncode != 0:
        return "the PDF reader stopped on it"
    return result.stdout.decode("utf-8", "replace").strip() or None


class PdfBudget:
    """The time one message's PDFs may take to read, together: the checks run while the
    message's transaction is open, so ten slow PDFs must not hold it for ten times the limit."""

    def __init__(self, seconds: float = PDF_SECONDS) -> None:
        self.left = seconds

    def check(self, payload: bytes) -> str | None:
        if self.left <= 0:
            return f"not read: this message's {PDF_SECONDS:g} s for reading PDFs were used up"
        started = time.monotonic()
        try:
            return pdf_problem(payload, self.left)
        finally:
            self.left -= time.monotonic() - started


def structure_problem(payload: bytes, detected: str, budget: PdfBudget) -> str | None:
    """Why the file is not a whole document of the detected type, or None."""
    if detected == "pdf":
        return budget.check(payload)
    return image_problem(payload, detected)


if __name__ == "__main__":
    print(read_pdf(sys.stdin.buffer.read()) or "")
