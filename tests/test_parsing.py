"""Unit tests of ingest.parsing, ingest.replies and ingest.classify on mail the tests build.

The shared corpus has no Turkish mail; these messages are what Turkish desks receive: ISO-8859-9
and windows-1254 bodies, RFC 2047 encoded words, 8-bit headers with no declared charset (Turkish
Outlook), RFC 2231 filenames, HTML-only bodies, and replies quoted under Gmail's and Outlook's
Turkish headers. Each test fails if the behaviour it names breaks.
"""

from __future__ import annotations

import base64
from email.header import Header
from email.message import EmailMessage

import pytest

from domain.message import ParsedMessage
from ingest.charsets import decode_bytes
from ingest.classify import Kind, classify, no_automatic_answer, suppresses_auto_reply
from ingest.parsing import decode_header_value, html_to_text, parse_message
from ingest.replies import latest_reply
from tests.helpers import customer_mail

DESK = "destek@example.com"
OWN = (DESK,)
TURKISH = "Şikayetim: çekim işlemi ğüşıöç İĞÜŞÖÇ"


def raw_mail(headers: str, body: bytes, charset: str = "utf-8") -> bytes:
    """A message from header lines (str, ASCII unless a test wants 8-bit) and body bytes."""
    return headers.strip("\n").replace("\n", "\r\n").encode(charset) + b"\r\n\r\n" + body


def parse(headers: str, body: bytes = b"Merhaba\r\n", charset: str = "utf-8") -> ParsedMessage:
    return parse_message(raw_mail(headers, body, charset))


# --- charsets -------------------------------------------------------------------------------


def test_iso_8859_9_body_and_encoded_subject() -> None:
    subject = "=?ISO-8859-9?Q?=DEikayetim=3A_=E7ekim_i=FElemi?="
    message = parse(
        f"From: musteri@example.com.tr\nTo: {DESK}\nSubject: {subject}\nMIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=ISO-8859-9\nContent-Transfer-Encoding: 8bit",
        TURKISH.encode("iso-8859-9"),
    )
    assert message.subject == "Şikayetim: çekim işlemi"
    assert message.text == TURKISH
    assert message.full_text == TURKISH


def test_windows_1254_body_with_its_own_characters() -> None:
    body = "Bakiyem 100 € eksik – “acil” lütfen. Ğğ Şş İı"
    message = parse(
        "From: a@example.com.tr\nSubject: x\nContent-Type: text/plain; charset=windows-1254\n"
        "Content-Transfer-Encoding: quoted-printable",
        _qp(body.encode("windows-1254")),
    )
    assert message.text == body


def _qp(data: bytes) -> bytes:
    import quopri

    return quopri.encodestring(data)


def _b(text: str) -> str:
    return "=?UTF-8?B?" + base64.b64encode(text.encode()).decode() + "?="


def test_utf8_encoded_words_in_subject_and_names() -> None:
    # A long subject folded over encoded words, the way mail clients write it: the space between
    # two words travels inside the first encoded word, the folding white space is not text.
    subject = f"{_b('Para çekme talebim ')}\n {_b('hâlâ bekliyor: ğüşiöç ')}\n {_b('İĞÜŞÖÇ')}"
    message = parse(
        f"From: {_b('Ayşe Yılmaz')} <Ayse@Musteri.com.tr>\nTo: Destek Ekibi <{DESK}>\n"
        f"Cc: =?utf-8?q?=C3=87a=C4=9Fr=C4=B1_=C3=96zt=C3=BCrk?= <cagri@example.com.tr>\n"
        f"Subject: {subject}"
    )
    assert message.sender.name == "Ayşe Yılmaz"
    assert message.sender.email == "ayse@musteri.com.tr"
    assert message.cc[0].name == "Çağrı Öztürk"
    assert message.subject == "Para çekme talebim hâlâ bekliyor: ğüşiöç İĞÜŞÖÇ"


