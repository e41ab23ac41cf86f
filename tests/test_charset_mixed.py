"""Text that is mostly in its declared charset keeps it: only the bytes that are not are guessed.

One invalid byte in a part declared UTF-8 (a mail gateway that appends a latin-1 footer) made
ingest/charsets.py read the whole part as windows-1254, so every Turkish letter the customer wrote
became mojibake; ingest/encoded_words.py reads the encoded words mailers write broken (cut before
their `?=`, a character split across two words, base64 of the wrong length), which were shown as
raw `=?utf-8?...` text or as mojibake.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from ingest.charsets import decode_bytes
from ingest.journal import Arrival
from ingest.parsing import decode_header_value, parse_message
from tests.helpers import DESK
from ticketd.state import State
from ticketd.views import show_ticket

CORPUS = Path(os.environ.get("TICKETD_CORPUS", Path(__file__).parents[2] / "shared" / "corpus"))

WRITTEN = (
    "Merhaba, çekim talebim hâlâ onaylanmadı. Şifremi değiştirdim, lütfen kontrol edin.\n\n"
    "İyi günler,\nHakan Çelik\n\n"
)
# What the gateway appended, in latin-1 / windows-1254, after the customer's UTF-8.
FOOTER = b"-- \nBu e-posta gizlidir. Confidential \xa9 2026 \xd6rnek A.\xde.\n"

GATEWAY_MAIL = (
    b"From: =?utf-8?q?Hakan_=C3=87elik?= <hakan@firma.com.tr>\r\n"
    b"To: " + DESK.encode() + b"\r\n"
    b"Subject: =?utf-8?q?=C3=87ekim_talebi?=\r\n"
    b"Date: Mon, 7 Dec 2026 04:11:00 +0000\r\n"
    b"Message-ID: <stray-1@firma.com.tr>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n\r\n" + WRITTEN.encode() + FOOTER
)


def test_a_utf8_part_with_a_latin1_footer_keeps_the_customers_turkish() -> None:
    text = decode_bytes(WRITTEN.encode() + FOOTER, "utf-8")
    assert text == WRITTEN + "-- \nBu e-posta gizlidir. Confidential © 2026 Örnek A.Ş.\n"


def test_the_gateway_mail_reaches_its_ticket_readable(state: State) -> None:
    state.journal.accept(Arrival(raw=GATEWAY_MAIL, source="test", envelope_to=(DESK,)))
    [result] = state.worker.drain()
    assert result.ticket_ref is not None, result.detail
    ticket = show_ticket(state.db, result.ticket_ref)
    assert ticket is not None
    [message] = [m for m in ticket["messages"] if m["direction"] == "in"]
    assert "çekim talebim hâlâ onaylanmadı" in message["text"]
    assert "Hakan Çelik" in message["text"]
    assert ticket["subject"] == "Çekim talebi"


def test_a_corpus_mail_with_one_broken_utf8_byte_stays_in_cyrillic() -> None:
    # mail-parser's mail_test_6: a Russian newsletter whose text/plain part, declared UTF-8,
    # lost one byte of "т.к." ("\xd1f.\xd0\xba."); the rest of its 8 KB is valid UTF-8.
    raw = (CORPUS / "mail-parser" / "mails" / "mail_test_6").read_bytes()
    text = parse_message(raw).full_text
    assert "Не пересылайте данное письмо, Ñf.к. в нем содержатся ссылки" in text
    assert "© 2008-2017, Профессионалы.ru, Все права защищены" in text


def test_turkish_outlook_text_labelled_utf8_is_still_read_whole_as_windows_1254() -> None:
    # "İ’" is \xdd\x92 in windows-1254, which is also a well-formed UTF-8 pair (U+0752): the
    # text is mostly not UTF-8, so that pair is not read as one.
    written = "ŞİRKETİ’NİN ödemesi gelmedi, ŞİKAYETÇİYİM"
    assert decode_bytes(written.encode("windows-1254"), "utf-8") == written
    assert decode_bytes(written.encode("windows-1254"), None) == written
    assert decode_bytes(written.encode("windows-1254"), "us-ascii") == written


def test_undeclared_8bit_mixing_utf8_and_windows_1254_keeps_both() -> None:
    data = "Çağrı Öztürk ".encode() + "Şikayet".encode("windows-1254")
    assert decode_bytes(data, None) == "Çağrı Öztürk Şikayet"


def test_another_declared_charset_keeps_its_text_around_a_bad_byte() -> None:
    data = "テスト".encode("shift_jis") + b"\xff" + "です".encode("shift_jis")
    assert decode_bytes(data, "Shift_JIS") == "テストÿです"


def test_a_charset_with_a_language_is_its_charset() -> None:
    assert decode_bytes("Şikayet".encode("iso-8859-9"), "iso-8859-9*tr") == "Şikayet"


# --- encoded words ----------------------------------------------------------------------------


def _b(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_an_encoded_word_cut_before_its_end_is_read() -> None:
    assert decode_header_value("=?utf-8?q?=C3=87ekim_tal") == "Çekim tal"
    assert decode_header_value("Re: [#7KQM-X3P9] =?utf-8?q?=C3=87ekim_talebi?") == (
        "Re: [#7KQM-X3P9] Çekim talebi"
    )
    # Cut inside an escape, or between the two bytes of "ı": what is whole is kept.
    assert decode_header_value("=?utf-8?q?=C3=87ekim_tal=C4") == "Çekim tal"
    assert decode_header_value("=?utf-8?q?=C3=87ekim_tal=C") == "Çekim tal"
    cut = _b("Çekim talebi ".encode() + b"\xc4")
    assert decode_header_value(f"=?UTF-8?B?{cut}") == "Çekim talebi"
    assert decode_header_value(f"=?UTF-8?B?{cut[:-1]}") == "Çekim talebi"


def test_a_cut_word_of_no_known_charset_is_left_as_text() -> None:
    assert decode_header_value("Fiyat =?abc?q?5") == "Fiyat =?abc?q?5"
    assert decode_header_value("Soru =?") == "Soru =?"


def test_a_character_split_across_two_encoded_words_is_one_character() -> None:
    # Outlook and PHP's mb_encode_mimeheader cut a long subject at a byte count; the labels of
    # one charset are not always spelled alike.
    whole = "Çekim talebim hâlâ bekliyor".encode()
    cut = whole.index("â".encode()) + 1  # between the two bytes of "â"
    value = f"=?utf8?B?{_b(whole[:cut])}?=\r\n =?UTF-8?B?{_b(whole[cut:])}?="
    assert decode_header_value(value) == "Çekim talebim hâlâ bekliyor"
    assert decode_header_value("=?utf-8?q?Hesab=C4?= =?Utf-8?Q?=B1m?=") == "Hesabım"


def test_a_split_character_in_a_long_subject_is_one_character() -> None:
    # Long headers are decoded in bounded pieces (parsing._pieces): a split that falls at a
    # piece's edge is joined as well.
    words = [f"=?utf-8?q?{'a' * 60}?=" for _ in range(16)]
    words += ["=?utf-8?q?=C4?=", "=?utf-8?q?=B1?="] * 20
    value = " ".join(words)
    assert decode_header_value(value) == "a" * 960 + "ı" * 20


def test_base64_words_of_the_wrong_length_are_read() -> None:
    # One word whose padding is wrong cost the whole subject, shown raw.
    value = f"=?utf-8?b?{_b('Çekim '.encode())}x?= =?utf-8?b?{_b(b'talebi')}?= hakkında"
    assert decode_header_value(value) == "Çekim talebi hakkında"
    joined = _b("Şikayet".encode()) + _b(" ve öneri".encode())
    assert decode_header_value(f"=?utf-8?b?{joined}?=") == "Şikayet ve öneri"


def test_a_base64_word_with_a_character_base64_has_not_is_left_as_it_came() -> None:
    # Which byte "$" stood for cannot be known; dropping it would shift every byte after it.
    value = "=?UTF-8?B?44G+4$G/44KA44KB44KC?="
    assert decode_header_value(value) == value
