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

_ASCII = str.maketrans({"ı": "i", "ß": "ss"})
_SOFTENED = {"p": "b", "t": "d", "k": "g"}


def fold(text: str) -> str:
    """Turkish-aware lower case, then ASCII for the Turkish letters (see the module's doc)."""
    lowered = text.replace("İ", "i").replace("I", "ı").lower()
    # NFKD splits ç, ş, ğ, ö, ü, â... into a base letter and a combining mark; the marks go.
    decomposed = unicodedata.normalize("NFKD", lowered)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return plain.translate(_ASCII)


def stems(word: str) -> tuple[str, ...]:
    """`word` (folded), and its softened form when its last letter softens before a suffix."""
    folded = fold(word)
    last = folded[-1:]
    if last in _SOFTENED and len(folded) > 2:
        return (folded, folded[:-1] + _SOFTENED[last])
    return (folded,)