def test_adjacent_encoded_words_join_without_spaces_and_keep_plain_spaces() -> None:
    value = "=?UTF-8?B?xZ5pa2F5ZXQ=?= =?UTF-8?Q?_ve_=C3=B6neri?= hakkında"
    assert decode_header_value(value) == "Şikayet ve öneri hakkında"


def test_undeclared_8bit_headers_in_windows_1254() -> None:
    # Turkish Outlook writes raw windows-1254 bytes into headers, with no encoded words.
    message = parse(
        f"From: Ayşe Yılmaz <ayse@example.com.tr>\nTo: {DESK}\nSubject: Şikayet: çekim işlemi\n"
        "Content-Type: text/plain; charset=windows-1254",
        "Param gelmedi, ŞİKAYETÇİYİM".encode("windows-1254"),
        charset="windows-1254",
    )
    assert message.subject == "Şikayet: çekim işlemi"
    assert message.sender.name == "Ayşe Yılmaz"
    assert message.sender.email == "ayse@example.com.tr"
    assert message.header("subject") == "Şikayet: çekim işlemi"
    assert message.text == "Param gelmedi, ŞİKAYETÇİYİM"


def test_undeclared_8bit_headers_in_utf8() -> None:
    message = parse("From: Gökhan <g@example.com.tr>\nSubject: Hesabım kilitlendi")
    assert message.subject == "Hesabım kilitlendi"
    assert message.sender.name == "Gökhan"


def test_decode_header_value_reads_the_bytes_of_a_header_object() -> None:
    # compat32 hands out such a Header for 8-bit values; str() of it would print U+FFFD.
    header = Header(
        "Şikayet".encode("windows-1254").decode("ascii", "surrogateescape"),
        charset="unknown-8bit",
    )
    assert decode_header_value(header) == "Şikayet"


def test_decode_bytes_falls_back_on_unknown_and_wrong_charsets() -> None:
    assert decode_bytes("ğüş".encode(), "x-no-such-charset") == "ğüş"
    assert decode_bytes("ğüş".encode("windows-1254"), "us-ascii") == "ğüş"
    assert decode_bytes("ğüş".encode(), "unknown-8bit") == "ğüş"
    assert decode_bytes("ğüş".encode("windows-1254"), "unknown-8bit") == "ğüş"
    assert decode_bytes(b"\x81\x8d\x8f", "utf-8") == "\x81\x8d\x8f"  # never raises


# --- attachments ----------------------------------------------------------------------------


def _with_attachment(disposition: str, charset: str = "utf-8") -> bytes:
    headers = (
        "From: a@example.com.tr\nSubject: Kimlik\nMIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="b1"'
    )
    body = (
        "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nKimliğim ekte.\r\n"
        f"--b1\r\nContent-Type: application/pdf\r\nContent-Disposition: {disposition}\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b1--\r\n"
    ).encode(charset)
    return raw_mail(headers, body)


@pytest.mark.parametrize(
    "disposition",
    [
        "attachment; filename*=UTF-8''kimlik_%C3%B6n_y%C3%BCz%C3%BC_%C4%9F%C5%9F%C4%B1.pdf",
        "attachment; filename*0*=UTF-8''kimlik_%C3%B6n_; filename*1*=y%C3%BCz%C3%BC_%C4%9F%C5%9F"
        "%C4%B1.pdf",
        "attachment; filename*=ISO-8859-9'tr'kimlik_%F6n_y%FCz%FC_%F0%FE%FD.pdf",
        'attachment; filename="=?UTF-8?B?a2ltbGlrX8O2bl95w7x6w7xfxJ/Fn8SxLnBkZg==?="',
    ],
    ids=["rfc2231-utf8", "rfc2231-continuations", "rfc2231-iso-8859-9", "rfc2047-in-quotes"],
)
def test_attachment_filenames_with_turkish_characters(disposition: str) -> None:
    message = parse_message(_with_attachment(disposition))
    assert [(a.filename, a.content_type, a.size) for a in message.attachments] == [
        ("kimlik_ön_yüzü_ğşı.pdf", "application/pdf", 9)
    ]
    assert message.text == "Kimliğim ekte."


