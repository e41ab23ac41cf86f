"""A customer who forwards a mail to open a ticket keeps what was forwarded (ingest/replies.py).

The forwarded mail is the request ("is this mail from you?", "the bank says the transfer was
sent"): recorded as quoted history, it was cut, and the ticket held only "see below". The bodies
are written the way the clients write them: Gmail's "---------- Forwarded message ---------" (and
its Turkish "İletilen ileti"), Apple Mail's "Begin forwarded message:" with the mail quoted below,
Thunderbird's "-------- Forwarded Message --------" with tab-aligned headers, Outlook's
"From: / Sent:" block under a rule of underscores and the older "-----Original Message-----".
Outlook writes the same block above a reply, so only a forwarding subject (FW, İLT, WG...) makes it
a forward. On a ticket already open, a forward counts only when it comes before any quote.
"""

from __future__ import annotations

import os
from datetime import timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import make_msgid
from pathlib import Path

import pytest

from domain.clock import FixedClock
from domain.config import load_config
from ingest.journal import Arrival
from ingest.parsing import parse_message
from ingest.replies import follow_up_text, kept_text, opening_text
from ingest.worker import Processed
from tests.helpers import DESK, customer_mail, write_config
from ticketd.state import State, open_state
from ticketd.views import list_tickets, show_ticket

CUSTOMER = "Ayşe Yılmaz <ayse@musteri.com.tr>"


def deliver(state: State, raw: bytes) -> Processed:
    """Through the journal and the worker, as in the daemon (not tests.test_threading's: that
    module needs the corpus to be collected, and these tests run without it)."""
    state.journal.accept(Arrival(raw=raw, source="test", envelope_to=(DESK,)))
    [result] = state.worker.drain()
    return result


def messages_of(state: State, ref: str) -> list[dict[str, object]]:
    ticket = show_ticket(state.db, ref)
    assert ticket is not None
    result: list[dict[str, object]] = ticket["messages"]
    return result


def open_ticket(state: State, clock: FixedClock, sender: str, subject: str, body: str) -> str:
    result = deliver(state, customer_mail(sender=sender, subject=subject, body=body))
    assert result.state == "done" and result.ticket_ref is not None, result.detail
    clock.advance(timedelta(minutes=10))
    return result.ticket_ref


GMAIL = """Merhaba, bu mail bana geldi. Gerçekten sizden mi?

---------- Forwarded message ---------
From: Papara Destek <destek@papara-guvenlik.net>
Date: Sun, Dec 6, 2026 at 9:14 PM
Subject: Hesabınız askıya alındı
To: <ayse@musteri.com.tr>


Sayın müşterimiz, hesabınızı doğrulamak için 24 saat içinde bağlantıya tıklayın.
"""

GMAIL_TURKISH = """Bu SMS'i ve maili aldım, kartım bloke mi?

---------- İletilen ileti ---------
Gönderen: Kart Bildirim <bildirim@banka.com.tr>
Date: 6 Ara 2026 Paz 21:14
Subject: Kartınız geçici olarak kullanıma kapatıldı
To: <ayse@musteri.com.tr>


Kartınız şüpheli işlem nedeniyle kapatıldı. Müşteri hizmetlerini arayın.
"""

APPLE_MAIL = """Merhaba,

Havale yaptım ama bakiyeme yansımadı, bankanın maili aşağıda.

Ayşe

Begin forwarded message:

> From: Garanti BBVA <bilgilendirme@garantibbva.com.tr>
> Subject: Havale işleminiz gerçekleşti
> Date: 6 December 2026 at 10:02:11 GMT+3
> To: ayse@musteri.com.tr
>
> 1.500,00 TL tutarındaki havaleniz TR12 0006 2000 0000 0000 0000 01 IBAN'a gönderilmiştir.
"""

THUNDERBIRD = """


-------- Forwarded Message --------
Subject: \tÇekim talebiniz reddedildi
Date: \tSun, 6 Dec 2026 18:40:02 +0300
From: \tÖdeme Sistemleri <odeme@example.net>
To: \tayse@musteri.com.tr



Çekim talebiniz eksik belge nedeniyle reddedilmiştir. Talep no: 88412.
"""

