"""A part's Content-Transfer-Encoding is a case-insensitive token (RFC 2045 6.1): whitespace
around it, comments, quotes and parameters, as some clients and gateways write it, must not
leave a part undecoded (ingest/transfer_encoding.py); a value that names no encoding keeps the
part's bytes as they came. Every path that decodes a part is held to it: the body and the
attachments parse_message reads, the base64 runs decoded beside the parser, the bounce
detectors' view, and the redacted copies retention keeps.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import quopri

import pytest

from domain.message import ENCLOSED, FILE, FORWARDED
from ingest import base64_runs
from ingest.mime_shape import ShapeLimits
from ingest.parsing import parse_message
from ingest.redact import without_files
from ingest.transfer_encoding import encoding_token
from storage.models import Document
from tests.test_kyc import JPEG as ID_PHOTO
from tests.test_kyc import kyc_mail
from tests.test_threading import deliver
from ticketd.state import State

# The header values as clients write them; each is base64 or quoted-printable to a reader.
BASE64_VALUES = [
    "base64 ",
    " BASE64",
    "Base64\t",
    "base64 \t ",
    "\r\n base64",
    "base64;",
    '"base64"',
    "base64; charset=utf-8",
    "base64 (comment)",
    "(Outlook) Base64",
    '"BASE64" ; name="a;b" (x (nested))',
]
QP_VALUES = [
    "quoted-printable ",
    "Quoted-Printable\t",
    "\r\n QUOTED-PRINTABLE ",
    "quoted-printable;",
    '"quoted-printable"',
    "Quoted-Printable; charset=utf-8",
    "quoted-printable (iso-8859-9 text)",
]
# Values that name no encoding to decode by: the part's bytes are kept as they came, never lost.
UNKNOWN_VALUES = ["x-gzip64", "base64 x", "(only a comment)", '"', "8bit; base64", "base64x"]

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
TEXT = "Kimliğimin ön yüzünü ekledim, çekim talebim onaylansın."


def _lines(data: bytes) -> bytes:
    encoded = base64.b64encode(data)
    return b"\r\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76)) + b"\r\n"


def _mail(text_cte: str, text_body: bytes, file_cte: str, file_body: bytes) -> bytes:
    return (
        b"From: Ayse Yilmaz <ayse@musteri.com.tr>\r\nTo: destek@example.com\r\n"
        b"Subject: Kimlik belgem\r\nMessage-ID: <kimlik-1@musteri.com.tr>\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="sinir"\r\n\r\n'
        b"--sinir\r\n"
        b'Content-Type: text/plain; charset="utf-8"\r\n'
        b"Content-Transfer-Encoding: " + text_cte.encode() + b"\r\n\r\n" + text_body + b"\r\n"
        b"--sinir\r\n"
        b'Content-Type: application/pdf; name="kimlik.pdf"\r\n'
        b'Content-Disposition: attachment; filename="kimlik.pdf"\r\n'
        b"Content-Transfer-Encoding: " + file_cte.encode() + b"\r\n\r\n" + file_body + b"\r\n"
        b"--sinir--\r\n"
    )


def _base64_mail(value: str, attachment: bytes = PDF) -> bytes:
    return _mail(value, _lines(TEXT.encode()), value, _lines(attachment))


@pytest.mark.parametrize("value", BASE64_VALUES)
def test_a_base64_part_labelled_as_senders_write_it_is_decoded(value: str) -> None:
    message = parse_message(_base64_mail(value))
    assert message.text == TEXT
    [attachment] = message.attachments
    assert (attachment.filename, attachment.role) == ("kimlik.pdf", FILE)
    assert attachment.payload == PDF
    assert message.shape_notes == ()


@pytest.mark.parametrize("value", QP_VALUES)
def test_a_quoted_printable_part_labelled_as_senders_write_it_is_decoded(
    value: str,
) -> None:
    body = quopri.encodestring(TEXT.encode())
    statement = b"Tarih;Tutar;A=C3=A7=C4=B1klama\r\n2024-05-01;150,00;=C3=87ekim=\r\n talebi\r\n"
    message = parse_message(_mail(value, body, value, statement))
    assert message.text == TEXT
    assert (
        message.attachments[0].payload
        == "Tarih;Tutar;Açıklama\r\n2024-05-01;150,00;Çekim talebi\r\n".encode()
    )


@pytest.mark.parametrize("value", ["x-uuencode ", "X-UUENCODE;", '"x-uuencode" (uu)'])
def test_a_uuencoded_part_labelled_as_senders_write_it_is_decoded(value: str) -> None:
    uu = b"begin 644 kimlik.pdf\r\n"
    for i in range(0, len(PDF), 45):
        uu += binascii.b2a_uu(PDF[i : i + 45]).replace(b"\n", b"\r\n")
    uu += b"`\r\nend\r\n"
    raw = _mail("8bit", TEXT.encode(), value, uu)
    assert parse_message(raw).attachments[0].payload == PDF


@pytest.mark.parametrize("value", UNKNOWN_VALUES)
def test_a_part_whose_encoding_is_no_known_one_keeps_its_bytes(value: str) -> None:
    """7bit, 8bit and binary semantics: what came is what the ticket holds."""
    encoded = _lines(PDF)
    message = parse_message(_mail(value, TEXT.encode(), value, encoded))
    assert message.text == TEXT
    assert message.attachments[0].payload == encoded


@pytest.mark.parametrize(
    ("value", "token"),
    [
        ("quoted-printable;", "quoted-printable"),
        ('"base64"', "base64"),
        ("base64; charset=utf-8", "base64"),
        ("base64 (comment)", "base64"),
        ("(a (b) c) BASE64 ", "base64"),
        ('"base\\64"', "base64"),  # a quoted pair is the character it quotes
        ("8Bit\r\n\t", "8bit"),
        ("base64 x", "base64 x"),
        ("(unclosed base64", ""),
        ("", ""),
    ],
)
def test_a_value_is_read_as_its_token(value: str, token: str) -> None:
    assert encoding_token(value) == token


def test_a_value_is_read_no_further_than_its_first_characters() -> None:
    assert encoding_token("(" + "x" * 1_000_000 + ") base64") == ""


@pytest.mark.parametrize("value", ['"base64"', "base64; name=kimlik.jpg", "Base64 (phone)"])
def test_an_identity_photo_so_labelled_is_stored_as_the_photo(kyc_state: State, value: str) -> None:
    """The documents step reads the decoded bytes: the encoded text was refused as no image,
    and the customer asked to send the document again."""
    raw = kyc_mail([("kimlik.jpg", "image/jpeg", ID_PHOTO)])
    raw = raw.replace(b"Transfer-Encoding: base64", b"Transfer-Encoding: " + value.encode())
    result = deliver(kyc_state, raw)
    assert "documents: 1 stored, 0 refused" in result.detail, result.detail
    with kyc_state.db.read() as session:
        [document] = session.query(Document).all()
        assert (document.detected_type, document.size) == ("jpeg", len(ID_PHOTO))
        assert document.sha256 == hashlib.sha256(ID_PHOTO).hexdigest()


def test_a_large_attachment_with_a_trailing_space_is_decoded_beside_the_parser(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The long run is cut out and the part it belongs to takes its bytes: the marker's part is
    base64 to base64_runs as it is to the decoder, so the shortcut is not thrown away."""
    attachment = bytes(range(256)) * 1024  # 256 KB: a run past RUN_MIN
    raw = _base64_mail("base64 ", attachment) + b" " * base64_runs.LIFT_FROM
    placed: list[dict[int, bytes] | None] = []
    original = base64_runs.Lifted.placed

    def spy(self: base64_runs.Lifted, parts: object) -> dict[int, bytes] | None:
        found = original(self, parts)  # type: ignore[arg-type]
        placed.append(found)
        return found

    monkeypatch.setattr(base64_runs.Lifted, "placed", spy)
    message = parse_message(raw)
    assert message.attachments[0].payload == attachment
    assert placed and placed[0], "the run was not placed: the message was parsed as it came"


