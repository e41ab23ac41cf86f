"""The synthetic desk mail of issue 19: Turkish and English support requests of about 2 KB, a
fifth with a 100 KB attachment, half of them replies to an earlier message of the same customer.

Dates are spread over the year before `start`, one customer writing a few times, so an import of
this set is historical mail: what "lately" means must come from each message's own date.
"""

from __future__ import annotations

import random
import textwrap
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr

DESK = "destek@example.com"
_TR_NAMES = ("Ayşe Yılmaz", "Mehmet Öztürk", "Zeynep Kaya", "Ömer Çelik", "Gülşen Şahin")
_EN_NAMES = ("Emily Clark", "James Turner", "Olivia Hughes", "Daniel Wright", "Sophie Baker")
_TR_TOPICS = (
    ("Para çekme talebim", "Para çekme talebim üç gündür beklemede, hâlâ hesabıma geçmedi."),
    ("Hesabım kilitlendi", "Şifremi üç kez yanlış girdim ve hesabım kilitlendi, açar mısınız?"),
    ("Bonus yüklenmedi", "Yatırım yaptım ama hoş geldin bonusu hesabıma yüklenmedi."),
    ("Kimlik belgesi onayı", "Kimlik belgemi dün gönderdim, onay için ne kadar beklemeliyim?"),
    ("Yatırma işlemi görünmüyor", "Kredi kartımdan çekildi ama bakiyemde görünmüyor."),
)
_EN_TOPICS = (
    ("Withdrawal still pending", "My withdrawal has been pending for three days now."),
    ("Cannot log in", "I reset my password twice and I still cannot log in to my account."),
    ("Deposit not credited", "I deposited yesterday but the money is not in my balance."),
    ("Verification documents", "I uploaded my ID and a utility bill, please verify my account."),
    ("Bonus terms", "Can you explain the wagering requirements of the weekly bonus?"),
)
_TR_TEXT = (
    "hesabım çekim yatırım bakiye onay belge kimlik şifre işlem gün hafta lütfen teşekkürler "
    "destek müşteri ödeme banka kart havale bekliyorum acil sorun çözüm yardım"
)
_EN_TEXT = (
    "account withdrawal deposit balance approval document identity password transaction day "
    "week please thanks support customer payment bank card transfer waiting urgent problem help"
)
_TR_WORDS = tuple(_TR_TEXT.split())
_EN_WORDS = tuple(_EN_TEXT.split())


@dataclass(frozen=True)
class _Sent:
    name: str
    address: str
    turkish: bool
    topic: str
    body: str
    message_id: str
    date: datetime


def _filler(rng: random.Random, turkish: bool, size: int) -> str:
    words = _TR_WORDS if turkish else _EN_WORDS
    text = " ".join(rng.choice(words) for _ in range(size // 7))
    return textwrap.fill(text, 72)


def desk_mail(count: int, seed: int = 19, start: datetime | None = None) -> list[bytes]:
    """`count` messages as CRLF bytes, oldest first."""
    rng = random.Random(seed)
    start = start or datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    step = timedelta(days=365) / max(count, 1)
    sent: list[_Sent] = []
    out: list[bytes] = []
    for index in range(count):
        date = start - timedelta(days=365) + step * index
        parent = rng.choice(sent[-200:]) if sent and index % 2 else None
        mail = EmailMessage()
        if parent is None:
            turkish = rng.random() < 0.6
            name = rng.choice(_TR_NAMES if turkish else _EN_NAMES)
            # A customer writes a few times a year: the repeated-request check has candidates.
            customer = rng.randrange(max(10, count // 10))
            address = f"musteri{customer}@{'ornek.com.tr' if turkish else 'example.net'}"
            topic, opening = rng.choice(_TR_TOPICS if turkish else _EN_TOPICS)
            body = f"{opening}\n\n{_filler(rng, turkish, 1500)}\n"
            subject = topic
        else:
            turkish, name, address, topic = (
                parent.turkish,
                parent.name,
                parent.address,
                parent.topic,
            )
            when = format_datetime(parent.date)
            wrote = (
                f"{when} tarihinde {name} şunu yazdı:" if turkish else f"On {when}, {name} wrote:"
            )
            quoted = "\n".join(f"> {line}" for line in parent.body.splitlines())
            body = f"{_filler(rng, turkish, 400)}\n\n{wrote}\n{quoted}\n"
            subject = ("YNT: " if turkish else "Re: ") + topic
            mail["In-Reply-To"] = f"<{parent.message_id}>"
            mail["References"] = f"<{parent.message_id}>"
        domain = address.split("@")[1]
        message_id = f"desk.{seed}.{index}@{domain}"
        mail["Authentication-Results"] = (
            f"mx.example.com; dkim=pass header.d={domain}; spf=pass smtp.mailfrom={address}"
        )
        mail["From"] = formataddr((name, address))
        mail["To"] = formataddr(("Destek", DESK))
        mail["Subject"] = subject
        mail["Date"] = format_datetime(date)
        mail["Message-ID"] = f"<{message_id}>"
        mail.set_content(body)
        if index % 5 == 0:
            filename = "dekont_ödeme.pdf" if turkish else "receipt.pdf"
            data = b"%PDF-1.4\n" + rng.randbytes(100_000)
            mail.add_attachment(data, maintype="application", subtype="pdf", filename=filename)
        sent.append(_Sent(name, address, turkish, topic, body, message_id, date))
        out.append(mail.as_bytes(policy=SMTP))
    return out