OUTLOOK = """Merhaba, aşağıdaki ekstre hatalı; iki kez tahsilat var.

Ayşe Yılmaz

________________________________
From: Kart Ekstre <ekstre@banka.com.tr>
Sent: Sunday, December 6, 2026 9:14 AM
To: Ayşe Yılmaz <ayse@musteri.com.tr>
Subject: Aralık ekstreniz

Aralık dönemi ekstrenizde 2 adet 349,90 TL tutarında işlem bulunmaktadır.
"""

OUTLOOK_TURKISH = """Merhaba, bu mail dolandırıcılık olabilir mi?

Kimden: Hesap Güvenliği <guvenlik@destek-example.com>
Gönderildi: 6 Aralık 2026 Pazar 21:14
Kime: Ayşe Yılmaz <ayse@musteri.com.tr>
Konu: Şifrenizi yenileyin

Hesabınıza yeni bir cihazdan giriş yapıldı, şifrenizi hemen yenileyin.
"""

OUTLOOK_ORIGINAL = """Bilginize, iade hâlâ gelmedi.

-----Original Message-----
From: İade Birimi <iade@example.net>
Sent: Thursday, December 3, 2026 4:12 PM
To: ayse@musteri.com.tr
Subject: İade talebiniz

İade talebiniz onaylanmıştır, 3 iş günü içinde hesabınızda olacaktır.
"""


def plain_mail(subject: str, body: str, headers: dict[str, str] | None = None) -> bytes:
    return customer_mail(sender=CUSTOMER, subject=subject, body=body, headers=headers)


def gmail_mail(subject: str, body: str) -> bytes:
    """Gmail sends a forward as text and HTML, the forward in a gmail_quote div."""
    mail = EmailMessage()
    mail["From"] = CUSTOMER
    mail["To"] = DESK
    mail["Subject"] = subject
    mail["Message-ID"] = make_msgid(domain="mail.gmail.com")
    mail.set_content(body)
    html = "".join(f"<div>{line}</div>" if line else "<br>" for line in body.split("\n"))
    mail.add_alternative(f'<div dir="ltr"><div class="gmail_quote">{html}</div></div>', "html")
    return mail.as_bytes(policy=SMTP)


def recorded_opening(state: State, raw: bytes) -> str:
    result = deliver(state, raw)
    assert result.state == "done", result.detail
    ref = result.detail.split()[1].rstrip(":")
    return str(messages_of(state, ref)[0]["text"])


@pytest.mark.parametrize(
    ("subject", "body", "forwarded"),
    [
        ("Fwd: Hesabınız askıya alındı", GMAIL, "24 saat içinde bağlantıya tıklayın"),
        ("Fwd: Kartınız geçici olarak kapatıldı", GMAIL_TURKISH, "şüpheli işlem nedeniyle"),
        ("Fwd: Havale işleminiz gerçekleşti", APPLE_MAIL, "> 1.500,00 TL tutarındaki havaleniz"),
        ("Fwd: Çekim talebiniz reddedildi", THUNDERBIRD, "eksik belge nedeniyle reddedilmiştir"),
        ("FW: Aralık ekstreniz", OUTLOOK, "2 adet 349,90 TL tutarında"),
        ("İLT: Şifrenizi yenileyin", OUTLOOK_TURKISH, "şifrenizi hemen yenileyin"),
        ("WG: İade talebiniz", OUTLOOK_ORIGINAL, "3 iş günü içinde hesabınızda"),
    ],
    ids=["gmail", "gmail-tr", "apple", "thunderbird", "outlook", "outlook-tr", "outlook-original"],
)
def test_a_forward_that_opens_a_ticket_is_kept_with_the_customers_words(
    state: State, subject: str, body: str, forwarded: str
) -> None:
    text = recorded_opening(state, plain_mail(subject, body))
    assert forwarded in text
    first = body.strip().split("\n")[0]  # the customer's words, or the marker when none
    assert text.startswith(first)