def test_undeclared_8bit_attachment_filename() -> None:
    raw = _with_attachment('attachment; filename="kimlik_ön_yüzü_ğşı.pdf"', charset="windows-1254")
    (attachment,) = parse_message(raw).attachments
    assert attachment.filename == "kimlik_ön_yüzü_ğşı.pdf"


# --- HTML ------------------------------------------------------------------------------------


HTML_ONLY = """<html><head><title>Başlık</title>
<style>p { color: red; }</style><script>alert("x")</script></head>
<body><p>Merhaba,</p><p>Para çekme
talebim &quot;3 gündür&quot; beklemede &amp; cevap yok.</p>
<div>Saygılarımla,<br>Ayşe</div><script type="text/javascript">var gizli = 1;</script>
</body></html>"""


def test_html_only_body_is_read_without_scripts_and_styles() -> None:
    message = parse(
        "From: a@example.com.tr\nSubject: x\nContent-Type: text/html; charset=utf-8",
        HTML_ONLY.encode(),
    )
    assert message.full_text == (
        'Merhaba,\n\nPara çekme talebim "3 gündür" beklemede & cevap yok.\n\nSaygılarımla,\nAyşe'
    )
    for hidden in ("alert", "color", "gizli", "Başlık"):
        assert hidden not in message.full_text


def test_html_to_text_survives_an_unclosed_head_and_keeps_pre() -> None:
    assert html_to_text("<head><title>x</title><body><p>Görünür</p>") == "Görünür"
    assert html_to_text("<pre>a\nb</pre><p>c\nd</p>") == "a\nb\n\nc d"


def test_plain_part_wins_over_html_alternative() -> None:
    mail = EmailMessage()
    mail["From"] = "a@example.com.tr"
    mail["Subject"] = "x"
    mail.set_content("Düz metin")
    mail.add_alternative("<p>HTML metin</p>", subtype="html")
    assert parse_message(mail.as_bytes()).text == "Düz metin"


# --- quoted replies --------------------------------------------------------------------------

QUOTED = "> Talebiniz alındı. Referans numaranız: TKT-7H3K-Q9PX.\n> Destek Ekibi\n"


def test_gmail_turkish_quote_header_is_removed() -> None:
    body = (
        "Merhaba,\nParam hâlâ hesabıma geçmedi.\n\n"
        "12 Mar 2024 Sal, 10:04 tarihinde Destek <destek@example.com> şunu yazdı:\n\n" + QUOTED
    )
    assert latest_reply(body) == "Merhaba,\nParam hâlâ hesabıma geçmedi."


def test_gmail_turkish_quote_header_folded_over_two_lines_is_removed() -> None:
    body = (
        "Param hâlâ gelmedi.\n\n"
        "Sal, 12 Mar 2024 tarihinde 10:04 saatinde Destek Ekibi <destek@example.com>\n"
        "şunu yazdı:\n\n" + QUOTED
    )
    assert latest_reply(body) == "Param hâlâ gelmedi."


@pytest.mark.parametrize(
    "attribution",
    [
        # Gmail's Turkish attribution wrapped before its tail: the address and date above,
        # "tarihinde şunu yazdı:" or "şunu yazdı:" alone below.
        "Destek Ekibi <destek@example.com>, 12 Mar 2024 Sal, 10:04\ntarihinde şunu yazdı:",
        "Destek Ekibi <destek@example.com>, 12 Mar 2024 Sal 10:04 tarihinde\nşunu yazdı:",
        "12 Mar 2024 Sal, 10:04 tarihinde Destek <destek@example.com> şunu\nyazdı:",
        "On Tue, 12 Mar 2024 at 10:04, Support <destek@example.com>\nwrote:",
    ],
)
def test_an_attribution_wrapped_before_its_tail_is_removed_whole(attribution: str) -> None:
    body = f"Param hâlâ gelmedi.\n\n{attribution}\n\n" + QUOTED
    assert latest_reply(body) == "Param hâlâ gelmedi."


