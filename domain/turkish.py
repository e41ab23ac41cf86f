"""Comparing Turkish words as people type them: any case, with or without Turkish letters.

`str.lower()` is wrong for Turkish: it turns "İ" into "i" plus a combining dot and "I" into "i"
(Turkish "I" is the capital of dotless "ı"). `fold` lowers with Turkish rules first (İ→i, I→ı),
then writes the letters a keyboard without Turkish letters lacks the way people type them
instead (ç→c, ğ→g, ı→i, ö→o, ş→s, ü→u, and â/î/û without their circumflex), so "HESABIM
KİLİTLENDİ", "hesabım kilitlendi" and "hesabim kilitlendi" are one text. English text only loses
its case.

Turkish adds suffixes to a stem, and a stem ending in p, t, k or ç softens before a vowel
(hesap → hesabım, kilit → kilidi, destek → desteği, çekiç → çekici). `stems` gives the forms a
keyword's last word takes for the prefix match of ingest/categorise.py: the word, and its
softened form when it has one (after folding ç and c are one letter already).
"""

from __future__ import annotations

import unicodedata

_SOFTENED = {"p": "b", "t": "d", "k": "g"}


# Past this many distinct characters the table stops learning (it still answers): what one
# hostile mail full of distinct code points may add to a daemon that lives on stays small.
_PLAIN_LIMIT = 4096


class _Plain(dict[int, str | int | None]):
    """The str.translate table of `fold`: ı→i, ß→ss, a combining mark dropped, any other
    character itself. Learned per character as met: a per-character Python loop was most of
    the cost of categorising a message, and a full table would take a scan of all Unicode."""

    def __missing__(self, code: int) -> str | int | None:
        plain = None if unicodedata.combining(chr(code)) else code
        if len(self) < _PLAIN_LIMIT:
            self[code] = plain
        return plain


_PLAIN = _Plain({ord("ı"): "i", ord("ß"): "ss"})


def fold(text: str) -> str:
    """Turkish-aware lower case, then ASCII for the Turkish letters (see the module's doc)."""
    lowered = text.replace("İ", "i").replace("I", "ı").lower()
    if lowered.isascii():
        return lowered  # NFKD leaves ASCII as it is, and it has no marks, ı or ß
    # NFKD splits ç, ş, ğ, ö, ü, â... into a base letter and a combining mark; the marks go.
    return unicodedata.normalize("NFKD", lowered).translate(_PLAIN)


def stems(word: str) -> tuple[str, ...]:
    """`word` (folded), and its softened form when its last letter softens before a suffix."""
    folded = fold(word)
    last = folded[-1:]
    if last in _SOFTENED and len(folded) > 2:
        return (folded, folded[:-1] + _SOFTENED[last])
    return (folded,)