def test_a_bounce_whose_notification_is_base64_with_a_parameter_names_its_address() -> None:
    """flufl.bounce's Postfix detector decodes the notification part itself."""
    notification = (
        "This is the mail system at host mx.example.net.\n\n"
        "I'm sorry to have to inform you that your message could not\n"
        "be delivered to one or more recipients.\n\n"
        "                   The Postfix program\n\n"
        "<yok@example.net>: host mx.example.net said: 550 5.1.1 User unknown\n"
    )
    raw = (
        b"From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\r\n"
        b"To: destek@example.com\r\nSubject: Returned mail\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="r"\r\n\r\n'
        b"--r\r\nContent-Description: Notification\r\n"
        b'Content-Type: text/plain; charset="us-ascii"\r\n'
        b"Content-Transfer-Encoding: base64; charset=us-ascii\r\n\r\n"
        + _lines(notification.encode())
        + b"--r--\r\n"
    )
    assert parse_message(raw, envelope_from="<>").failed_recipients == ("yok@example.net",)


def test_a_redacted_copy_replaces_the_document_and_keeps_the_text() -> None:
    """The digest the parser found is the digest of the part the copy replaces: the copy
    keeps the text instead of falling back to the headers alone."""
    raw = _base64_mail("base64 ")
    copy = without_files(raw, {hashlib.sha256(PDF).hexdigest()}, "retention ended")
    assert copy is not None
    message = parse_message(copy)
    assert message.attachments == ()
    assert message.full_text.startswith(TEXT)  # the text, not the headers-only fallback
    assert "[kimlik.pdf (application/pdf, 77 bytes" in message.full_text
    assert b"%PDF" not in copy