def test_gmail_html_and_text_forward_keeps_its_headers_and_body(state: State) -> None:
    text = recorded_opening(state, gmail_mail("Fwd: Hesabınız askıya alındı", GMAIL))
    assert text.startswith("Merhaba, bu mail bana geldi. Gerçekten sizden mi?")
    assert "---------- Forwarded message ---------" in text
    assert "From: Papara Destek <destek@papara-guvenlik.net>" in text
    assert "24 saat içinde bağlantıya tıklayın" in text


def test_outlook_original_message_without_a_forward_subject_is_a_quote(state: State) -> None:
    """RE: (or no prefix): the same block is the history of a reply, cut as before."""
    for subject in ("RE: İade talebiniz", "İade talebiniz", "RE: FW: İade talebiniz"):
        message = parse_message(plain_mail(subject, OUTLOOK_ORIGINAL))
        assert opening_text(message.full_text, subject) == "Bilginize, iade hâlâ gelmedi."
    message = parse_message(plain_mail("Aralık ekstreniz", OUTLOOK))
    assert "349,90" not in opening_text(message.full_text, message.subject)


@pytest.mark.parametrize("subject", ["Fw: Ekstre", "TR: Ekstre", "RV: Ekstre", "[TD-1] FW: Ekstre"])
def test_the_forward_prefixes_of_outlooks_languages(subject: str) -> None:
    assert "349,90 TL" in opening_text(OUTLOOK, subject)


def test_a_forward_after_a_quote_is_kept_on_a_new_ticket_not_on_a_reply() -> None:
    body = (
        "Aşağıdaki yazışmaya bakar mısınız?\n\n"
        "On Sun, 6 Dec 2026 at 10:00, Ali Veli <ali@example.com> wrote:\n"
        "> Tamam, iletiyorum.\n\n" + GMAIL.split("\n\n", 1)[1]
    )
    opening = opening_text(body, "Re: Hesap")
    assert opening.startswith("Aşağıdaki yazışmaya bakar mısınız?")
    assert "24 saat içinde bağlantıya tıklayın" in opening
    assert "> Tamam, iletiyorum." not in opening
    assert follow_up_text(body, "Re: Hesap") == "Aşağıdaki yazışmaya bakar mısınız?"


def test_a_reply_keeps_a_forward_above_its_quote_and_cuts_the_quote_as_before(
    state: State, clock: FixedClock
) -> None:
    ref = open_ticket(state, clock, CUSTOMER, "Para çekme talebim", "Para çekme talebim bekliyor")
    forward = plain_mail(f"Fwd: [{ref}] Havale işleminiz gerçekleşti", APPLE_MAIL)
    joined = deliver(state, forward)
    assert joined.detail.startswith(f"ticket {ref}: reference"), joined.detail
    text = str(messages_of(state, ref)[-1]["text"])
    assert "Havale yaptım ama bakiyeme yansımadı" in text
    assert "> 1.500,00 TL tutarındaki havaleniz" in text
    # A plain reply on the same ticket: its quote is cut, nothing forwarded is made up.
    reply = (
        "Hâlâ bekliyorum.\n\nOn Mon, 23 Nov 2026 at 09:00, Destek <destek@example.com> wrote:\n"
        "> Talebinizi aldık.\n"
    )
    deliver(state, plain_mail(f"Re: [{ref}] Para çekme talebim", reply))
    assert messages_of(state, ref)[-1]["text"] == "Hâlâ bekliyorum."


def test_a_reply_to_a_ticket_with_an_outlook_block_stays_cut(
    state: State, clock: FixedClock
) -> None:
    ref = open_ticket(state, clock, CUSTOMER, "Para çekme talebim", "Para çekme talebim bekliyor")
    deliver(state, plain_mail(f"RE: [{ref}] Para çekme talebim", OUTLOOK_ORIGINAL))
    assert messages_of(state, ref)[-1]["text"] == "Bilginize, iade hâlâ gelmedi."