def test_a_line_of_text_above_a_bare_wrote_tail_is_kept() -> None:
    # Neither a date nor an address: the line is the writer's, whatever follows it.
    body = "Lütfen yardım edin.\nşunu yazdı:\n" + QUOTED
    assert latest_reply(body) == "Lütfen yardım edin."


def test_a_name_above_a_whole_attribution_stays() -> None:
    body = "Teşekkürler\nAlex\nOn Tue, 12 Mar 2024 at 10:04, Bob <b@example.com> wrote:\n" + QUOTED
    assert latest_reply(body) == "Teşekkürler\nAlex"


def test_outlook_turkish_headers_are_removed() -> None:
    body = (
        "Belgeleri tekrar gönderiyorum.\n\nAyşe\n\n"
        "________________________________\n"
        "Gönderen: Destek <destek@example.com>\n"
        "Gönderildi: 12 Mart 2024 Salı 10:04\n"
        "Kime: Ayşe Yılmaz <ayse@example.com.tr>\n"
        "Konu: RE: [TKT-7H3K-Q9PX] Kimlik doğrulama\n\n"
        "Kimlik belgenizin ön yüzü okunamıyor.\n"
    )
    message = parse(
        "From: ayse@example.com.tr\nSubject: RE: [TKT-7H3K-Q9PX] Kimlik doğrulama\n"
        "Content-Type: text/plain; charset=utf-8",
        body.encode(),
    )
    assert message.text == "Belgeleri tekrar gönderiyorum.\n\nAyşe"
    assert "Kimlik belgenizin" in message.full_text


def test_outlook_turkish_headers_in_an_html_reply_are_removed() -> None:
    html = (
        "<div>Belgeleri tekrar gönderiyorum.</div><div><br></div>"
        "<div style='border:none;border-top:solid #E1E1E1 1.0pt'><p><b>Gönderen:</b> Destek "
        "&lt;destek@example.com&gt;<br><b>Gönderildi:</b> 12 Mart 2024 Salı\n10:04<br>"
        "<b>Kime:</b> Ayşe<br><b>Konu:</b> RE: Kimlik</p></div>"
        "<p>Kimlik belgenizin ön yüzü okunamıyor.</p>"
    )
    message = parse(
        "From: ayse@example.com.tr\nSubject: RE: Kimlik\nContent-Type: text/html; charset=utf-8",
        html.encode(),
    )
    assert message.text == "Belgeleri tekrar gönderiyorum."


def test_a_reply_below_the_quote_is_kept() -> None:
    body = "Destek <destek@example.com> şunu yazdı:\n" + QUOTED + "\nTeşekkürler, anladım.\n"
    assert latest_reply(body) == "Teşekkürler, anladım."


def test_a_message_with_header_like_lines_of_its_own_keeps_them() -> None:
    body = "Konu: para çekme\nTarih: 12.03.2024\nTutar: 500 TL\n\nLütfen kontrol edin."
    assert latest_reply(body) == body


# --- robustness ------------------------------------------------------------------------------


def test_missing_boundary_keeps_the_text() -> None:
    message = parse(
        "From: a@example.com.tr\nSubject: x\nContent-Type: multipart/mixed",
        b"Merhaba, s\xc4\xb1n\xc4\xb1r yok.\r\n",
    )
    assert message.text == "Merhaba, sınır yok."


def test_hostile_address_header_and_deep_nesting_do_not_raise() -> None:
    # One phrase of 3000 encoded words: the standard library's address parser recurses out.
    to = "\n\t".join(["=?utf-8?Q?date=3E2017=3C/pr?="] * 3000) + " <x@example.com>"
    nested = "".join(
        f'--b{i}\r\nContent-Type: multipart/mixed; boundary="b{i + 1}"\r\n\r\n' for i in range(300)
    )
    raw = raw_mail(
        f"From: a@example.com.tr\nTo: {to}\nSubject: x\n"
        'Content-Type: multipart/mixed; boundary="b0"',
        (nested + "--b300\r\nContent-Type: text/plain\r\n\r\nderin\r\n").encode(),
    )
    message = parse_message(raw)
    assert message.sender.email == "a@example.com.tr"
    assert "x@example.com" in [a.email for a in message.to]


