"""The reply parser's header search is skipped only where it could find nothing
(ingest/replies.py `_HEADER_WORDS`, issue 19): the answer is the parser's own on real mail and
on generated mixes of header lines, and every attribution pattern the parser uses holds one of
the words the check looks for."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from mailparser_reply.constants import MAIL_LANGUAGES

from ingest.replies import (
    _ATTRIBUTION_WORDS,
    _HEADER_WORDS,
    _PARSER,
    _header_names,
    _header_pattern,
    _parse_reply,
    _parser_view,
)
from tests.test_corpus import corpus_root


def _view(text: str) -> str:
    return "\n".join(_parser_view([line.strip() for line in text.split("\n")])[0])


def _same_as_the_parser(text: str) -> None:
    seen = _view(text)
    assert _parse_reply(seen) == (_PARSER.parse_reply(text=seen) or "")


def test_every_attribution_pattern_holds_a_word_the_check_asks_for() -> None:
    for language in _PARSER.languages:
        pattern = MAIL_LANGUAGES[language]["wrote_header"]
        assert any(word in pattern for word in _ATTRIBUTION_WORDS), language


def test_the_header_names_are_every_language_s() -> None:
    names = set(_header_names(_header_pattern()))
    assert {"From", "Gönderen", "Konu", "Von", "Objet ", "От", "Kime"} <= names
    # Each language's From: block is one group of the expression.
    groups = _header_pattern().count(")[* ]*(?:")
    assert groups == len(_PARSER.languages)


def test_the_answer_is_the_parser_s_on_the_corpus() -> None:
    root = corpus_root()
    checked = skipped = 0
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.stat().st_size > 200_000:
            continue
        text = path.read_bytes().decode("utf-8", "replace").replace("\r\n", "\n")
        body = text.partition("\n\n")[2]
        for sample in (text, body):
            _same_as_the_parser(sample)
            if _HEADER_WORDS.search(_view(sample)) is None:
                skipped += 1
            checked += 1
    # Both ways are taken: with headers in view and without.
    assert checked > 1000 and 0 < skipped < checked


LINES = [
    "Merhaba, çekim talebim hâlâ beklemede.",
    "Teşekkürler",
    "On Mon, 3 Nov 2025 at 10:00, Destek <destek@example.com> wrote:",
    "3 Kas 2025 Pzt, 10:00 tarihinde Destek <destek@example.com> şunu yazdı:",
    "Am 03.11.2025 um 10:00 schrieb Support <s@example.com>:",
    "Le lun. 3 nov. 2025 à 10:00, Support <s@example.com> a écrit :",
    "El lun, 3 nov 2025 a las 10:00, Soporte escribió:",
    "Il giorno lun 3 nov 2025 alle 10:00 Supporto ha scritto:",
    "Op ma 3 nov 2025 om 10:00 schreef Support:",
    "03.11.2025 10:00, Поддержка написал:",
    "From: Destek <destek@example.com>",
    "Gönderen: Destek <destek@example.com>",
    "Sent: Monday, November 3, 2025 10:00 AM",
    "Gönderildi: 3 Kasım 2025 Pazartesi 10:00",
    "To: ayse@example.com.tr",
    "Kime: ayse@example.com.tr",
    "Subject: Re: [TR-AB12-CD34] Çekim",
    "Konu: Ynt: [TR-AB12-CD34] Çekim",
    "*From:* Destek",
    "> From: Destek",
    "> > Von: Support",
    "De : Support",
    "Objet : Retrait",
    "-----Original Message-----",
    "----- original message -----",
    "A: someone",
    "Data: 3/11/2025",
    "Saat 10:30 gibi aradım: cevap yok.",
    "https://example.com/hesap: giriş",
    "> alıntı",
    "",
    "________________________________",
]


@given(st.lists(st.sampled_from(LINES), max_size=14))
def test_the_answer_is_the_parser_s_on_mixes_of_header_lines(lines: list[str]) -> None:
    _same_as_the_parser("\n".join(lines))


def test_a_quoted_reply_is_still_cut() -> None:
    text = (
        "Tamam, teşekkürler.\n\n"
        "On Mon, 3 Nov 2025 at 10:00, Destek <d@example.com> wrote:\n> Merhaba"
    )
    assert _parse_reply(_view(text)) == "Tamam, teşekkürler."
    assert _parse_reply(_view("Sadece bir soru.\nSaat 10:30")) == "Sadece bir soru.\nSaat 10:30"