# --- a forward sent base64 --------------------------------------------------------------------

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\x00" * 64


def _original() -> bytes:
    """The mail forwarded: the customer's own, with an identity photo."""
    return (
        (
            "From: Ayşe Yılmaz <ayse@musteri.com.tr>\r\nTo: destek@example.com\r\n"
            "Subject: =?utf-8?q?=C3=87ekim_talebi?=\r\nMessage-ID: <ilk-1@musteri.com.tr>\r\n"
            'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="ic"\r\n\r\n'
            '--ic\r\nContent-Type: text/plain; charset="utf-8"\r\n'
            "Content-Transfer-Encoding: 8bit\r\n\r\nÇekimim üç gündür bekliyor.\r\n"
            '--ic\r\nContent-Type: image/jpeg; name="kimlik.jpg"\r\n'
            'Content-Disposition: attachment; filename="kimlik.jpg"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n"
        ).encode()
        + _lines(JPEG)
        + b"--ic--\r\n"
    )


def _forward_mail(cte: str, body: bytes, padding: bytes = b"") -> bytes:
    """A forward as attachment, its message/rfc822 part sent with `cte` (as some webmail and
    mobile clients write it, though RFC 2046 forbids it)."""
    return (
        b"From: Mehmet Kaya <mehmet@musteri.com.tr>\r\nTo: destek@example.com\r\n"
        b"Subject: Fw: Cekim talebi\r\nMessage-ID: <fw-1@musteri.com.tr>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="dis"\r\n\r\n'
        b"--dis\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        b"Esimin talebini iletiyorum.\r\n" + padding + b"--dis\r\n"
        b'Content-Type: message/rfc822; name="Cekim talebi.eml"\r\n'
        b"Content-Transfer-Encoding: " + cte.encode() + b"\r\n"
        b'Content-Disposition: attachment; filename="Cekim talebi.eml"\r\n\r\n'
        + body
        + b"--dis--\r\n"
    )