def _verified_state(tmp_path: Path, clock: FixedClock) -> State:
    trust = '[smtp_in]\nlisten = "127.0.0.1:2599"\ntrusted_authserv_ids = ["mx.musteri.com.tr"]\n'
    return open_state(load_config(write_config(tmp_path, extra=trust)), clock=clock)


_PASSED = {"Authentication-Results": "mx.musteri.com.tr; dkim=pass header.d=musteri.com.tr"}


def test_the_repeated_request_check_compares_what_was_forwarded(
    tmp_path: Path, clock: FixedClock
) -> None:
    """The same words above two different forwards are two requests; the same forward again is
    one (thread_finder compares the kept text, as the first request was kept)."""
    state = _verified_state(tmp_path, clock)
    note = "Bu maile bakar mısınız?\n\n"
    first = note + GMAIL.split("\n\n", 1)[1]
    second = note + GMAIL_TURKISH.split("\n\n", 1)[1]
    opened = deliver(state, plain_mail("Fwd: Bildirim", first, _PASSED))
    assert opened.state == "done", opened.detail
    ref = opened.detail.split()[1].rstrip(":")
    clock.advance(timedelta(minutes=20))
    other = deliver(state, plain_mail("Fwd: Bildirim", second, _PASSED))
    assert "repeats" not in other.detail and ref not in other.detail, other.detail
    assert len(list_tickets(state.db)) == 2
    clock.advance(timedelta(minutes=20))
    again = deliver(state, plain_mail("Fwd: Bildirim", first, _PASSED))
    assert again.detail.startswith(f"ticket {ref}: repeats the request"), again.detail
    repeat = [m for m in messages_of(state, ref) if m["kind"] == "customer"][-1]
    assert "24 saat içinde" in str(repeat["text"])  # recorded as it was compared
    state.close()


# The shared corpus: real forwards as the clients sent them. Read where TICKETD_CORPUS points.
CORPUS = os.environ.get("TICKETD_CORPUS")
needs_corpus = pytest.mark.skipif(not CORPUS, reason="TICKETD_CORPUS is not set")

CORPUS_FORWARDS = {
    # Gmail, own words above the forward.
    "ruby-mail/emails/mime_emails/raw_email2.eml": (
        "We should not include these files or vcards as attachments.",
        "Just started to use my xxxxxxxx account",
    ),
    # Gmail, a forward of a forward and nothing of the sender's own.
    "flanker/messages/multi-received-headers.eml": ("", "Forward please"),
    # Thunderbird, tab-aligned headers, nothing of the sender's own.
    "django-helpdesk/utf-nondecodable.eml": ("", "podle domluvy bych Tě poprosila"),
    # Apple Mail: the forwarded mail quoted below "Begin forwarded message:".
    "sisimai/maildir/bsd/lhost-sendmail-14.eml": (
        "Forward the message.",
        "> The original message was received at Thu, 29 Apr 2009",
    ),
}


@needs_corpus
@pytest.mark.parametrize("rel", sorted(CORPUS_FORWARDS))
def test_corpus_forwards_keep_the_forwarded_mail(rel: str) -> None:
    assert CORPUS is not None
    message = parse_message((Path(CORPUS) / rel).read_bytes())
    own, forwarded = CORPUS_FORWARDS[rel]
    text = kept_text(message, opening=True)
    assert forwarded in text
    assert text.startswith(own)
    assert forwarded in kept_text(message, opening=False)  # before any quote: kept on a reply


@needs_corpus
@pytest.mark.parametrize(
    "name", ["aol.eml", "comcast.eml", "yahoo.eml", "hotmail.eml", "outlook.eml", "gmail.eml"]
)
def test_corpus_replies_keep_only_the_reply(name: str) -> None:
    """talon's replies, "Original Message" blocks under Re: among them: no forward in them."""
    assert CORPUS is not None
    message = parse_message((Path(CORPUS) / "talon" / "standard_replies" / name).read_bytes())
    assert kept_text(message, opening=True) == message.text
    assert kept_text(message, opening=False) == message.text
