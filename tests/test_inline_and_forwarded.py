"""Inline images versus signature logos, and files inside forwarded messages (issue 6).

The messages are written out the way Outlook (desktop), Gmail and Apple Mail write them: their
MIME structure (multipart/related around the alternative, or the other way round for Apple Mail),
their Content-ID forms (image001.png@01DA..., ii_..., UUID@home), their HTML (`<img width=...>`,
`gmail_signature`, `AppleMailSignature`). The images are real JPEG and PNG files made with Pillow:
an ID card photo and logos of the sizes signatures use. See ingest/inline_images.py for the rule.
"""

from __future__ import annotations

import base64
import io
import re

import pytest
from PIL import Image

from domain.message import DECORATION, ENCLOSED, FILE, FORWARDED, INLINE, ParsedMessage
from ingest.mime_shape import MAX_DEPTH
from ingest.parsing import parse_message
from tests.helpers import DESK
from tests.test_kyc import PDF, _documents, _outbox
from tests.test_threading import deliver
from ticketd.state import State

SENDER = "=?utf-8?b?QXnFn2UgWcSxbG1heg==?= <ayse@musteri.com.tr>"


def image(kind: str, width: int, height: int) -> bytes:
    """A real image: noise (so it compresses like a photo) in the given format and size."""
    buffer = io.BytesIO()
    picture = Image.effect_noise((width, height), 48).convert("RGB")
    picture.save(buffer, kind, **({"quality": 85} if kind == "JPEG" else {}))
    return buffer.getvalue()


ID_PHOTO = image("JPEG", 1280, 806)  # an ID card photographed with a phone, downscaled
SMALL_LOGO = image("PNG", 200, 60)
RETINA_LOGO = image("PNG", 480, 144)  # a high-resolution logo Outlook shows at 160x48
SQUARE_LOGO = image("PNG", 400, 400)


def b64(data: bytes) -> str:
    return base64.encodebytes(data).decode("ascii")


def roles(message: ParsedMessage) -> list[tuple[str, str]]:
    return [(a.filename, a.role) for a in message.attachments]


def outlook_mail(logo: bytes, logo_width: int, logo_height: int) -> bytes:
    """Outlook 365 desktop: a pasted photo in the body and the logo of its signature."""
    return f"""From: {SENDER}
To: {DESK}
Subject: Kimlik belgem
Message-ID: <AM0PR07MB1@eurprd07.prod.outlook.com>
Content-Type: multipart/related;
\tboundary="_004_AM0PR07MB1_";
\ttype="multipart/alternative"
MIME-Version: 1.0

--_004_AM0PR07MB1_
Content-Type: multipart/alternative;
\tboundary="_000_AM0PR07MB1_"

--_000_AM0PR07MB1_
Content-Type: text/plain; charset="utf-8"
Content-Transfer-Encoding: 8bit

Merhaba, kimliğimin fotoğrafı aşağıda.

[cid:image002.jpg@01DA1B2C.3D4E5F60]

Ayşe Yılmaz
[cid:image001.png@01DA1B2C.3D4E5F60]

--_000_AM0PR07MB1_
Content-Type: text/html; charset="utf-8"
Content-Transfer-Encoding: 8bit

<html xmlns:o="urn:schemas-microsoft-com:office:office"><head>
<meta http-equiv="Content-Type" content="text/html; charset=utf-8"></head>
<body lang="TR" link="#0563C1" vlink="#954F72"><div class="WordSection1">
<p class="MsoNormal">Merhaba, kimliğimin fotoğrafı aşağıda.<o:p></o:p></p>
<p class="MsoNormal"><img width="624" height="393" style="width:6.5in;height:4.0937in"
 id="Picture_x0020_2" src="cid:image002.jpg@01DA1B2C.3D4E5F60"><o:p></o:p></p>
<p class="MsoNormal"><a name="_MailAutoSig">Ayşe Yılmaz<o:p></o:p></a></p>
<p class="MsoNormal"><img width="{logo_width}" height="{logo_height}"
 style="width:1.6666in;height:.5in" id="Picture_x0020_1"
 src="cid:image001.png@01DA1B2C.3D4E5F60" alt="Logo"><o:p></o:p></p>
</div></body></html>

--_000_AM0PR07MB1_--

--_004_AM0PR07MB1_
Content-Type: image/png; name="image001.png"
Content-Description: image001.png
Content-Disposition: inline; filename="image001.png"; size={len(logo)};
\tcreation-date="Mon, 23 Nov 2026 10:00:00 GMT";
\tmodification-date="Mon, 23 Nov 2026 10:00:00 GMT"
Content-ID: <image001.png@01DA1B2C.3D4E5F60>
Content-Transfer-Encoding: base64

{b64(logo)}
--_004_AM0PR07MB1_
Content-Type: image/jpeg; name="image002.jpg"
Content-Description: image002.jpg
Content-Disposition: inline; filename="image002.jpg"; size={len(ID_PHOTO)};
\tcreation-date="Mon, 23 Nov 2026 10:00:00 GMT";
\tmodification-date="Mon, 23 Nov 2026 10:00:00 GMT"
Content-ID: <image002.jpg@01DA1B2C.3D4E5F60>
Content-Transfer-Encoding: base64

{b64(ID_PHOTO)}
--_004_AM0PR07MB1_--
""".replace("\n", "\r\n").encode("utf-8")


