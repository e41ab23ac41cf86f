"""Inline images: a customer's photo in the body versus a logo in a signature.

Customers paste the photo of their ID card into the body as often as they attach it; Outlook,
Gmail and Apple Mail then send it as an inline part (Content-Disposition: inline, or a Content-ID
that the HTML shows with `<img src="cid:...">`). The same mechanism carries every signature logo
and social-media icon. A logo must never become an identity document, nor a refusal sent to the
customer ("logo.png is not an accepted document"); it stays with the message as a decoration.

The rule. An inline image is a *decoration* when its pixel size can be read from its bytes and

1. it is small in itself: its longer side is under 320 pixels or its shorter side under 100
   (icons, logos, banners; a photo or scan of a document that small could not be read anyway); or
2. the HTML only ever shows it small: every `<img>` that refers to it gives a displayed size
   (width/height attributes or CSS pixels) whose longer side is under 200 pixels (how Outlook
   shows a high-resolution logo); or
3. it is referred to only from inside a mail client's signature block (Gmail's
   `gmail_signature`, Apple Mail's `AppleMailSignature`, Outlook on the web's `Signature`,
   Thunderbird's `moz-signature`) and its longer side is under 1000 pixels.

Anything else is content: a photo or scan, on a kyc ticket an identity document. So is every
inline image whose size cannot be read (HEIC from an iPhone, a broken file): when in doubt a
file is judged as a document, where a refusal tells the customer, rather than silently set aside.
Files attached as attachments are never decorations: the sender chose to attach them.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from urllib.parse import unquote

from PIL import Image

from ingest.html_scan import LinearHTMLParser

SMALL_LONGER_SIDE = 320
SMALL_SHORTER_SIDE = 100
SHOWN_SMALL = 200
SIGNATURE_LOGO_LIMIT = 1000

# Markers (in an element's id or class) of the signature blocks mail clients write.
_SIGNATURE_MARKERS = re.compile(
    r"(?:^|[\s_-])(?:gmail_signature|applemailsignature|signature|moz-signature)(?:$|[\s_-])",
    re.IGNORECASE,
)
_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
)
_CSS_PIXELS = re.compile(r"(?:^|;)\s*(width|height)\s*:\s*([\d.]+)\s*px", re.IGNORECASE)


@dataclass(frozen=True)
class ImageUse:
    """One `<img src="cid:...">` of the HTML: where it is and how large it is shown."""

    in_signature: bool
    shown_longer_side: float | None  # None when the HTML does not say


def normalise_cid(value: str) -> str:
    """A Content-ID header or a cid: URL (RFC 2392, percent-encoded) as one comparable key."""
    value = value.strip()
    if value.lower().startswith("cid:"):
        value = unquote(value[4:])
    return value.strip().strip("<>").strip().lower()


def _number(value: str | None) -> float | None:
    match = re.match(r"\s*([\d.]+)\s*(px)?\s*$", value or "")
    if not match:
        return None
    try:
        return float(match.group(1))
    except ValueError:
        return None


class _CidImages(LinearHTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.uses: dict[str, list[ImageUse]] = {}
        self._open: list[tuple[str, bool]] = []  # (tag, is a signature block)

    def _in_signature(self) -> bool:
        return any(signature for _, signature in self._open)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "img":
            self._image(values)
        elif tag not in _VOID:
            marker = f"{values.get('id', '')} {values.get('class', '')}"
            self._open.append((tag, bool(_SIGNATURE_MARKERS.search(marker))))
            del self._open[:-200]  # unclosed tags in broken HTML: keep the stack bounded

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self._image({name: value or "" for name, value in attrs})

    def handle_endtag(self, tag: str) -> None:
        for position in range(len(self._open) - 1, -1, -1):
            if self._open[position][0] == tag:
                del self._open[position:]
                return

    def _image(self, values: dict[str, str]) -> None:
        source = values.get("src", "")
        if not source.strip().lower().startswith("cid:"):
            return
        sizes = {"width": _number(values.get("width")), "height": _number(values.get("height"))}
        for name, number in _CSS_PIXELS.findall(values.get("style", "")):
            sizes[name.lower()] = _number(number)
        known = [size for size in sizes.values() if size is not None]
        use = ImageUse(self._in_signature(), max(known) if known else None)
        self.uses.setdefault(normalise_cid(source), []).append(use)


def cid_images(html: str) -> dict[str, list[ImageUse]]:
    """Every image the HTML shows from a cid: URL, keyed by `normalise_cid`."""
    parser = _CidImages()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # HTMLParser on hostile input: what was read so far counts
        pass
    return parser.uses


def pixel_size(payload: bytes) -> tuple[int, int] | None:
    """(width, height) read from the image's header (nothing is decoded), or None."""
    try:
        with Image.open(io.BytesIO(payload)) as image:
            width, height = image.size
    except Exception:  # not an image Pillow knows, broken, or a decompression bomb
        return None
    return (width, height) if width > 0 and height > 0 else None


def is_image(content_type: str, size: tuple[int, int] | None) -> bool:
    """Declared an image, or readable as one (`size` from `pixel_size`): what can be shown
    inline at all."""
    return content_type.startswith("image/") or size is not None


def is_decoration(size: tuple[int, int] | None, uses: list[ImageUse]) -> bool:
    """The rule of the module docstring, for an inline image of this `pixel_size` and the
    HTML's uses of it."""
    if size is None:
        return False
    longer, shorter = max(size), min(size)
    if longer < SMALL_LONGER_SIDE or shorter < SMALL_SHORTER_SIDE:
        return True
    if uses and all(
        use.shown_longer_side is not None and use.shown_longer_side < SHOWN_SMALL for use in uses
    ):
        return True
    return bool(uses) and all(use.in_signature for use in uses) and longer < SIGNATURE_LOGO_LIMIT
