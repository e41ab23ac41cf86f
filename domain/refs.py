"""Ticket reference numbers: short, readable on the phone, with a check character.

A reference is eight characters from an alphabet without 0/O, 1/I/L, shown as two groups of four
(`7KQM-X3P9`). The last character is a check: the position-weighted sum of the others modulo 31
(a prime, the size of the alphabet), so any single wrong character and any swap of two
neighbours is detected and a typo never names another customer's ticket.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
assert len(ALPHABET) == 31
PAYLOAD_LENGTH = 7

# The forms customers and mail clients leave a reference in: "[#7KQM-X3P9]", "Ticket#7KQM-X3P9",
# "Ticket #7KQM X3P9", "Talep no: 7KQM-X3P9", "#7kqmx3p9". Lowercase is accepted (people retype).
# Each `\s*` follows a token that must be there: "ticket" then three optional runs of spaces in
# a row tried every way of sharing a long run between them (2,000 spaces took 80 s).
_REF_IN_TEXT = re.compile(
    r"(?:\[\s*#?|\b(?:ticket|talep|ref|referans)\s*(?:(?:no\.?|numarası)\s*)?(?:[#:]\s*)?|#)"
    r"([2-9a-hj-km-np-z]{4})[\s-]?([2-9a-hj-km-np-z]{4})\b",
    re.IGNORECASE,
)


def check_character(payload: str) -> str:
    total = sum((index + 1) * ALPHABET.index(char) for index, char in enumerate(payload))
    return ALPHABET[total % len(ALPHABET)]


def new_reference(randbelow: Callable[[int], int] = secrets.randbelow) -> str:
    payload = "".join(ALPHABET[randbelow(len(ALPHABET))] for _ in range(PAYLOAD_LENGTH))
    full = payload + check_character(payload)
    return f"{full[:4]}-{full[4:]}"


def normalise(candidate: str) -> str | None:
    """The canonical form of a reference, or None when it is not a valid one."""
    compact = re.sub(r"[\s-]", "", candidate).upper()
    if len(compact) != PAYLOAD_LENGTH + 1 or any(c not in ALPHABET for c in compact):
        return None
    if check_character(compact[:-1]) != compact[-1]:
        return None
    return f"{compact[:4]}-{compact[4:]}"


def find_references(text: str) -> list[str]:
    """Valid references in a subject or body, in order of appearance, without repeats."""
    found: list[str] = []
    for match in _REF_IN_TEXT.finditer(text):
        ref = normalise(match.group(1) + match.group(2))
        if ref is not None and ref not in found:
            found.append(ref)
    return found