def gmail_mail(signature_img: str) -> bytes:
    """Gmail (web): an image pasted into the body, a logo inside gmail_signature."""
    return f"""From: {SENDER}
To: {DESK}
Subject: Kimlik belgem
Message-ID: <CAF=abc@mail.gmail.com>
MIME-Version: 1.0
Content-Type: multipart/related; boundary="000000000000b1c2d3"

--000000000000b1c2d3
Content-Type: multipart/alternative; boundary="000000000000b1c2d2"

--000000000000b1c2d2
Content-Type: text/plain; charset="UTF-8"
Content-Transfer-Encoding: quoted-printable

Merhaba, kimli=C4=9Fim:
[image: kimlik.jpg]

--=20
[image: logo.png]
Ay=C5=9Fe Y=C4=B1lmaz

--000000000000b1c2d2
Content-Type: text/html; charset="UTF-8"
Content-Transfer-Encoding: quoted-printable

<div dir=3D"ltr"><div>Merhaba, kimli=C4=9Fim:</div><div><img src=3D"cid:ii_lq1=
kml0" alt=3D"kimlik.jpg" width=3D"542" height=3D"341"><br></div><br clear=3D"a=
ll"><div><br></div><span class=3D"gmail_signature_prefix">-- </span><br><div =
dir=3D"ltr" class=3D"gmail_signature" data-smartmail=3D"gmail_signature"><div =
dir=3D"ltr">{signature_img}<br>Ay=C5=9Fe Y=C4=B1lmaz</div></div></div>

--000000000000b1c2d2--
--000000000000b1c2d3
Content-Type: image/jpeg; name="kimlik.jpg"
Content-Disposition: inline; filename="kimlik.jpg"
Content-Transfer-Encoding: base64
Content-ID: <ii_lq1kml0>
X-Attachment-Id: ii_lq1kml0

{b64(ID_PHOTO)}
--000000000000b1c2d3
Content-Type: image/png; name="logo.png"
Content-Disposition: inline; filename="logo.png"
Content-Transfer-Encoding: base64
Content-ID: <ii_lq1logo>
X-Attachment-Id: ii_lq1logo

{b64(SQUARE_LOGO)}
--000000000000b1c2d3--
""".replace("\n", "\r\n").encode("utf-8")


