"""A part's Content-Transfer-Encoding read as the token it is, by every decoder in the process.

The standard library's compat32 `get_payload(decode=True)` lowercases the header's value but
compares it as it stands: `base64 ` (a trailing space), `Base64<TAB>`, a value folded onto the
next line, and what real senders write besides (`quoted-printable;`, `"base64"`, `base64;
charset=utf-8`, `base64 (comment)`) is no encoding it knows, so the part's base64 text came
back as if it were the file (quoted-printable and uuencode alike). RFC 2045 6.1 makes the value
a case-insensitive token, and RFC 822 lets comments stand anywhere in a structured field; the
quotes and the parameters are no part of it either. So ticketd writes every part's value again
as its token (`normalise`) right after a message is parsed, before anything decodes a payload:
ticketd's own reads and flufl.bounce's detectors, which call `get_payload(decode=True)`
themselves, then agree. `transfer_encoding` reads one value the same way, for the code that
asks which encoding a part has. A value that is no encoding ticketd knows is left as it came:
the standard library then keeps the part's bytes as they are (7bit, 8bit and binary alike), so
nothing of the part is lost.

`normalise` also decodes a forward (message/rfc822 or message/global) sent base64 or
quoted-printable. RFC 2046 5.2.1 allows only 7bit, 8bit and binary there, but some clients
write it all the same; the parser then reads the encoded text as a message without a header,
and the forward was unreadable. Thunderbird and mutt decode it and show the message; so does
ticketd now, parsing the decoded bytes with the caller's `parse` (which bounds what it reads).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from email.message import Message
from email.policy import compat32

_HEADER = "Content-Transfer-Encoding"
# The values the standard library decodes by (or keeps the bytes of, for the first three): only
# a value that reads as one of them is written again, any other keeps what the sender wrote.
_KNOWN = frozenset(
    {
        "7bit",
        "8bit",
        "binary",
        "base64",
        "quoted-printable",
        "x-uuencode",
        "uuencode",
        "uue",
        "x-uue",
    }
)
# A token is a few characters; a value longer than this (a comment of a megabyte) is read
# no further, so reading it costs the same whatever a sender writes.
_VALUE_READ = 256
_FORWARDS = frozenset({"message/rfc822", "message/global"})
_FORWARD_ENCODINGS = frozenset({"base64", "quoted-printable"})
# What a decoded forward is declared as afterwards: a part written out again (a forward's .eml,
# a redacted copy) must not claim an encoding its bytes no longer have.
_DECODED = "8bit"
# Regenerated header lines are written as they came, never folded again.
_UNFOLDED = compat32.clone(max_line_length=0)

Parse = Callable[[bytes], Message | None]


def transfer_encoding(part: Message) -> str:
    """The part's transfer encoding as `encoding_token` reads its value ("" when it has
    none)."""
    try:
        return encoding_token(str(part.get(_HEADER, "")))
    except Exception:  # a value the header classes cannot even turn into text
        return ""


def encoding_token(value: str) -> str:
    """The encoding a Content-Transfer-Encoding value names, lowercase: comments, quotes,
    parameters (from the first `;` outside quotes) and whitespace taken off. What is left is
    returned whole, inner spaces and all, so `base64 x` names no encoding rather than one the
    sender may not have meant."""
    kept: list[str] = []
    depth = 0  # inside how many comments (they nest, RFC 822 3.4.3)
    quoted = escaped = False
    for char in value[:_VALUE_READ]:
        if escaped:
            escaped = False
            if not depth:
                kept.append(char)
        elif char == "\\" and (quoted or depth):
            escaped = True
        elif quoted:
            quoted = char != '"'
            if quoted:
                kept.append(char)
        elif char == "(":
            depth += 1
        elif depth:
            depth -= 1 if char == ")" else 0
        elif char == '"':
            quoted = True
        elif char == ";":
            break
        else:
            kept.append(char)
    return " ".join("".join(kept).split()).lower()


def normalise(parts: Iterable[Message], parse: Parse) -> None:
    """Every part's transfer encoding written as its token, and every forward sent base64 or
    quoted-printable replaced by the message it encodes, as `parse` reads it.

    `parts` may be a lazy walk: a forward's new message is in place before the walk asks the
    forward for its children, so the parts inside it (a forward inside the forward) are
    normalised too, as far as the walk goes."""
    for part in parts:
        try:
            _normalise_part(part, parse)
        except Exception:  # one unreadable part stays as it came, never costs the message
            continue


def _normalise_part(part: Message, parse: Parse) -> None:
    raw_value = part.get(_HEADER)
    if raw_value is None:
        return
    encoding = transfer_encoding(part)
    # Only a value that names a known encoding is rewritten, and only when the standard
    # library would not read it as it stands (it lowercases by itself): a part written out
    # again (a forward's .eml) keeps the case it came with, an unknown value what it said.
    if encoding in _KNOWN and str(raw_value).lower() != encoding:
        part.replace_header(_HEADER, encoding)
    if encoding in _FORWARD_ENCODINGS and part.get_content_type() in _FORWARDS:
        _decode_forward(part, encoding, parse)


def _decode_forward(part: Message, encoding: str, parse: Parse) -> None:
    children = part.get_payload()
    inner = children[0] if isinstance(children, list) and len(children) == 1 else None
    if not isinstance(inner, Message):
        return
    if encoding == "base64" and inner.keys():
        # The parser read a header: the body is a message as it stands, whatever the label.
        return
    encoded = _encoded_text(inner)
    if encoded is None:
        return
    # The standard library's own decoder, so a forward decodes as any other part would.
    carrier = Message()
    carrier[_HEADER] = encoding
    carrier.set_payload(encoded)
    decoded = carrier.get_payload(decode=True)
    if not isinstance(decoded, bytes):
        return
    message = parse(decoded)
    if message is None or not message.keys():
        return  # no message after all (or no room left to read one): kept as it came
    part.set_payload([message])
    part.replace_header(_HEADER, _DECODED)


def _encoded_text(inner: Message) -> str | None:
    """The forward's body as the parser read it: its text when it found no header (base64
    has no colon), else the message written out again (quoted-printable reads as one)."""
    if not inner.keys():
        payload = inner.get_payload()
        return payload if isinstance(payload, str) else None
    try:
        return inner.as_bytes(policy=_UNFOLDED).decode("ascii", "surrogateescape")
    except Exception:  # a header the generator cannot write
        return None
