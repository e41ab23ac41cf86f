"""The new text of a reply, with quoted history and client signatures removed.

mail-parser-reply knows the reply headers of the common clients in many languages but not in
Turkish; the Turkish forms are registered here (Gmail: "... tarihinde ... şunu yazdı:",
Outlook: "Gönderen: / Gönderildi: / Kime: / Konu:").
"""

from __future__ import annotations

from mailparser_reply import EmailReplyParser
from mailparser_reply.constants import MAIL_LANGUAGES, QUOTED_MATCH_INCLUDE

MAIL_LANGUAGES.setdefault(
    "tr",
    {
        "wrote_header": r"^(" + QUOTED_MATCH_INCLUDE + r".{0,200}?tarihinde.{0,200}?(?:şunu )?yazdı:)$",
        "from_header": r"((?:(?:^|\n|\n"
        + QUOTED_MATCH_INCLUDE
        + r")[* ]*(?:Gönderen|Gönderildi|Kime|Konu|Tarih|Bilgi|Gönderilme Tarihi):[ *]*"
        r"(?:\s{,2}).*){2,}(?:\n.*){,1})",
        "disclaimers": [r"(?:Gizlilik|Yasal) (?:Uyarısı|Bildirimi):"],
        "signatures": ["Saygılarımla", "Saygılarımızla", "İyi çalışmalar"],
        "sent_from": "iPhone'umdan gönderildi|Android için Outlook",
    },
)

_PARSER = EmailReplyParser(languages=["tr", "en", "de", "fr", "es", "it", "nl"])


def latest_reply(text: str) -> str:
    """The text the sender wrote this time; the whole text when nothing could be told apart."""
    if not text.strip():
        return ""
    try:
        reply = _PARSER.parse_reply(text=text)
    except Exception:  # the parser's regexes on hostile input: keep everything, lose nothing
        return text.strip()
    reply = (reply or "").strip()
    return reply or text.strip()