def apple_mail_html() -> bytes:
    """Apple Mail (macOS): alternative around related; the photo and the signature's logo."""
    return f"""From: {SENDER}
To: {DESK}
Subject: Kimlik belgem
Message-Id: <5D1C6E2A-8C3B-4F0E-9C11-7E5B2A9D4F10@musteri.com.tr>
Mime-Version: 1.0 (Mac OS X Mail 16.0)
Content-Type: multipart/alternative; boundary="Apple-Mail=_A1B2C3D4"

--Apple-Mail=_A1B2C3D4
Content-Transfer-Encoding: quoted-printable
Content-Type: text/plain; charset=utf-8

Kimli=C4=9Fim ekte.

--Apple-Mail=_A1B2C3D4
Content-Type: multipart/related; type="text/html"; boundary="Apple-Mail=_E5F6A7B8"

--Apple-Mail=_E5F6A7B8
Content-Transfer-Encoding: quoted-printable
Content-Type: text/html; charset=utf-8

<html><head><meta http-equiv=3D"content-type" content=3D"text/html; =
charset=3Dutf-8"></head><body style=3D"overflow-wrap: break-word;"><div>Kimli=
=C4=9Fim ekte.</div><div><img apple-inline=3D"yes" id=3D"0F3E1A2B" =
src=3D"cid:8B2F4C1D-1E2F-4A3B-9C4D-5E6F7A8B9C0D@home"></div><br><div =
id=3D"AppleMailSignature" dir=3D"ltr"><img src=3D"cid:F00D-LOGO@home"><br>Ay=
=C5=9Fe</div></body></html>
--Apple-Mail=_E5F6A7B8
Content-Transfer-Encoding: base64
Content-Disposition: inline; filename=IMG_0042.jpeg
Content-Type: image/jpeg; x-unix-mode=0644; name="IMG_0042.jpeg"
Content-Id: <8B2F4C1D-1E2F-4A3B-9C4D-5E6F7A8B9C0D@home>

{b64(ID_PHOTO)}
--Apple-Mail=_E5F6A7B8
Content-Transfer-Encoding: base64
Content-Disposition: inline; filename=logo.png
Content-Type: image/png; x-unix-mode=0644; name="logo.png"
Content-Id: <F00D-LOGO@home>

{b64(SQUARE_LOGO)}
--Apple-Mail=_E5F6A7B8--

--Apple-Mail=_A1B2C3D4--
""".replace("\n", "\r\n").encode("utf-8")


def apple_mail_plain(photo: bytes, name: str = "IMG_0043.jpeg") -> bytes:
    """Apple Mail sending a photo in a plain-text mail: inline, with no HTML at all."""
    return f"""From: {SENDER}
To: {DESK}
Subject: Kimlik belgem
Mime-Version: 1.0 (Mac OS X Mail 16.0)
Content-Type: multipart/mixed; boundary="Apple-Mail=_C0FFEE"

--Apple-Mail=_C0FFEE
Content-Transfer-Encoding: 7bit
Content-Type: text/plain; charset=us-ascii

Kimligim ekte.

--Apple-Mail=_C0FFEE
Content-Disposition: inline; filename={name}
Content-Type: image/jpeg; x-unix-mode=0644; name="{name}"
Content-Transfer-Encoding: base64

{b64(photo)}
--Apple-Mail=_C0FFEE
Content-Transfer-Encoding: 7bit
Content-Type: text/plain; charset=us-ascii



--Apple-Mail=_C0FFEE--
""".replace("\n", "\r\n").encode("utf-8")


def test_outlook_photo_is_inline_and_a_small_logo_a_decoration() -> None:
    message = parse_message(outlook_mail(SMALL_LOGO, 200, 60))
    assert roles(message) == [("image001.png", DECORATION), ("image002.jpg", INLINE)]
    assert message.text.startswith("Merhaba, kimliğimin fotoğrafı aşağıda.")


def test_without_content_disposition_the_cid_reference_decides() -> None:
    """Some Outlook versions and mailing tools write inline parts with a Content-ID only."""
    raw = re.sub(
        rb"Content-Disposition: inline;[^\r]*\r\n(\t[^\r]*\r\n)*",
        b"",
        outlook_mail(SMALL_LOGO, 200, 60),
    )
    assert b"Content-Disposition" not in raw
    message = parse_message(raw)
    assert roles(message) == [("image001.png", DECORATION), ("image002.jpg", INLINE)]


