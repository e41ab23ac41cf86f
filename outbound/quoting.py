"""What automatic mail may repeat of a sender's text: a cut line with its links removed.

An acknowledgement goes out from the desk, signed with the desk's name, to an address we did not
choose as much as a sender wrote it in From. Whatever of the sender's text it repeats reaches that
address as the desk's word, so a forged From could make the desk carry a phishing line
("Hesabınız askıya alındı: https://evil.example/giris") to anyone. Automatic mail therefore
repeats at most a short line (a subject, a file name), and never a link, a host name or an
address in it: each becomes "[…]".
"""

from __future__ import annotations

import re

# The longest subject an automatic mail repeats; a file name is cut shorter.
SUBJECT_CHARS = 80
FILENAME_CHARS = 60
NAME_CHARS = 60
REMOVED = "[…]"

# Anything a mail client or a person could follow: a URL with a scheme, "www." names, an
# address, and a bare host name with a letter-only last label ("evil.example/giris",
# "bit.ly"), with whatever path follows it up to the next space.
_LINK = re.compile(
    r"(?:[a-z][a-z0-9+.\-]*://\S+)"
    r"|(?:\b(?:mailto|javascript|vbscript|data|file|tel|sms):\S+)"
    r"|(?:\S*@\S+)"
    r"|(?:(?:[\w\-]+\.)+[a-z]{2,}\b\S*)",
    re.IGNORECASE,
)


# Controls a reader's terminal or mail client would act on (C0, DEL, C1, bidirectional
# overrides): gone from what automatic mail repeats.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def without_links(text: str) -> str:
    return _LINK.sub(REMOVED, text)


def quoted(text: str, limit: int = SUBJECT_CHARS) -> str:
    """`text` on one line, its links removed, cut to `limit` characters (with "…")."""
    # Cut before the search too: the line is short, so the search is, whatever the input.
    visible = _CONTROLS.sub(" ", text[: limit * 4])
    line = " ".join(without_links(" ".join(visible.split())).split())
    if len(line) <= limit:
        return line
    return line[: limit - 1].rstrip() + "…"


def quoted_filename(name: str) -> str:
    """A file name as automatic mail repeats it: the stem quoted, its extension kept (an
    extension is not a link, though "kimlik.pdf" would read as a host name)."""
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem or not extension.isalnum() or len(extension) > 5:
        return quoted(name, FILENAME_CHARS)
    return f"{quoted(stem, FILENAME_CHARS)}.{extension}"
