"""Which kind of request a new ticket is: keyword rules in Turkish and English.

Text and keywords are folded first (domain/turkish.py): Turkish case rules (İ→i, I→ı), then
ASCII for the Turkish letters, so "HESABIM KİLİTLENDİ", "hesabim kilitlendi" and "hesabım
kilitlendi" are one text. Each word of a keyword matches a word that starts with it, since
Turkish adds suffixes ("çekim" finds "çekimim", "para çek" finds "para çekemiyorum"), and a word
ending in p, t, k or ç also matches its softened form ("hesap" finds "hesabım", "kimlik"
"kimliğim"). A keyword in the subject counts twice. The most hits win, and of as many hits the
longer matched text; no keyword at all, or a tie, is "other". Admins replace a category's
keywords in `[categories]` (folded the same way).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from domain.turkish import fold, stems

DEFAULT_KEYWORDS: dict[str, tuple[str, ...]] = {
    "account": (
        "şifre",
        "parola",
        "giriş yap",
        "girişte",
        "oturum aç",
        "hesap kilit",
        "hesabımın kilid",
        "hesaba gir",
        "hesabıma gir",
        "hesap askı",
        "hesabım askı",
        "hesabım bloke",
        "hesabımı kapat",
        "kullanıcı adı",
        "doğrulama kodu",
        "verification code",
        "sms kodu",
        "iki adımlı",
        "telefon numaramı",
        "e-posta adresimi",
        "password",
        "log in",
        "logged in",
        "login",
        "locked",
        "sign in",
        "two-factor",
        "2fa",
        "username",
        "account suspended",
        "close my account",
        "email address",
    ),
    "payment": (
        "para çek",
        "paramı çek",
        "para çekme",
        "çekim",
        "çekme talebi",
        "çekilmiş",
        "yatırım",
        "yatırdım",
        "para yatır",
        "havale",
        "eft",
        "papara",
        "iade",
        "ödeme",
        "para düş",
        "withdraw",
        "deposit",
        "payment",
        "refund",
        "payout",
        "transfer",
        "charged",
    ),
    "bonus": (
        "bonus",
        "promosyon",
        "freespin",
        "free spin",
        "kampanya",
        "çevrim",
        "cashback",
        "promotion",
        "kayıp bonusu",
        "yatırım bonus",
        "hoş geldin",
        "welcome bonus",
        "wagering",
    ),
    "technical": (
        "hata",
        "çalışmıyor",
        "açılmıyor",
        "donuyor",
        "donup",
        "kapanıyor",
        "çöküyor",
        "uygulama",
        "yüklenmiyor",
        "yükleniyor",
        "bağlantı",
        "oynatılmıyor",
        "bozuk",
        "takılıyor",
        "indiremiyorum",
        "yavaş",
        "error",
        "crash",
        "bug",
        "not working",
        "app",
        "loading",
        "freez",
        "blank screen",
        "connection",
        "broken",
    ),
    "kyc": (
        "kimlik",
        "kyc",
        "doğrulama",
        "doğrulamak",
        "belge",
        "pasaport",
        "ehliyet",
        "ikametgah",
        "selfie",
        "fatura",
        "identity",
        "verification",
        "verify",
        "passport",
        "document",
        "proof of address",
        "driving licence",
        "id verification",
    ),
    "complaint": (
        "şikayet",
        "şikâyet",
        "memnun değil",
        "rezalet",
        "mağdur",
        "tüketici",
        "avukat",
        "kaba davran",
        "haksız",
        "kabul edilemez",
        "kötü hizmet",
        "dolandır",
        "complaint",
        "complain",
        "unacceptable",
        "lawyer",
        "disappointed",
        "scam",
        "rude",
        "terrible",
        "worst",
    ),
}

_WORD_START = r"(?<![\w])"
# The same before a word character, and ten times faster: re tries a lookbehind at every
# position of the text, a word boundary only where one is.
_BOUNDARY = r"\b"


def keyword_pattern(keyword: str) -> str:
    """A keyword as a regular expression over folded text: each word the start of a word, in
    its written or softened form, the words apart by any space."""
    words = [f"(?:{'|'.join(re.escape(s) for s in stems(w))})\\w*" for w in keyword.split()]
    start = _BOUNDARY if re.match(r"\w", keyword.strip()) else _WORD_START
    return start + r"\s+".join(words)


def _compile(keywords: Mapping[str, tuple[str, ...]]) -> dict[str, re.Pattern[str]]:
    return {
        category: re.compile(
            "|".join(keyword_pattern(w) for w in sorted(words, key=len, reverse=True))
        )
        for category, words in keywords.items()
        if words
    }


def _score(in_subject: list[str], in_text: list[str]) -> tuple[int, int]:
    """(hits, a hit in the subject counting twice; letters matched). Each text is searched once
    per category: the search is most of the cost of categorising."""
    return 2 * len(in_subject) + len(in_text), sum(map(len, in_subject)) + sum(map(len, in_text))


class Categoriser:
    def __init__(self, overrides: Mapping[str, tuple[str, ...]] | None = None) -> None:
        self.patterns = _compile({**DEFAULT_KEYWORDS, **(overrides or {})})

    def categorise(self, subject: str, text: str) -> str:
        subject_l, text_l = fold(subject), fold(text[:5000])
        # (hits, letters matched): of two categories with as many hits, the one whose keywords
        # said more wins ("yatırım bonusu" is a bonus, though "yatırım" alone is a payment).
        scores = {
            category: _score(pattern.findall(subject_l), pattern.findall(text_l))
            for category, pattern in self.patterns.items()
        }
        best = max(scores.values(), default=(0, 0))
        winners = [c for c, score in scores.items() if score == best]
        return winners[0] if best[0] and len(winners) == 1 else "other"