def test_outlook_high_resolution_logo_shown_small_is_a_decoration() -> None:
    """480x144 pixels is not small in itself; Outlook shows it at 160x48: rule 2."""
    message = parse_message(outlook_mail(RETINA_LOGO, 160, 48))
    assert roles(message) == [("image001.png", DECORATION), ("image002.jpg", INLINE)]


def test_outlook_large_image_shown_large_is_content() -> None:
    message = parse_message(outlook_mail(RETINA_LOGO, 480, 144))
    assert roles(message) == [("image001.png", INLINE), ("image002.jpg", INLINE)]


def test_gmail_logo_inside_gmail_signature_is_a_decoration() -> None:
    """400x400 pixels, no displayed size, but inside gmail_signature: rule 3."""
    message = parse_message(gmail_mail('<img src=3D"cid:ii_lq1logo" alt=3D"logo.png">'))
    assert roles(message) == [("kimlik.jpg", INLINE), ("logo.png", DECORATION)]
    assert message.text.startswith("Merhaba, kimliğim:")


def test_a_photo_in_the_signature_block_is_still_content_when_photo_sized() -> None:
    """Rule 3 stops at 1000 pixels: the ID photo (1280 wide) shown only inside the signature."""
    raw = gmail_mail('<img src=3D"cid:ii_lq1kml0">')
    raw = raw.replace(b'src=3D"cid:ii_lq1=\r\nkml0"', b'src=3D"cid:elsewhere"')
    message = parse_message(raw)
    assert ("kimlik.jpg", INLINE) in roles(message)


def test_apple_mail_photo_is_inline_and_signature_logo_a_decoration() -> None:
    message = parse_message(apple_mail_html())
    assert roles(message) == [("IMG_0042.jpeg", INLINE), ("logo.png", DECORATION)]
    assert message.text == "Kimliğim ekte."


def test_apple_mail_plain_text_photo_is_inline_content() -> None:
    message = parse_message(apple_mail_plain(ID_PHOTO))
    assert roles(message) == [("IMG_0043.jpeg", INLINE)]
    assert message.attachments[0].payload == ID_PHOTO


def test_an_inline_image_whose_size_cannot_be_read_is_content() -> None:
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 200
    message = parse_message(apple_mail_plain(heic, "IMG_0044.HEIC"))
    assert roles(message) == [("IMG_0044.HEIC", INLINE)]


def test_a_small_image_attached_on_purpose_stays_a_file() -> None:
    message = parse_message(
        outlook_mail(SMALL_LOGO, 200, 60).replace(
            b'Content-Disposition: inline; filename="image001.png"',
            b'Content-Disposition: attachment; filename="image001.png"',
        )
    )
    # Still shown in the HTML: a decoration. Not shown: what the sender attached.
    assert ("image001.png", DECORATION) in roles(message)
    unshown = parse_message(
        outlook_mail(SMALL_LOGO, 200, 60)
        .replace(b"cid:image001.png@01DA1B2C.3D4E5F60", b"cid:elsewhere")
        .replace(
            b'Content-Disposition: inline; filename="image001.png"',
            b'Content-Disposition: attachment; filename="image001.png"',
        )
    )
    assert ("image001.png", FILE) in roles(unshown)


# --- forwarded messages --------------------------------------------------------------------


def forwarded(inner: str, outer_text: str = "Kimliğimi içeren iletiyi ekledim.") -> bytes:
    """Outlook's "forward as attachment": the customer's words and the message/rfc822."""
    return f"""From: {SENDER}
To: {DESK}
Subject: FW: Kimlik fotoğrafı
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer-boundary"

--outer-boundary
Content-Type: text/plain; charset="utf-8"
Content-Transfer-Encoding: 8bit

{outer_text}

--outer-boundary
Content-Type: message/rfc822
Content-Disposition: attachment

{inner}
--outer-boundary--
""".replace("\n", "\r\n").encode("utf-8")


