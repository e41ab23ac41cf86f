"""The policy ticketd writes mail with: the standard library's SMTP policy, except that a subject
with non-ASCII text is folded so that no word loses the space before it.

policy.SMTP folds a long non-ASCII subject into encoded-words and, where a fold falls at a
space, leaves that space between two encoded-words, where RFC 2047 (6.2) tells every reader to
drop it: "Çekim talebim " * 5 came back, in Python's parser and in mail clients alike, with
"ÇekimÇekim" in places (a Turkish desk's acknowledgements and API tickets had long subjects
run together). The legacy `email.header.Header` encodes the text in pieces that keep their
spaces inside the encoded-words, which every reader joins as they were.
"""

from __future__ import annotations

from email.header import Header
from email.policy import EmailPolicy
from typing import Any


class _WordKeepingPolicy(EmailPolicy):
    def fold(self, name: str, value: Any) -> str:
        if name.lower() != "subject" or str(value).isascii():
            return str(super().fold(name, value))
        encoded = Header(
            str(value), "utf-8", maxlinelen=self.max_line_length, header_name=name
        ).encode(linesep=self.linesep)
        return f"{name}: {encoded}{self.linesep}"

    def fold_binary(self, name: str, value: Any) -> bytes:
        if name.lower() != "subject" or str(value).isascii():
            return bytes(super().fold_binary(name, value))
        return self.fold(name, value).encode("ascii")


SMTP_POLICY = _WordKeepingPolicy(linesep="\r\n")
