"""Which kind of request a new ticket is: keyword rules in Turkish and English.

Each category has keywords (lowercase, matched as word prefixes, so "çekim" also finds
"çekimim"); a keyword in the subject counts twice. The highest score wins; no keyword at all, or
a tie, is "other". Admins replace a category's keywords in `[categories]`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

DEFAULT_KEYWORDS: dict[str, tuple[str, ...]] = {
    "account": (
        "şifre",
        "parola",
        "giriş yap",
        "giriş yapamıyorum",
        "hesabım kilit",
        "hesap kilit",
        "hesabıma giremiyorum",
        "doğrulama kodu",
        "iki adımlı",
        "password",
        "log in",
        "login",
        "locked",
        "sign in",
        "two-factor",
        "2fa",
        "reset",
    ),
    "payment": (
        "para çekme",
        "çekim",
        "çekme talebi",
        "yatırım",
        "yatırdım",
        "para yatır",
        "havale",
        "eft",
        "papara",
        "iade",
        "ödeme",
        "withdraw",
        "deposit",
        "payment",
        "refund",
        "payout",
        "transfer",
    ),
    "bonus": (
        "bonus",
        "promosyon",
        "freespin",
        "free spin",
        "kampanya",
        "çevrim",
        "promotion",
        "cashback",
        "kayıp bonusu",
        "hoş geldin",
    ),
    "technical": (
        "hata",
        "çalışmıyor",
        "açılmıyor",
        "donuyor",
        "kapanıyor",
        "uygulama",
        "yüklenmiyor",
        "bağlantı",
        "error",
        "crash",
        "bug",
        "not working",
        "app",
        "loading",
        "freez",
    ),
    "kyc": (
        "kimlik",
        "kyc",
        "doğrulama",
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
    ),
    "complaint": (
        "şikayet",
        "şikâyet",
        "memnun değilim",
        "rezalet",
        "mağdur",
        "tüketici",
        "avukat",
        "complaint",
        "unacceptable",
        "lawyer",
        "disappointed",
        "scam",
        "dolandırıcı",
    ),
}

_WORD_START = r"(?<![\w])"


def _compile(keywords: Mapping[str, tuple[str, ...]]) -> dict[str, re.Pattern[str]]:
    return {
        category: re.compile(
            "|".join(_WORD_START + re.escape(word) for word in sorted(words, key=len, reverse=True))
        )
        for category, words in keywords.items()
        if words
    }


class Categoriser:
    def __init__(self, overrides: Mapping[str, tuple[str, ...]] | None = None) -> None:
        self.patterns = _compile({**DEFAULT_KEYWORDS, **(overrides or {})})

    def categorise(self, subject: str, text: str) -> str:
        subject_l, text_l = subject.lower(), text.lower()[:5000]
        scores = {
            category: 2 * len(pattern.findall(subject_l)) + len(pattern.findall(text_l))
            for category, pattern in self.patterns.items()
        }
        best = max(scores.values(), default=0)
        winners = [c for c, score in scores.items() if score == best]
        return winners[0] if best and len(winners) == 1 else "other"