def inner_message(extra_parts: str = "", subject: str = "Kimlik fotoğrafı") -> str:
    return f"""From: Eşim <es@musteri.com.tr>
To: {SENDER}
Subject: {subject}
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="inner-boundary"

--inner-boundary
Content-Type: multipart/related; boundary="inner-related"

--inner-related
Content-Type: text/html; charset="utf-8"

<p>Bu iletinin metni müşterinin yazdığı değil.</p><img src="cid:logo@inner">
--inner-related
Content-Type: image/png; name="logo.png"
Content-Disposition: inline; filename="logo.png"
Content-ID: <logo@inner>
Content-Transfer-Encoding: base64

{b64(SMALL_LOGO)}
--inner-related--

--inner-boundary
Content-Type: text/plain; charset="utf-8"

Bu da müşterinin yazdığı değil.

--inner-boundary
Content-Type: image/jpeg; name="kimlik.jpg"
Content-Disposition: attachment; filename="kimlik.jpg"
Content-Transfer-Encoding: base64

{b64(ID_PHOTO)}
{extra_parts}--inner-boundary--
"""


def test_files_inside_a_forwarded_message_are_found_and_its_text_is_not_the_senders() -> None:
    message = parse_message(forwarded(inner_message()))
    assert roles(message) == [
        ("Kimlik fotoğrafı.eml", FORWARDED),
        ("logo.png", DECORATION),
        ("kimlik.jpg", ENCLOSED),
    ]
    assert message.text == "Kimliğimi içeren iletiyi ekledim."
    assert "müşterinin yazdığı değil" not in message.full_text
    eml = message.attachments[0]
    assert eml.content_type == "message/rfc822"
    kept = parse_message(eml.payload)  # the .eml is the forwarded message, whole
    assert kept.subject == "Kimlik fotoğrafı" and "Bu da müşterinin" in kept.full_text
    assert [a.payload for a in kept.attachments if a.filename == "kimlik.jpg"] == [ID_PHOTO]
    assert message.attachments[2].payload == ID_PHOTO


def test_nested_forwards_keep_the_outer_eml_and_find_every_file() -> None:
    pdf_part = f"""
--inner-boundary
Content-Type: message/rfc822

{
        inner_message(subject="Adres belgesi")
        .replace("inner-boundary", "deeper-boundary")
        .replace("inner-related", "deeper-related")
        .replace('name="kimlik.jpg"', 'name="fatura.jpg"')
        .replace('filename="kimlik.jpg"', 'filename="fatura.jpg"')
    }
"""
    message = parse_message(forwarded(inner_message(pdf_part)))
    assert roles(message) == [
        ("Kimlik fotoğrafı.eml", FORWARDED),
        ("logo.png", DECORATION),
        ("kimlik.jpg", ENCLOSED),
        ("logo.png", DECORATION),
        ("fatura.jpg", ENCLOSED),
    ]
    assert message.text == "Kimliğimi içeren iletiyi ekledim."


def test_forwards_nested_past_the_depth_limit_end_there() -> None:
    """Each forward costs two levels (message/rfc822, then the message); past the limit the
    parser stops looking, and nothing raises."""
    levels = MAX_DEPTH // 2 + 5
    body = inner_message(subject="en içteki")
    for level in range(levels):
        body = f"""From: a@b.c
Subject: kat {level}
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b{level}"

--b{level}
Content-Type: image/jpeg; name="kat{level}.jpg"
Content-Disposition: attachment; filename="kat{level}.jpg"
Content-Transfer-Encoding: base64

{b64(SMALL_LOGO)}
--b{level}
Content-Type: message/rfc822

{body}
--b{level}--
"""
    message = parse_message(forwarded(body))
    names = [a.filename for a in message.attachments]
    assert names[0] == f"kat {levels - 1}.eml"
    assert f"kat{levels - 1}.jpg" in names  # the outermost forward's own file
    assert "kimlik.jpg" not in names  # beyond the depth limit
    assert message.text == "Kimliğimi içeren iletiyi ekledim."


