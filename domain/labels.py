"""The words and times people read in mail, in the reader's language and the desk's zone.

Ticket states, categories and priorities are stored as English codes (`open`, `payment`,
`high`); a Turkish desk's agents read "açık", "ödeme", "yüksek". Templates call `label`
(`{{ label(status, "status") }}`), which looks the code up here for the template's
language; a code the catalogue does not know is shown as it is. Times are shown in the desk's
zone (`[desk] timezone`, default Europe/Istanbul for a `tr` desk, UTC for an `en` one) with the
zone's abbreviation or offset, never as bare UTC.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

LABELS: dict[str, dict[str, dict[str, str]]] = {
    "tr": {
        "status": {
            "open": "açık",
            "pending": "beklemede",
            "closed": "kapalı",
            "merged": "birleştirildi",
        },
        "category": {
            "account": "hesap",
            "payment": "ödeme",
            "bonus": "bonus",
            "technical": "teknik",
            "kyc": "kimlik",
            "complaint": "şikayet",
            "other": "diğer",
        },
        "priority": {"high": "yüksek", "normal": "normal", "low": "düşük"},
        # Who wrote an entry of a ticket's history (`#geçmiş`).
        "kind": {
            "customer": "müşteri",
            "agent": "temsilci",
            "note": "not",
            "auto": "otomatik",
            "system": "sistem",
        },
    },
    "en": {},
}


def label(language: str, kind: str, code: str | None) -> str:
    """The word for `code` (a status, a category, a priority) in `language`."""
    if code is None:
        return "-"
    return LABELS.get(language, {}).get(kind, {}).get(code, code)


def local_time(moment: datetime, zone: str) -> str:
    """`2026-12-02 14:30 +03` in the desk's zone (the abbreviation when the zone has one)."""
    moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)  # stored UTC
    local = moment.astimezone(ZoneInfo(zone))
    name = local.strftime("%Z")
    if not name or name[0] in "+-":
        offset = local.strftime("%z")
        name = offset[:3] if offset.endswith("00") else offset
    return f"{local:%Y-%m-%d %H:%M} {name}"


# What an agent's refused mail was refused for, in Turkish: the checks write English (the log
# and the ticket's note keep it), the agent reads their desk's language. Each form is matched
# whole; a problem no form matches is shown as it is.
_PROBLEMS_TR: tuple[tuple[str, str], ...] = (
    (r"unknown command (#\S+)", r"bilinmeyen komut \1"),
    (r"(#\w+) takes no argument \(got (.+)\)", r"\1 bir şey almaz (yazılan: \2)"),
    (r"(#\w+) needs an argument", r"\1 komutunun yanına ne yapılacağını yazın"),
    (r"unknown category (.+)", r"bilinmeyen kategori \1"),
    (
        r"priority must be high, normal or low: (.+)",
        r"öncelik yüksek, normal ya da düşük olmalı: \1",
    ),
    (
        r"#kyc takes approve or reject REASON, or request \(got (.+)\)",
        r"#kyc onayla, #kyc reddet SEBEP ya da #kyc iste yazın (yazılan: \1)",
    ),
    (
        r"#kyc reject needs the reason the customer will read",
        r"#kyc reddet komutunun yanına müşterinin okuyacağı sebebi yazın",
    ),
    (r"#kyc (\w+) takes no reason", r"#kyc \1 sebep almaz"),
    (r"(.+) is not a ticket reference", r"\1 bir talep numarası değil"),
    (r"one #kyc command per mail", r"bir e-postada tek #kyc komutu olabilir"),
    (r"#close and #pending exclude each other", r"#kapat ve #beklemede birlikte kullanılamaz"),
    (r"#assign: no agent called (.+)", r"#ata: \1 adında bir temsilci yok"),
    (r"#merge: no ticket (\S+)", r"#birleştir: \1 numaralı talep yok"),
    (
        r"#merge: a ticket cannot be merged into itself",
        r"#birleştir: talep kendisiyle birleştirilemez",
    ),
    (r"#merge: (\S+) is not in your queues", r"#birleştir: \1 sizin kuyruklarınızda değil"),
    (
        r"#merge: (\S+) is (\S+)'s and (\S+) is (\S+)'s; merged, answers would reach only (\S+)\. "
        r"Write #birleştir (\S+) zorla \(#merge \S+ force\) to merge anyway",
        r"#birleştir: \1 \2 müşterisinin, \3 \4 müşterisinin; birleşirse yanıtlar yalnızca \5 "
        r"adresine gider. Yine de birleştirmek için: #birleştir \6 zorla",
    ),
    (r"#note needs the text of the note", r"#not komutunun altına notun metnini yazın"),
    (
        r"your reply has no text of its own above the quoted mail: "
        r"nothing was sent to the customer",
        r"yanıtınızda alıntılanan e-postanın üstünde kendi metniniz yok: müşteriye bir şey gitmedi",
    ),
    (
        r"ticket (\S+) is in queue (\S+), not one of yours",
        r"\1 numaralı talep \2 kuyruğunda, sizin kuyruklarınızdan değil",
    ),
    (
        r"#kyc: only agents of the identity \(kyc\) queue may decide on documents",
        r"#kyc: belgeler hakkında yalnızca kimlik (kyc) kuyruğunun temsilcileri karar verebilir",
    ),
    (
        r"#kyc: ticket (\S+) has no documents waiting for a decision",
        r"#kyc: \1 numaralı talepte karar bekleyen belge yok",
    ),
    (
        r"the address you wrote to \((\S+)\) is not signed with this desk's current secret \(a "
        r"reply address from before the secret changed\): nothing was done and nothing was sent "
        r"to the customer\. Answer this mail instead; its reply address is the ticket's "
        r"current one",
        r"yazdığınız adres (\1) masanın şu anki gizli anahtarıyla imzalı değil (anahtar "
        r"değişmeden önceki bir yanıt adresi): hiçbir şey yapılmadı, müşteriye bir şey gitmedi. "
        r"Bunun yerine bu e-postayı yanıtlayın; onun yanıt adresi talebin güncel adresidir",
    ),
    (
        r"the ticket's customer address, (\S+), is a no-reply or mail system address that "
        r"nobody reads, so no answer is sent there; write to the person the message names from "
        r"your own mailbox, or send your text with #note to keep it on the ticket",
        r"talebin müşteri adresi \1 kimsenin okumadığı bir no-reply ya da posta sistemi adresi; "
        r"oraya yanıt gönderilmez: iletide adı geçen kişiye kendi posta kutunuzdan yazın ya da "
        r"metninizi talepte tutmak için #not ile gönderin",
    ),
)
_PROBLEM_FORMS = tuple((re.compile(f"^{form}$"), words) for form, words in _PROBLEMS_TR)


def problem(language: str, text: str) -> str:
    """A refusal reason in the agent's desk language (Turkish forms above; English as it is)."""
    if language != "tr":
        return text
    for form, words in _PROBLEM_FORMS:
        if form.match(text):
            return form.sub(words, text)
    return text