def test_byte_order_mark_before_the_headers() -> None:
    raw = b"\xef\xbb\xbf" + raw_mail("From: a@example.com.tr\nSubject: BOM", b"Merhaba\r\n")
    message = parse_message(raw)
    assert (message.sender.email, message.subject) == ("a@example.com.tr", "BOM")


# --- classification --------------------------------------------------------------------------

PERSON = "From: Ayşe <ayse@example.com.tr>\nTo: destek@example.com\nSubject: Para çekme"


def kind_of(headers: str, body: bytes = b"Merhaba\r\n") -> tuple[Kind, str]:
    verdict = classify(parse(headers, body), OWN)
    return verdict.kind, verdict.reason


def test_a_person_writing_is_a_customer() -> None:
    assert kind_of(PERSON)[0] is Kind.CUSTOMER
    assert kind_of(PERSON + "\nAuto-Submitted: no")[0] is Kind.CUSTOMER


@pytest.mark.parametrize(
    ("extra", "kind"),
    [
        ("Auto-Submitted: auto-replied", Kind.AUTO_REPLY),
        ("Auto-Submitted: auto-generated", Kind.AUTO_REPLY),
        ("X-Autoreply: yes", Kind.AUTO_REPLY),
        ("Precedence: auto_reply", Kind.AUTO_REPLY),
        ("Precedence: bulk", Kind.BULK),
        ("Precedence: junk", Kind.BULK),
        ("List-Id: <duyuru.example.com>", Kind.LIST),
        ("List-Unsubscribe: <mailto:cik@example.com>", Kind.LIST),
        ("Return-Path: <>", Kind.BOUNCE),
    ],
)
def test_header_signs_of_automatic_mail(extra: str, kind: Kind) -> None:
    assert kind_of(PERSON + "\n" + extra)[0] is kind


def test_a_vacation_reply_with_an_empty_return_path_is_an_auto_reply() -> None:
    kind, reason = kind_of(
        "Return-Path: <>\nFrom: Ayşe <ayse@example.com.tr>\nSubject: Otomatik yanıt: Para çekme\n"
        "Auto-Submitted: auto-replied"
    )
    assert (kind, reason) == (Kind.AUTO_REPLY, "Auto-Submitted: auto-replied")


def test_outlook_auto_reply_and_x_auto_response_suppress() -> None:
    # An Outlook out-of-office reply: X-Auto-Response-Suppress and an auto-reply subject.
    kind, _ = kind_of(
        "From: ayse@example.com.tr\nSubject: Otomatik yanıt: Para çekme\n"
        "X-Auto-Response-Suppress: All"
    )
    assert kind is Kind.AUTO_REPLY
    # A person whose client asks for no automatic answer: a ticket, but no acknowledgement.
    person = parse(PERSON + "\nX-Auto-Response-Suppress: All")
    assert classify(person, OWN).kind is Kind.CUSTOMER
    assert suppresses_auto_reply(person)
    assert not suppresses_auto_reply(parse(PERSON))
    assert suppresses_auto_reply(parse(PERSON + "\nX-Auto-Response-Suppress: DR, OOF"))


def test_our_own_address_is_a_loop() -> None:
    kind, reason = kind_of(f"From: Destek <{DESK.upper()}>\nSubject: Re: x")
    assert kind is Kind.LOOP and DESK in reason
    assert kind_of(PERSON + "\nX-Ticketd-Loop: 1")[0] is Kind.LOOP


def test_multipart_report_delivery_status_is_a_bounce() -> None:
    headers = (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\nTo: destek@example.com\n"
        "Subject: Some subject a person could write\nMIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="r"'
    )
    body = (
        b"--r\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        b"--r\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net"
        b"\r\n\r\nFinal-Recipient: rfc822; yok@example.com.tr\r\nAction: failed\r\n"
        b"Status: 5.1.1\r\n\r\n--r--\r\n"
    )
    kind, reason = kind_of(headers, body)
    assert (kind, reason) == (Kind.BOUNCE, "delivery status notification (multipart/report)")