def test_a_bounce_keeps_its_returned_message_as_an_attachment() -> None:
    raw = (
        b"From: MAILER-DAEMON@mx.example.com\r\nTo: destek@example.com\r\n"
        b"Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="r"\r\n\r\n'
        b"--r\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        b"--r\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
        b"Final-Recipient: rfc822; yok@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
        b"--r\r\nContent-Type: message/rfc822\r\n\r\nFrom: destek@example.com\r\n"
        b"Subject: Talebiniz\r\nMessage-ID: <abc@destek>\r\n\r\nOriginal text.\r\n--r--\r\n"
    )
    message = parse_message(raw)
    assert roles(message) == [("Talebiniz.eml", FORWARDED)]
    assert message.text == "Your message could not be delivered."
    assert message.failed_recipients == ("yok@example.com",)
    assert "abc@destek" in message.embedded_message_ids


# --- on a kyc ticket -----------------------------------------------------------------------


def test_kyc_takes_the_outlook_inline_photo_and_not_the_logo(kyc_state: State) -> None:
    result = deliver(kyc_state, outlook_mail(SMALL_LOGO, 200, 60))
    assert "documents: 1 stored, 0 refused" in result.detail, result.detail
    assert [(d.filename, d.detected_type) for d in _documents(kyc_state)] == [
        ("image002.jpg", "jpeg")
    ]
    [receipt] = _outbox(kyc_state, "kyc_received")
    assert "image002.jpg" in receipt.text and "image001.png" not in receipt.text
    assert _outbox(kyc_state, "kyc_refused") == []


def test_kyc_takes_the_files_of_a_forwarded_message(kyc_state: State) -> None:
    pdf_part = f"""
--inner-boundary
Content-Type: application/pdf; name="fatura.pdf"
Content-Disposition: attachment; filename="fatura.pdf"
Content-Transfer-Encoding: base64

{b64(PDF)}
"""
    result = deliver(kyc_state, forwarded(inner_message(pdf_part)))
    assert "documents: 2 stored, 0 refused" in result.detail, result.detail
    stored = [(d.filename, d.detected_type) for d in _documents(kyc_state)]
    assert stored == [("kimlik.jpg", "jpeg"), ("fatura.pdf", "pdf")]
    [receipt] = _outbox(kyc_state, "kyc_received")
    assert ".eml" not in receipt.text and "logo.png" not in receipt.text


def test_kyc_with_only_a_signature_logo_takes_no_document(kyc_state: State) -> None:
    raw = gmail_mail('<img src=3D"cid:ii_lq1logo" alt=3D"logo.png">')
    raw = raw.replace(b'src=3D"cid:ii_lq1=\r\nkml0"', b'src=3D"cid:x"')
    without_photo = raw.split(b"--000000000000b1c2d3\r\nContent-Type: image/jpeg")[0]
    without_photo += (
        b"--000000000000b1c2d3\r\nContent-Type: image/png"
        + raw.split(b"--000000000000b1c2d3\r\nContent-Type: image/png")[1]
    )
    result = deliver(kyc_state, without_photo)
    assert result.state == "done", result.detail
    assert "documents" not in result.detail  # neither a document nor a refusal
    assert _documents(kyc_state) == []
    assert _outbox(kyc_state, "kyc_refused") == []


def test_ticketd_show_marks_what_each_attachment_is(
    kyc_state: State, capsys: pytest.CaptureFixture[str]
) -> None:
    from ticketd.cli import main

    result = deliver(kyc_state, forwarded(inner_message()))
    ref = result.detail.split()[1].rstrip(":")
    capsys.readouterr()
    assert main(["--config", str(kyc_state.config.path), "tickets", "show", ref]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert "Kimlik fotoğrafı.eml (message/rfc822," in shown and "[forwarded message]" in shown
    assert "logo.png (image/png," in shown and "[signature image]" in shown
    assert "kimlik.jpg (image/jpeg," in shown and "[inside a forwarded message]" in shown
