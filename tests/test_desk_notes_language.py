"""A Turkish desk's agents read ticketd's own notes and the reasons a mail was not sent in
Turkish, with times in the desk's zone (issue 15, point 9, the rest): the notes are stored as
written (English, like the codes: the log, `tickets show` and `--json` keep them), and every
mail that shows one to an agent (`#geçmiş`, the notification's "not sent" list, the not-sent
mail) words it through the catalogue in domain/labels.py."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import pytest
from sqlalchemy import select

from domain.clock import FixedClock
from domain.config import load_config
from domain.labels import _NOTE_FORMS, note
from outbound.addresses import agent_reply_address
from storage.models import Ticket, TicketMessage
from tests.helpers import customer_mail, write_config
from tests.test_kyc import OTHER_AGENT, TEAM
from tests.test_sla_survey import outbox
from tests.test_threading import deliver
from ticketd.state import State, open_state

# Every form of the catalogue, as ticketd writes it and as a Turkish desk's agent reads it.
NOTES = [
    ("Message held: a file carries a virus", "İleti bekletiliyor: bir dosyada virüs var"),
    ("Mail from agent a@x.com refused", "Temsilci a@x.com e-postası reddedildi"),
    ("Delivery failed: Talebiniz alındı", "Teslim edilemedi: Talebiniz alındı"),
    ("Delivery failed", "Teslim edilemedi"),
    ("Delivery delayed", "Teslim gecikti"),
    ("Delivery report", "Teslim raporu"),
    ("Security alert", "Güvenlik uyarısı"),
    (
        "m@evil.example is not a configured agent; told: g@destek.example.com",
        "m@evil.example is not a configured agent; bildirilenler: g@destek.example.com",
    ),
    ("Verification unchanged", "Doğrulama değişmedi"),
    ("Message only partly read", "İleti yalnızca kısmen okundu"),
    ("Message-ID reused", "Message-ID yeniden kullanılmış"),
    ("Repeated request merged", "Tekrarlanan talep birleştirildi"),
    ("Not checked for spam", "Spam denetimi yapılamadı"),
    ("Sender not proven: no automatic answer", "Gönderen kanıtlanmadı: otomatik yanıt yok"),
    (
        "Marked spam: no automatic answer, no agent told",
        "Spam olarak işaretlendi: otomatik yanıt yok, temsilcilere bildirilmedi",
    ),
    (
        "Identity documents from an unproven sender",
        "Kanıtlanmamış bir göndericiden kimlik belgeleri",
    ),
    ("3 identity document(s) refused", "3 kimlik belgesi reddedildi"),
    ("Identity documents over the limit", "Sınırı aşan kimlik belgeleri"),
    ("No survey mail sent", "memnuniyet anketi gönderilmedi"),
    ("ack mail delayed", "alındı bildirimi ertelendi"),
    ("Closed automatically", "Otomatik olarak kapatıldı"),
    ("Identity documents requested", "Kimlik belgeleri istendi"),
    ("Identity verification expired", "Kimlik doğrulamasının süresi doldu"),
    (
        "No ack mail went to c@x.com: no address to answer.",
        "alındı bildirimi c@x.com adresine gönderilmedi: yanıtlanacak bir adres yok.",
    ),
    (
        "The survey mail to c@x.com waits until 2026-11-23 12:02 +03: rate limit: an automatic "
        "mail went to c@x.com at 2026-11-23 12:00 +03.",
        "memnuniyet anketi (c@x.com) 2026-11-23 12:02 +03 zamanına kadar bekliyor: gönderim "
        "sınırı: c@x.com adresine 2026-11-23 12:00 +03 zamanında otomatik bir e-posta gitti.",
    ),
    (
        "The ack mail to c@x.com could not be delivered: 550 no such user",
        "alındı bildirimi c@x.com adresine teslim edilemedi: 550 no such user",
    ),
    (
        "No answer from the customer since 2026-11-20 12:00 +03; closed after 72 hours "
        "(sla.auto_close_hours).",
        "Müşteriden 2026-11-20 12:00 +03 zamanından beri yanıt yok; 72 saat sonra kapatıldı "
        "(sla.auto_close_hours).",
    ),
    (
        "A message from c@x.com was not added to this ticket: EICAR found. It is held in "
        "quarantine (`ticketd quarantine list`, message 7).",
        "c@x.com adresinden gelen bir ileti bu talebe eklenmedi: EICAR found. Karantinada "
        "bekletiliyor (`ticketd quarantine list`, ileti 7).",
    ),
    (
        "c@x.com sent this request again; it was added here instead of opening a new ticket.",
        "c@x.com bu talebi yeniden gönderdi; yeni bir talep açılmadı, buraya eklendi.",
    ),
    (
        "This message has the Message-ID <a@b> of an earlier, different message (message 4 of "
        "ticket 7KQM-X3P9). It is kept as a message of its own; the sender's mail program or "
        "service reuses Message-IDs.",
        "Bu iletinin Message-ID'si <a@b>, daha önceki farklı bir iletininkiyle aynı (7KQM-X3P9 "
        "talebinin 4 numaralı iletisi). Ayrı bir ileti olarak tutuluyor; göndericinin e-posta "
        "programı ya da hizmeti Message-ID'leri yeniden kullanıyor.",
    ),
    (
        "The spam filter could not check this mail: timed out.",
        "Spam filtresi bu e-postayı denetleyemedi: timed out.",
    ),
    (
        "c@x.com: not proven. No acknowledgement or other automatic mail was sent; answer only "
        "once you trust the sender.",
        "c@x.com: not proven. Alındı bildirimi ya da başka bir otomatik e-posta gönderilmedi; "
        "yalnızca göndericiye güvendiğinizde yanıtlayın.",
    ),
    (
        "The documents were approved, but the verification of c@x.com is unchanged: they did "
        "not come in a mail proven to be from that address. The customer was not told; ask "
        "with `#kyc request` and decide on the answer.",
        "Belgeler onaylandı, ancak c@x.com doğrulaması değişmedi: o adresten geldiği "
        "kanıtlanmış bir e-postayla gelmediler. Müşteriye bildirilmedi; `#kyc iste` ile isteyin "
        "ve gelen yanıta göre karar verin.",
    ),
    (
        "a@x.com asked c@x.com for identity documents (ticketd kyc request); customer mail sent.",
        "a@x.com, c@x.com adresinden kimlik belgeleri istedi (ticketd kyc request); müşteri "
        "e-postası: sent.",
    ),
    (
        "The verification of c@x.com expired (approved): valid for 365 days.",
        "c@x.com kimlik doğrulamasının süresi doldu (approved): valid for 365 days.",
    ),
    (
        "Sender not proven: nobody made a participant",
        "Gönderen kanıtlanmadı: kimse katılımcı yapılmadı",
    ),
    ("Not a mail of agent a@x.com", "a@x.com temsilcisinin e-postası değil"),
    (
        "Mail from agent a@x.com to destek@example.com, not to the ticket's agent reply "
        "address: commands not applied (#close).",
        "Temsilci a@x.com e-postası talebin temsilci yanıt adresine değil destek@example.com "
        "adresine geldi: komutlar uygulanmadı (#close).",
    ),
    (
        "a@x.com was told to write to destek+a.r.s@example.com (ticket 7KQM-X3P9).",
        "a@x.com temsilcisine destek+a.r.s@example.com adresine yazması söylendi (7KQM-X3P9 "
        "talebi).",
    ),
    (
        "a@x.com was not told: rate limit: 3 automatic mails to a@x.com in the last hour.",
        "a@x.com temsilcisine bildirilmedi: gönderim sınırı: son bir saatte a@x.com adresine 3 "
        "otomatik e-posta.",
    ),
    (
        "c@x.com is not proven to be who the From names (no signed reply address or Message-ID "
        "of ours with the customer's From, no aligned DKIM or SPF pass), so this mail made "
        "nobody a participant: e@x.com, f@x.com. A mail of theirs naming this ticket joins it "
        "only when it answers one of our mails or is sent to the ticket's reply address; "
        "otherwise it opens a ticket of its own that remembers the reference.",
        "c@x.com adresinin From'da yazan kişi olduğu kanıtlanmadı (müşterinin From'uyla bizim "
        "imzalı yanıt adresimiz ya da Message-ID'miz yok, hizalı bir DKIM ya da SPF geçişi "
        "yok); bu yüzden bu e-posta kimseyi katılımcı yapmadı: e@x.com, f@x.com. Onların bu "
        "talebi anan bir e-postası, ancak bizim bir e-postamızı yanıtlıyorsa ya da talebin "
        "yanıt adresine gönderildiyse bu talebe eklenir; yoksa referansı hatırlayan ayrı bir "
        "talep açar.",
    ),
    (
        "The From names agent Ayşe Yılmaz <a@x.com>, but the mail did not come to the ticket's "
        "agent reply address with the agent's proof (that signed address and an aligned DKIM "
        "or SPF pass), so it is not the agent's: it is kept as a message from outside the "
        "team, no command in it was run and nothing of it was sent to the customer.",
        "From, Ayşe Yılmaz <a@x.com> temsilcisini gösteriyor, ancak e-posta talebin temsilci "
        "yanıt adresine temsilci kanıtıyla (o imzalı adres ve hizalı bir DKIM ya da SPF "
        "geçişi) gelmedi; bu yüzden temsilcinin değil: ekip dışından bir ileti olarak tutuldu, "
        "içindeki hiçbir komut uygulanmadı ve müşteriye hiçbir şey gönderilmedi.",
    ),
    ("SMTP sender: e@evil.example.", "SMTP göndericisi: e@evil.example."),
    ("no address to answer", "yanıtlanacak bir adres yok"),
    ("destek@example.com is an address of the desk", "destek@example.com masanın kendi adresi"),
    (
        "c@x.com asked for the erasure of their data: no automatic mail",
        "c@x.com verilerinin silinmesini istedi: otomatik e-posta gönderilmez",
    ),
    (
        "c@x.com is suppressed until 2026-11-30 12:00 +03: bounced: User unknown",
        "c@x.com adresine 2026-11-30 12:00 +03 zamanına kadar e-posta gönderilmiyor: bounced: "
        "User unknown",
    ),
    (
        "rate limit: an automatic mail went to c@x.com at 2026-11-23 12:00 +03",
        "gönderim sınırı: c@x.com adresine 2026-11-23 12:00 +03 zamanında otomatik bir e-posta "
        "gitti",
    ),
    (
        "rate limit: an automatic mail goes to c@x.com at 2026-11-23 12:02 +03",
        "gönderim sınırı: c@x.com adresine 2026-11-23 12:02 +03 zamanında otomatik bir e-posta "
        "gidecek",
    ),
    (
        "rate limit: 3 automatic mails to c@x.com in the last hour",
        "gönderim sınırı: son bir saatte c@x.com adresine 3 otomatik e-posta",
    ),
    (" (message 4 of ticket 7KQM-X3P9)", " (7KQM-X3P9 talebinin 4 numaralı iletisi)"),
]


@pytest.mark.parametrize(("english", "turkish"), NOTES, ids=[e[:40] for e, _ in NOTES])
def test_each_note_reads_in_turkish_and_stays_english_for_english(
    english: str, turkish: str
) -> None:
    assert note("tr", english) == turkish
    assert note("en", english) == english


def test_the_table_covers_every_form_of_the_catalogue() -> None:
    unmatched = [
        form.pattern for form, _ in _NOTE_FORMS if not any(form.match(e) for e, _ in NOTES)
    ]
    assert unmatched == []


def test_a_text_no_form_knows_is_shown_as_it_is() -> None:
    assert (
        note("tr", "Something new\nNo ack mail sent")
        == "Something new\nalındı bildirimi gönderilmedi"
    )


@pytest.fixture
def desk(tmp_path: Path, clock: FixedClock) -> Iterator[State]:
    opened = open_state(load_config(write_config(tmp_path, extra=TEAM)), clock=clock)
    yield opened
    opened.close()


def test_an_agent_reads_the_desks_notes_in_turkish_with_local_times(
    desk: State, clock: FixedClock
) -> None:
    # Three requests a minute apart: the second acknowledgement waits out the interval, the
    # third is not sent (the rate limit), and its ticket gets a note saying why, with the time
    # of the second in the desk's zone.
    deliver(desk, customer_mail(sender="can@example.net", subject="Para çekme", body="Bekliyor"))
    clock.advance(timedelta(seconds=60))
    deliver(desk, customer_mail(sender="can@example.net", subject="Bonus", body="Bonus gelmedi"))
    clock.advance(timedelta(seconds=70))  # past the first's interval, within the second's
    deliver(desk, customer_mail(sender="can@example.net", subject="Hesap", body="Hesap kilitli"))
    with desk.db.read() as session:
        ref = session.scalars(select(Ticket.ref).order_by(Ticket.id.desc())).first()
        [stored] = session.scalars(
            select(TicketMessage.text).where(TicketMessage.dedupe_key.like("note:silent:%"))
        )
    assert ref is not None
    # Stored as ticketd writes it (English), the time in the desk's zone, never bare UTC.
    assert stored == (
        "No ack mail went to can@example.net: rate limit: an automatic mail went to "
        "can@example.net at 2026-11-23 12:02 +03."
    )
    turkish = (
        "alındı bildirimi can@example.net adresine gönderilmedi: gönderim sınırı: "
        "can@example.net adresine 2026-11-23 12:02 +03 zamanında otomatik bir e-posta gitti."
    )
    notified = [m for m in outbox(desk, "notify") if ref in m.subject]
    assert notified and all(f"  - {turkish}" in m.text for m in notified), notified[0].text
    address = agent_reply_address(desk.config.desk, ref)
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = OTHER_AGENT, address, f"Re: [#{ref}]"
    mail.set_content("#geçmiş")
    assert deliver(desk, mail.as_bytes(policy=SMTP), (address,)).state == "done"
    [history] = outbox(desk, "history")
    assert "No ack mail sent" not in history.text
    assert "alındı bildirimi gönderilmedi" in history.text  # the note's subject
    assert f"> {turkish}" in history.text, history.text
    assert "(sistem)" in history.text and "UTC" not in history.text