def test_multipart_report_feedback_and_read_receipt() -> None:
    arf = PERSON + '\nContent-Type: multipart/report; report-type=feedback-report; boundary="r"'
    assert kind_of(arf, b"--r--\r\n")[0] is Kind.BOUNCE
    mdn = PERSON + (
        '\nContent-Type: multipart/report; report-type=disposition-notification; boundary="r"'
    )
    assert kind_of(mdn, b"--r--\r\n") == (
        Kind.AUTO_REPLY,
        "read receipt (disposition notification)",
    )


PROSE_BOUNCE = (
    b"This is the mail system at host mx.example.net.\r\n\r\n"
    b"I'm sorry to have to inform you that your message could not\r\n"
    b"be delivered to one or more recipients.\r\n\r\n"
    b"<yok@example.com.tr>: host mx.example.com.tr said: 550 5.1.1 User unknown\r\n"
)


def test_mailer_daemon_prose_bounce_is_a_bounce() -> None:
    kind, reason = kind_of(
        "From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\nTo: destek@example.com\n"
        "Subject: Undelivered Mail Returned to Sender",
        PROSE_BOUNCE,
    )
    assert kind is Kind.BOUNCE, reason


def test_a_bounce_in_prose_without_a_bounce_subject_is_found_in_the_body() -> None:
    # What flufl.bounce's detectors are for: the headers alone say little.
    kind, reason = kind_of(
        "From: postmaster@mx.example.net\nTo: destek@example.com\nSubject: Bildirim",
        b"The following addresses had permanent fatal errors\r\n"
        b"<yok@example.com.tr>\r\n    (reason: 550 5.1.1 User unknown)\r\n",
    )
    assert (kind, reason) == (Kind.BOUNCE, "delivery failure report for yok@example.com.tr")


def test_a_person_quoting_a_bounce_stays_a_customer() -> None:
    body = (
        b"Size yazdigim mail geri dondu, asagida:\r\n\r\n"
        b"The following addresses had permanent fatal errors\r\n"
        b"<yok@example.com.tr>\r\n    (reason: 550 5.1.1 User unknown)\r\n"
    )
    assert kind_of(PERSON, body)[0] is Kind.CUSTOMER


def test_system_senders_without_a_report_are_a_persons_mail_never_answered() -> None:
    # A bank's no-reply notification that a customer forwards or a partner's system sends is a
    # request like any other (issue 14): a ticket, but nothing automatic goes back to it.
    notice = parse("From: noreply@banka.example.com\nSubject: Hesap ekstreniz")
    assert classify(notice, OWN).kind is Kind.CUSTOMER
    assert no_automatic_answer(notice, True) == "the system address noreply@banka.example.com"
    # No From at all: nobody to answer, but still a ticket, never a "loop".
    nobody = parse("To: destek@example.com\nSubject: x")
    assert classify(nobody, OWN).kind is Kind.CUSTOMER
    assert no_automatic_answer(nobody, True) == "no usable sender address"


