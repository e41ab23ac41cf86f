"""Addresses in a header, read the way a careful MTA-side parser reads them, and the sender.

Real mail writes From in ways the strict RFC 5322 parser gives up on, and a person's request
must not be dropped for it (issue 14):
- the whole value (name and address) in one encoded-word, as several web mailers write it
  (`From: =?utf-8?b?...?=` that decodes to `Gülşen Işık <gulsen0@musteri.example>`): the value is
  parsed as it came first (so a comma inside an encoded display name never splits it), then
  decoded and parsed again;
- raw 8-bit bytes in any charset (read as text by `ingest.parsing` before this);
- no angle brackets (`Gülşen Işık gulsen0@musteri.example`), stray text, a missing `>`: the
  address-shaped words are taken, the text before each as its name;
- several addresses: all are returned, the first is the sender;
- a display name that is itself an address, unquoted (`can@musteri.example <attacker@evil.example>`,
  as phishing mail writes it, and some mailers): the address is always the angle-addr, the
  mailbox that SPF, DKIM, DMARC and replies concern, and the text before it only its name. The
  standard library (Python 3.11) reads such a value as two addresses, the display name's first.

`find_sender` then looks, in order, at From, Sender, Reply-To, the envelope sender and the
Return-Path header, and takes the first usable address. A message with none is still a
person's mail: it gets a ticket with no acknowledgement (ingest/classify.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.utils import getaddresses

# One more than a message keeps (ingest/mime_shape.py MAX_ADDRESSES): reading stops there, in
# bounded time however long the header, and the one over the limit is how the cut is noticed.
MAX_ADDRESSES_READ = 101

# Control characters are never part of an address; one that holds them is hostile or broken,
# and would be echoed into the headers of the mail we send.
_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")
# What separates words in an address header that the strict parser could not read. One
# character class and no nesting: linear in the header, whatever it holds.
_SEPARATORS = re.compile(r"[\s<>,;()\"\[\]]+")


@dataclass(frozen=True)
class Address:
    email: str  # lowercase, "" when the header held no usable address
    name: str


NOBODY = Address(email="", name="")


def usable(address: str) -> bool:
    """One local part, one domain, nothing a header or a command line could be fooled by."""
    local, at, domain = address.partition("@")
    if not at or not local or not domain or "@" in domain:
        return False
    if _CONTROL.search(address) or any(c.isspace() or c in '<>"(),;\\' for c in address):
        return False
    return not address.startswith("=?")  # an encoded-word the parser took for an address


def _quoted(phrase: str) -> str:
    """A phrase as one quoted string, with the space around it kept."""
    body = phrase.strip()
    lead = phrase[: len(phrase) - len(phrase.lstrip())]
    escaped = body.replace("\\", "\\\\").replace('"', '\\"')
    return f'{lead}"{escaped}" '


class _Scan:
    """Where a character of an address header stands: in a quoted string, a comment, an
    angle-addr, or at the top level."""

    def __init__(self) -> None:
        self.quoted = False
        self.escaped = False
        self.depth = 0  # comment nesting
        self.angle = False

    def nested(self, c: str) -> bool:
        """Takes `c`; True when it is inside (or closes) a quoted string, comment or
        angle-addr, or opens a quoted string or comment."""
        if self.escaped:
            self.escaped = False
        elif c == "\\" and (self.quoted or self.depth):
            self.escaped = True
        elif self.quoted:
            self.quoted = c != '"'
        elif self.depth:
            self.depth += {"(": 1, ")": -1}.get(c, 0)
        elif self.angle:
            self.angle = c != ">"
        elif c in '"(':
            self.quoted, self.depth = c == '"', int(c == "(")
        else:
            return False
        return True


def quoted_display_names(text: str) -> str:
    """`text` with every display name that holds an "@" outside quotes and comments written as
    one quoted string (`a@b.example <c@d.example>` as `"a@b.example" <c@d.example>`), so the
    strict parser reads it as the name of the angle-addr after it, never as an address. One
    pass over the text, whatever it holds; a text without such a name comes back as it was."""
    scan = _Scan()
    pieces: list[str] = []
    copied = start = 0  # copied up to; where the current phrase began
    at_seen = False
    for i, c in enumerate(text):
        in_angle = scan.angle
        if scan.nested(c):
            if in_angle and not scan.angle:  # its ">": a phrase may follow
                start, at_seen = i + 1, False
            continue
        if c == "@":
            at_seen = True
        elif c in ",;:>":
            start, at_seen = i + 1, False
        elif c == "<":
            if at_seen:
                pieces += [text[copied:start], _quoted(text[start:i])]
                copied = i
            scan.angle = True
    return "".join(pieces) + text[copied:] if pieces else text


def _strict(text: str, decode: Callable[[str], str]) -> list[Address]:
    try:
        found = getaddresses([quoted_display_names(text)])
    except Exception:  # RecursionError on hostile headers, and the like
        return []
    return [
        Address(addr.strip().lower(), decode(name)) for name, addr in found if usable(addr.strip())
    ]


def _words(text: str) -> list[Address]:
    """The address-shaped words of `text`, each named by the text before it (up to the comma
    or the previous address). Before a "<" every word is a name, address-shaped or not: the
    address is the one in the angle brackets."""
    result: list[Address] = []
    for segment in text.split(",")[: MAX_ADDRESSES_READ * 2]:
        name, angle, rest = segment.partition("<")
        if not angle:
            name, rest = "", segment
        name_words = [word for word in _SEPARATORS.split(name) if word]
        for word in _SEPARATORS.split(rest):
            candidate = word.strip(".'")
            if usable(candidate):
                result.append(Address(candidate.lower(), " ".join(name_words).strip(" '")))
                name_words = []
            elif word:
                name_words.append(word)
            if len(result) >= MAX_ADDRESSES_READ:
                return result
    return result


def header_addresses(values: Iterable[str], decode: Callable[[str], str]) -> tuple[Address, ...]:
    """Every usable address in the values of one header (all its occurrences), in order.

    `decode` turns encoded-words into text (ingest.parsing.decode_header_value)."""
    result: list[Address] = []
    for value in values:
        found = _strict(value, decode)
        if not found:
            decoded = decode(value)
            found = _strict(decoded, lambda name: name) if decoded != value else []
            found = found or _words(decoded)
        result += found
        if len(result) >= MAX_ADDRESSES_READ:
            break
    return tuple(result[:MAX_ADDRESSES_READ])


def shown_name(name: str | None, address: str) -> str:
    """The name to show for `address`: "" when the name holds an address-shaped word other
    than `address` (`can@musteri.example` as the name of attacker@evil.example), so that it is
    never read as the sender's mailbox; it stays recorded as the name the sender wrote."""
    words = _SEPARATORS.split(name or "")
    if any(usable(w.strip(".'")) and w.strip(".'").lower() != address.lower() for w in words):
        return ""
    return name or ""


def envelope_address(path: str | None) -> Address | None:
    """An envelope sender or a Return-Path value as an address; None when null or unusable."""
    address = (path or "").strip().strip("<>").strip().lower()
    return Address(address, "") if usable(address) else None


def find_sender(
    from_: tuple[Address, ...],
    sender: tuple[Address, ...],
    reply_to: tuple[Address, ...],
    envelope_from: str | None,
    return_path: str | None,
) -> Address:
    """From, else Sender, else Reply-To, else the envelope sender, else the Return-Path
    header; NOBODY when none holds a usable address."""
    for found in (from_, sender, reply_to):
        if found:
            return found[0]
    for path in (envelope_from, return_path):
        address = envelope_address(path)
        if address is not None:
            return address
    return NOBODY