def _assert_read_as_a_forward(raw: bytes) -> None:
    message = parse_message(raw)
    assert message.text == "Esimin talebini iletiyorum."
    assert [(a.filename, a.role) for a in message.attachments] == [
        ("Cekim talebi.eml", FORWARDED),
        ("kimlik.jpg", ENCLOSED),
    ]
    forward, photo = message.attachments
    assert photo.payload == JPEG
    inner = parse_message(forward.payload)  # the .eml a person opens
    assert inner.subject == "Çekim talebi"
    assert inner.message_id == "ilk-1@musteri.com.tr"
    assert inner.text == "Çekimim üç gündür bekliyor."
    assert inner.attachments[0].payload == JPEG


@pytest.mark.parametrize("cte", ["base64", "BASE64 ", '"base64"', "base64 (webmail)"])
def test_a_forward_sent_base64_is_read_as_the_message_it_holds(cte: str) -> None:
    _assert_read_as_a_forward(_forward_mail(cte, _lines(_original())))


def test_a_forward_sent_quoted_printable_is_read_as_the_message_it_holds() -> None:
    body = quopri.encodestring(_original().replace(b"\r\n", b"\n")).replace(b"\n", b"\r\n")
    _assert_read_as_a_forward(_forward_mail("quoted-printable", body))


def test_a_large_forward_sent_base64_is_read_though_its_run_is_not_lifted() -> None:
    """base64_runs cuts the forward's long run out, finds its marker inside a message/* part
    and parses the message as it came; the forward is then decoded like a small one."""
    padding = b"Esimin mesaji asagida.\r\n" * (base64_runs.LIFT_FROM // 24)
    photo = JPEG + bytes(range(256)) * 512  # a run past RUN_MIN once encoded
    original = _original().replace(_lines(JPEG), _lines(photo))
    message = parse_message(_forward_mail("base64", _lines(original), padding))
    forward, found = message.attachments
    assert (forward.filename, forward.role) == ("Cekim talebi.eml", FORWARDED)
    assert (found.filename, found.role, found.payload) == ("kimlik.jpg", ENCLOSED, photo)


def test_a_forward_labelled_base64_but_sent_as_it_is_stays_readable() -> None:
    message = parse_message(_forward_mail("base64", _original()))
    forward, photo = message.attachments
    assert parse_message(forward.payload).subject == "Çekim talebi"
    assert photo.payload == JPEG


def test_the_parts_of_forwards_sent_base64_count_against_the_part_limit() -> None:
    many = b"".join(b"--m\r\nContent-Type: text/plain\r\n\r\nbos\r\n" for _ in range(30))
    inner = (
        b"From: a@example.net\r\nSubject: ic\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="m"\r\n\r\n' + many + b"--m--\r\n"
    )
    forwards = b"".join(
        b"--dis\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + _lines(inner)
        for _ in range(10)
    )
    raw = (
        b"From: mehmet@musteri.com.tr\r\nTo: destek@example.com\r\nSubject: Fw\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="dis"\r\n\r\n'
        + forwards
        + b"--dis--\r\n"
    )
    message = parse_message(raw, ShapeLimits(parts=100))
    assert any("more than 100 MIME parts" in note for note in message.shape_notes)
    readable = [a for a in message.attachments if parse_message(a.payload).subject == "ic"]
    assert 2 <= len(readable) < 10


def test_a_redacted_copy_replaces_a_document_inside_a_forward_sent_base64() -> None:
    raw = _forward_mail("base64", _lines(_original()))
    copy = without_files(raw, {hashlib.sha256(JPEG).hexdigest()}, "retention ended")
    assert copy is not None
    message = parse_message(copy)
    assert message.text == "Esimin talebini iletiyorum."  # not the headers-only fallback
    assert [a.filename for a in message.attachments] == ["Cekim talebi.eml"]
    assert b"kimlik.jpg (image/jpeg" in message.attachments[0].payload
    assert JPEG not in copy and base64.b64encode(JPEG[:30]) not in copy