def test_a_long_quoted_history_is_cut_and_a_long_text_is_kept_whole() -> None:
    from ingest.replies import REPLY_SCAN_LIMIT, latest_reply

    history = "> eski mesaj satırı\n" * (REPLY_SCAN_LIMIT // 10)
    quoted = "Hâlâ bekliyorum.\n\n12 Kas 2026 Per, 10:00 tarihinde Destek <d@e.com> şunu yazdı:\n"
    assert latest_reply(quoted + history) == "Hâlâ bekliyorum."
    log = "".join(f"May 29 12:00:{n % 60:02d} host kernel: line {n}\n" for n in range(5000))
    assert len(log) > REPLY_SCAN_LIMIT
    assert latest_reply(log) == log.strip()


def test_the_content_hash_is_what_the_sender_sent() -> None:
    from ingest.content_hash import content_hash

    sent = customer_mail(message_id="<bir@musteri.com.tr>")  # CRLF, as over SMTP
    trace = (
        b"Return-Path: <ayse@musteri.com.tr>\nDelivered-To: destek@example.com\n"
        b"X-Original-To: destek@example.com\nReceived: from mx1 by mx2; 1 Dec 2026 10:00 +0000\n"
        b"Authentication-Results: mx2; dkim=pass header.d=musteri.com.tr\n"
    )
    piped = b"From ayse@musteri.com.tr Tue Dec  1 10:00:00 2026\n" + trace
    piped += sent.replace(b"\r\n", b"\n")  # an MTA pipe: LF line ends, trace headers, mbox line
    assert content_hash(piped) == content_hash(sent)
    assert content_hash(sent.replace(b"\r\n", b"\r")) == content_hash(sent)
    other_body = sent.replace(b"beklemede", b"onaylandi")
    other_subject = sent.replace(b"Subject: ", b"Subject: Re: ")
    assert content_hash(other_body) != content_hash(sent)
    assert content_hash(other_subject) != content_hash(sent)


def test_a_message_without_the_empty_line_after_its_header_hashes_its_text() -> None:
    # A script that forgets the empty line: the parser (as Python's email package) reads the
    # first line that is no header field as the body, and the ticket shows it; the hash took
    # every line for the header, so two alerts differing only in their text were one message,
    # and the second was ignored as a duplicate of the first (its text never reached a ticket).
    from ingest.content_hash import content_hash

    head = b"From: cron@example.net\r\nTo: destek@example.com\r\nSubject: disk alert\r\n"
    first, second = head + b"Disk full on host1\r\n", head + b"Disk full on host2\r\n"
    assert parse_message(first).text != parse_message(second).text
    assert content_hash(first) != content_hash(second)
    # with no header at all, likewise: a lone "." line or nothing is no copy of a text
    assert content_hash(b".first line\r\nsecond\r\n") != content_hash(b"")


@pytest.mark.parametrize(
    "raw",
    [
        b"Subject: x\r\nDisk full\r\nmore\r\n",  # no empty line: the first non-field line
        b"Subject: x\nFrom host1 disk full\n\ntext\n",  # a `From ` line ending the header
        b"Subject: x\nFrom host1 disk full\nmore\n",
        b" folded first\nSubject: x\n\ntext",  # a continuation with nothing to continue
        b":no name\nX-\xc3\xa7: 8-bit name\n",  # an empty name is a field, an 8-bit one is not
        b"a b: a name with a space\nSubject: x\n\ntext",
        b"Subject: x\r\rtext\rmore",  # CR alone ends lines for the parser too
        b"From sender Tue Dec  1 10:00:00 2026\nSubject: x\nDisk full",
        b"",
    ],
)
def test_the_hash_takes_the_body_the_parser_takes(raw: bytes) -> None:
    # The header ends where feedparser ends it, so what the ticket shows is what is hashed.
    from email import message_from_bytes
    from email.policy import compat32

    from ingest.content_hash import _normalised_pieces, _split

    payload = message_from_bytes(raw, policy=compat32).get_payload(decode=True)
    assert isinstance(payload, bytes)
    parsed = payload.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    _, lead, body_from = _split(raw)
    body = lead + b"".join(_normalised_pieces(raw, body_from))
    assert body.rstrip(b"\n") == parsed.rstrip(b"\n")


def _hash_before_the_header_fix(raw: bytes) -> str:
    """content_hash as it was up to d564ad8 (the header ended only at an empty line): the
    reference the journal's stored hashes were made with."""
    import hashlib

    wanted = {b"from", b"sender", b"reply-to", b"to", b"cc", b"subject", b"date", b"message-id"}
    wanted |= {b"in-reply-to", b"references", b"mime-version", b"content-type"}
    wanted |= {b"content-transfer-encoding", b"content-disposition"}
    text = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if text.startswith(b"\xef\xbb\xbf"):
        text = text[3:]
    if text.startswith(b"From "):
        text = text.partition(b"\n")[2]
    head, _, body = text.partition(b"\n\n")
    if text.startswith(b"\n"):
        head, body = b"", text[1:]
    fields: list[tuple[bytes, bytes]] = []
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, value + b" " + line)
            continue
        name, colon, value = line.partition(b":")
        if colon:
            fields.append((name.strip().lower(), value))
    kept = [(name, b" ".join(value.split())) for name, value in fields if name in wanted]
    digest = hashlib.sha256()
    for name, value in sorted(kept, key=lambda field: field[0]):
        digest.update(name + b":" + value + b"\n")
    digest.update(b"\n")
    digest.update(body.rstrip(b"\n \t"))
    return digest.hexdigest()


