"""RFC 2047 encoded words as mailers really write them, made readable by the standard decoder.

`email.header.decode_header` reads well-formed encoded words. Three shapes it does not read
reach a support desk every day, and it showed the raw `=?utf-8?...` text or mojibake for them:

- A header cut short (a mailer's or gateway's line limit): its last encoded word has no `?=`, and
  may end inside an escape (`=C`) or inside a multibyte character. `close_last_word` closes it,
  without the incomplete escape or character.
- Base64 text whose length is not what its padding says (a cut, padding inside, a space):
  decode_header raises, which cost the whole header. `repair_base64` writes such words again
  from what their characters hold.
- A character split across two encoded words (Outlook, PHP's mb_encode_mimeheader), or words
  cut apart by the caller's bounded pieces, or charset labels spelled differently (`utf8`,
  `UTF-8`): each half failed on its own. `join_words` joins adjacent encoded words of one charset
  before their bytes are decoded, as RFC 2047 6.2 asks of a reader.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import contextlib
import re
from collections.abc import Iterable

from ingest.charsets import codec_name

Chunk = tuple[bytes | str, str | None]

# An encoded word's start with nothing after it that ends one: the last word of a cut header.
# The text holds no "?" (the word would have ended at "?=") and may keep a lone "?" of its "?=".
_OPEN_WORD = re.compile(r"=\?([^?\s]+)\?([qQbB])\?([^?]*)\??\s*\Z")
# A Q escape the cut left incomplete ("=C", "=").
_CUT_ESCAPE = re.compile(r"=[0-9A-Fa-f]?\Z")
# The standard library's own encoded-word pattern (email.header.ecre), for base64 words only.
_B_WORD = re.compile(r"=\?([^?]*?)\?([bB])\?(.*?)\?=")
_NOT_BASE64 = re.compile(r"[^A-Za-z0-9+/]")
_WHITESPACE = re.compile(r"\s+")
_INNER_PADDING = re.compile(r"=+[^=\s]")


def _word(charset: str, data: bytes) -> str:
    return f"=?{charset}?b?{base64.b64encode(data).decode('ascii')}?="


def _q_bytes(text: str) -> bytes:
    # What email.quoprimime.header_decode does, to bytes: "_" is a space, =XX a byte.
    out = bytearray()
    index = 0
    raw = text.replace("_", " ").encode("latin-1", "replace")
    while index < len(raw):
        if raw[index : index + 1] == b"=" and index + 3 <= len(raw):
            try:
                out += binascii.unhexlify(raw[index + 1 : index + 3])
                index += 3
                continue
            except (binascii.Error, ValueError):
                pass
        out += raw[index : index + 1]
        index += 1
    return bytes(out)


def _lenient_base64(text: str) -> bytes | None:
    """What base64 text holds, read past whitespace, padding inside (words joined by a mailer)
    and a cut end; None when it holds a character base64 has not: which byte that character
    stood for cannot be known, and dropping it would shift every byte after it."""
    out = b""
    for segment in re.split(r"=+", _WHITESPACE.sub("", text)):
        if _NOT_BASE64.search(segment):
            return None
        if len(segment) % 4 == 1:  # a lone last character holds no whole byte
            segment = segment[:-1]
        out += base64.b64decode(segment + "=" * (-len(segment) % 4))
    return out


def _complete(data: bytes, codec: str) -> bytes:
    """`data` without a multibyte character the cut left incomplete at its end."""
    decoder = codecs.getincrementaldecoder(codec)("ignore")
    decoder.decode(data, final=False)
    pending = decoder.getstate()[0]
    return data[: len(data) - len(pending)] if pending else data


def close_last_word(text: str) -> str:
    """A header whose last encoded word was cut before its `?=`, with that word closed."""
    start = text.rfind("=?")
    found = _OPEN_WORD.match(text, start) if start >= 0 else None
    if found is None:
        return text
    charset, encoding, encoded = found.groups()
    codec = codec_name(charset)
    if codec is None:  # not a charset: "=?" that only looks like the start of a word
        return text
    if encoding in "qQ":
        data = _q_bytes(_CUT_ESCAPE.sub("", encoded))
    else:
        read = _lenient_base64(encoded)
        if read is None:
            return text
        data = read
    # A codec without an incremental decoder: keep every byte.
    with contextlib.suppress(LookupError, UnicodeError, ValueError, TypeError):
        data = _complete(data, codec)
    return text[:start] + _word(charset, data)


def _rewrite_base64(found: re.Match[str]) -> str:
    charset, _, encoded = found.groups()
    if _INNER_PADDING.search(encoded):  # decode_header would stop at the first word's end
        read = _lenient_base64(encoded)
        return found.group(0) if read is None else _word(charset, read)
    try:
        # As decode_header pads it: a word it reads is left as it came.
        base64.b64decode(encoded + "==="[: -len(encoded) % 4], validate=False)
        return found.group(0)
    except (binascii.Error, ValueError):
        read = _lenient_base64(encoded)
        return found.group(0) if read is None else _word(charset, read)


def repair_base64(text: str) -> str:
    """`text` with each base64 encoded word that decode_header cannot read written again."""
    if "?b?" not in text and "?B?" not in text:
        return text
    return _B_WORD.sub(_rewrite_base64, text)


def _same_charset(one: str, other: str) -> bool:
    return (codec_name(one) or one.lower()) == (codec_name(other) or other.lower())


def _blank(chunk: Chunk) -> bool:
    text, charset = chunk
    return charset is None and bool(text) and not text.strip()


def join_words(chunks: Iterable[Chunk]) -> list[Chunk]:
    """decode_header's chunks with adjacent encoded words of one charset joined (and the
    whitespace between two encoded words dropped, RFC 2047 6.2), across the caller's pieces."""
    joined: list[Chunk] = []
    for chunk, charset in chunks:
        between_words = len(joined) >= 2 and _blank(joined[-1]) and joined[-2][1] is not None
        if charset is not None and between_words:
            joined.pop()
        if charset is not None and joined:
            last, last_charset = joined[-1]
            if (
                last_charset is not None
                and isinstance(last, bytes)
                and isinstance(chunk, bytes)
                and _same_charset(last_charset, charset)
            ):
                joined[-1] = (last + chunk, last_charset)
                continue
        joined.append((chunk, charset))
    return joined