def test_a_message_with_the_empty_line_keeps_the_hash_the_journal_stored() -> None:
    # The journal keeps the hashes it made; a copy arriving after an upgrade must still match.
    # Every message whose header the parser ends at the empty line is hashed as before.
    from email import message_from_bytes
    from email.errors import MissingHeaderBodySeparatorDefect
    from email.policy import compat32

    from ingest.content_hash import content_hash
    from tests.test_corpus import corpus_root, message_files

    sent = customer_mail(message_id="<bir@musteri.com.tr>")
    built = [sent, sent.replace(b"\r\n", b"\n"), sent.replace(b"\r\n", b"\r")]
    built += [b"\xef\xbb\xbf" + sent, b"From a@b Tue Dec  1 10:00:00 2026\n" + sent]
    built += [b"Subject: folded\r\n over\r\n\r\n", b"\r\nno header at all", b"\n"]
    corpus = [path.read_bytes() for path in message_files(corpus_root())]
    ordinary = [
        raw
        for raw in built + corpus
        if not any(
            isinstance(defect, MissingHeaderBodySeparatorDefect)
            for defect in message_from_bytes(
                raw.removeprefix(b"\xef\xbb\xbf"), policy=compat32
            ).defects
        )
    ]
    assert len(ordinary) > len(built) + 500  # the corpus is there and mostly ordinary mail
    assert [content_hash(raw) for raw in ordinary] == [
        _hash_before_the_header_fix(raw) for raw in ordinary
    ]


@pytest.mark.parametrize(
    ("from_header", "email", "name"),
    [
        (
            "=?utf-8?b?R8O8bMWfZW4gScWfxLFrIDxndWxzZW4wQG11c3RlcmkuZXhhbXBsZT4=?=",
            "gulsen0@musteri.example",
            "Gülşen Işık",
        ),
        (
            "=?utf-8?q?I=C5=9F=C4=B1k=2C_G=C3=BCl=C5=9Fen?= <g@m.example>",
            "g@m.example",
            "Işık, Gülşen",
        ),
        ("Gülşen Işık gulsen2@musteri.example", "gulsen2@musteri.example", "Gülşen Işık"),
        ("gulsen3@musteri.example, Esi <esi@musteri.example>", "gulsen3@musteri.example", ""),
        ("Gülşen <gulsen4@musteri.example", "gulsen4@musteri.example", "Gülşen"),
        ("GULSEN5@Musteri.Example (Gülşen)", "gulsen5@musteri.example", "Gülşen"),
    ],
)
def test_the_from_is_read_as_a_careful_parser_reads_it(
    from_header: str, email: str, name: str
) -> None:
    sender = parse(f"From: {from_header}\nSubject: x").sender
    assert (sender.email, sender.name) == (email, name)


def test_without_a_from_the_sender_comes_from_sender_reply_to_or_the_envelope() -> None:
    assert parse("Sender: s@m.example\nReply-To: r@m.example").sender.email == "s@m.example"
    assert parse("From: undisclosed-recipients:;\nReply-To: r@m.example").sender.email == (
        "r@m.example"
    )
    raw = raw_mail("Subject: x", b"Merhaba\r\n", "utf-8")
    assert parse_message(raw, envelope_from="e@m.example").sender.email == "e@m.example"
    assert parse_message(b"Return-Path: <p@m.example>\r\n" + raw).sender.email == "p@m.example"
    nobody = parse_message(raw, envelope_from="<>")
    assert nobody.sender.email == "" and nobody.null_sender
