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
    (r"unknown command (#.*)", r"bilinmeyen komut \1"),
    (
        r"(#\S+) on line (\d+) is under the text: commands go on lines of their own at the top "
        r"of the mail; nothing was sent to the customer",
        r"\1 (\2. satır) metnin altında: komutlar e-postanın en üstüne, her biri kendi satırına "
        r"yazılır; müşteriye bir şey gönderilmedi",
    ),
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
    (
        r"#merge takes a reference and optionally 'zorla'/'force' \(got (.+)\)",
        r"#birleştir bir talep numarası ve isterseniz 'zorla' alır (yazılan: \1)",
    ),
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
    (r"the answer has no text", r"yanıtın metni yok"),
    (r"(\S+) is merged: answer its survivor", r"\1 birleştirildi: birleştiği talebi yanıtlayın"),
    (r"this file is no longer kept", r"bu dosya artık saklanmıyor"),
    (
        r"answers and notes are an agent's: use a token of `--agent EMAIL`",
        r"yanıt ve notlar temsilcilerindir: yöneticiler yanıt yazmaz",
    ),
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
_PROBLEMS_TR += (
    (
        r"your mail went to (\S+), not to the ticket's agent reply address, so it counts as "
        r"mail from outside the team: no command in it was applied and nothing of it was sent "
        r"to the customer\. Answer the ticket's notification, or write to (\S+), so that your "
        r"answer and your commands count; if you did not send it, someone wrote under your "
        r"address",
        r"e-postanız talebin temsilci yanıt adresine değil \1 adresine geldi; bu yüzden ekip "
        r"dışından bir e-posta sayıldı: içindeki hiçbir komut uygulanmadı, müşteriye hiçbir şey "
        r"gönderilmedi. Yanıtınızın ve komutlarınızın geçmesi için talebin bildirimini "
        r"yanıtlayın ya da \2 adresine yazın; bu e-postayı siz göndermediyseniz biri sizin "
        r"adresinizle yazmış",
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


# What ticketd writes on a ticket (its system notes) and why a mail was not sent, in Turkish.
# The notes are stored as written (English: the log, `tickets show` and `--json` keep them, as
# they keep the codes); an agent of a Turkish desk reads them through `note` wherever mail shows
# them (`#geçmiş`, the notification's "not sent" list, the not-sent mail). Each form is matched
# whole, line by line; a named group in _INNER is worded again (a reason inside a note); a
# mail kind is named with its label. A text no form matches is shown as it is.
_NOTES_TR: tuple[tuple[str, str], ...] = (
    # Subjects.
    (r"Message held: a file carries a virus", "İleti bekletiliyor: bir dosyada virüs var"),
    (r"Mail from agent (?P<a>\S+) refused", "Temsilci {a} e-postası reddedildi"),
    (r"Delivery failed: (?P<s>.+)", "Teslim edilemedi: {s}"),
    (r"Delivery failed", "Teslim edilemedi"),
    (r"Delivery delayed", "Teslim gecikti"),
    (r"Delivery report", "Teslim raporu"),
    (r"Security alert", "Güvenlik uyarısı"),
    (r"(?P<reason>[^\n]+); told: (?P<a>[^\n]+)", "{reason}; bildirilenler: {a}"),
    (r"Verification unchanged", "Doğrulama değişmedi"),
    (r"Message only partly read", "İleti yalnızca kısmen okundu"),
    (r"Message-ID reused", "Message-ID yeniden kullanılmış"),
    (r"Repeated request merged", "Tekrarlanan talep birleştirildi"),
    (r"Not checked for spam", "Spam denetimi yapılamadı"),
    (r"Sender not proven: no automatic answer", "Gönderen kanıtlanmadı: otomatik yanıt yok"),
    (
        r"Marked spam: no automatic answer, no agent told",
        "Spam olarak işaretlendi: otomatik yanıt yok, temsilcilere bildirilmedi",
    ),
    (
        r"Identity documents from an unproven sender",
        "Kanıtlanmamış bir göndericiden kimlik belgeleri",
    ),
    (r"(?P<n>\d+) identity document\(s\) refused", "{n} kimlik belgesi reddedildi"),
    (r"Identity documents over the limit", "Sınırı aşan kimlik belgeleri"),
    (r"No (?P<mail>\S+) mail sent", "{mail} gönderilmedi"),
    (r"(?P<mail>\S+) mail delayed", "{mail} ertelendi"),
    (r"Closed automatically", "Otomatik olarak kapatıldı"),
    (r"Identity documents requested", "Kimlik belgeleri istendi"),
    (r"Identity verification expired", "Kimlik doğrulamasının süresi doldu"),
    (
        r"Sender not proven: nobody made a participant",
        "Gönderen kanıtlanmadı: kimse katılımcı yapılmadı",
    ),
    (r"Not a mail of agent (?P<a>\S+)", "{a} temsilcisinin e-postası değil"),
    (
        r"Mail from agent (?P<a>\S+) to (?P<to>\S+), not to the ticket's agent reply address: "
        r"commands not applied(?P<c>.*)\.",
        "Temsilci {a} e-postası talebin temsilci yanıt adresine değil {to} adresine geldi: "
        "komutlar uygulanmadı{c}.",
    ),
    (
        r"(?P<a>\S+) was told to write to (?P<to>\S+) \(ticket (?P<r>\S+)\)\.",
        "{a} temsilcisine {to} adresine yazması söylendi ({r} talebi).",
    ),
    (r"(?P<a>\S+) was not told: (?P<s>.+)\.", "{a} temsilcisine bildirilmedi: {s}."),
    # Texts.
    (
        r"No (?P<mail>\S+) mail went to (?P<to>\S+): (?P<reason>.+)\.",
        "{mail} {to} adresine gönderilmedi: {reason}.",
    ),
    (
        r"The (?P<mail>\S+) mail to (?P<to>\S+) waits until (?P<when>.+?): (?P<reason>.+)\.",
        "{mail} ({to}) {when} zamanına kadar bekliyor: {reason}.",
    ),
    (
        r"The (?P<mail>\S+) mail to (?P<to>.+?) could not be delivered: (?P<s>.+)",
        "{mail} {to} adresine teslim edilemedi: {s}",
    ),
    (
        r"No answer from the customer since (?P<when>.+?); closed after (?P<h>\S+) hours "
        r"\(sla\.auto_close_hours\)\.",
        "Müşteriden {when} zamanından beri yanıt yok; {h} saat sonra kapatıldı "
        "(sla.auto_close_hours).",
    ),
    (
        r"A message from (?P<a>\S*) was not added to this ticket: (?P<s>.+)\. It is held in "
        r"quarantine \(`ticketd quarantine list`, message (?P<id>\d+)\)\.",
        "{a} adresinden gelen bir ileti bu talebe eklenmedi: {s}. Karantinada bekletiliyor "
        "(`ticketd quarantine list`, ileti {id}).",
    ),
    (
        r"(?P<a>\S+) sent this request again; it was added here instead of opening a new ticket\.",
        "{a} bu talebi yeniden gönderdi; yeni bir talep açılmadı, buraya eklendi.",
    ),
    (
        r"This message has the Message-ID <(?P<id>[^>]*)> of an earlier, different "
        r"message(?P<where>.*)\. It is kept as a message of its own; the sender's mail program "
        r"or service reuses Message-IDs\.",
        "Bu iletinin Message-ID'si <{id}>, daha önceki farklı bir iletininkiyle aynı{where}. "
        "Ayrı bir ileti olarak tutuluyor; göndericinin e-posta programı ya da hizmeti "
        "Message-ID'leri yeniden kullanıyor.",
    ),
    (
        r"The spam filter could not check this mail: (?P<s>.+)\.",
        "Spam filtresi bu e-postayı denetleyemedi: {s}.",
    ),
    (
        r"(?P<a>.+?): (?P<s>.+)\. No acknowledgement or other automatic mail was sent; answer "
        r"only once you trust the sender\.",
        "{a}: {s}. Alındı bildirimi ya da başka bir otomatik e-posta gönderilmedi; yalnızca "
        "göndericiye güvendiğinizde yanıtlayın.",
    ),
    (
        r"The documents were (?P<decision>approve|reject)d, but the verification of (?P<c>\S+) "
        r"is unchanged: they did not come in a mail proven to be from that address\. The "
        r"customer was not told; ask with `#kyc request` and decide on the answer\.",
        "Belgeler {decision}, ancak {c} doğrulaması değişmedi: o adresten geldiği kanıtlanmış "
        "bir e-postayla gelmediler. Müşteriye bildirilmedi; `#kyc iste` ile isteyin ve gelen "
        "yanıta göre karar verin.",
    ),
    (
        r"(?P<agent>\S+) asked (?P<c>\S+) for identity documents \(ticketd kyc request\); "
        r"customer mail (?P<sent>.+)\.",
        "{agent}, {c} adresinden kimlik belgeleri istedi (ticketd kyc request); müşteri "
        "e-postası: {sent}.",
    ),
    (
        r"The verification of (?P<c>\S+) expired \((?P<before>\w+)\): (?P<s>.+)\.",
        "{c} kimlik doğrulamasının süresi doldu ({before}): {s}.",
    ),
    (
        r"(?P<a>.+?) is not proven to be who the From names \(no signed reply address or "
        r"Message-ID of ours with the customer's From, no aligned DKIM or SPF pass\), so this "
        r"mail made nobody a participant: (?P<list>.+?)\. A mail of theirs naming this ticket "
        r"joins it only when it answers one of our mails or is sent to the ticket's reply "
        r"address; otherwise it opens a ticket of its own that remembers the reference\.",
        "{a} adresinin From'da yazan kişi olduğu kanıtlanmadı (müşterinin From'uyla bizim imzalı "
        "yanıt adresimiz ya da Message-ID'miz yok, hizalı bir DKIM ya da SPF geçişi yok); bu "
        "yüzden bu e-posta kimseyi katılımcı yapmadı: {list}. Onların bu talebi anan bir "
        "e-postası, ancak bizim bir e-postamızı yanıtlıyorsa ya da talebin yanıt adresine "
        "gönderildiyse bu talebe eklenir; yoksa referansı hatırlayan ayrı bir talep açar.",
    ),
    (
        r"The From names agent (?P<name>.+?) <(?P<email>\S+)>, but the mail did not come to "
        r"the ticket's agent reply address with the agent's proof \(that signed address and an "
        r"aligned DKIM or SPF pass\), so it is not the agent's: it is kept as a message from "
        r"outside the team, no command in it was run and nothing of it was sent to the "
        r"customer\.",
        "From, {name} <{email}> temsilcisini gösteriyor, ancak e-posta talebin temsilci yanıt "
        "adresine temsilci kanıtıyla (o imzalı adres ve hizalı bir DKIM ya da SPF geçişi) "
        "gelmedi; bu yüzden temsilcinin değil: ekip dışından bir ileti olarak tutuldu, içindeki "
        "hiçbir komut uygulanmadı ve müşteriye hiçbir şey gönderilmedi.",
    ),
    (r"SMTP sender: (?P<a>\S+)\.", "SMTP göndericisi: {a}."),
    # Why nothing went to an address, or not yet (outbound/automatic.py), and pieces of notes.
    (r"no address to answer", "yanıtlanacak bir adres yok"),
    (r"(?P<a>\S+) is an address of the desk", "{a} masanın kendi adresi"),
    (
        r"(?P<a>\S+) asked for the erasure of their data: no automatic mail",
        "{a} verilerinin silinmesini istedi: otomatik e-posta gönderilmez",
    ),
    (
        r"(?P<a>\S+) is suppressed until (?P<when>.+?): (?P<s>.+)",
        "{a} adresine {when} zamanına kadar e-posta gönderilmiyor: {s}",
    ),
    (
        r"rate limit: an automatic mail went to (?P<a>\S+) at (?P<when>.+)",
        "gönderim sınırı: {a} adresine {when} zamanında otomatik bir e-posta gitti",
    ),
    (
        r"rate limit: an automatic mail goes to (?P<a>\S+) at (?P<when>.+)",
        "gönderim sınırı: {a} adresine {when} zamanında otomatik bir e-posta gidecek",
    ),
    (
        r"rate limit: (?P<n>\d+) automatic mails to (?P<a>\S+) in the last hour",
        "gönderim sınırı: son bir saatte {a} adresine {n} otomatik e-posta",
    ),
    (r" \(message (?P<n>\d+) of ticket (?P<ref>\S+)\)", " ({ref} talebinin {n} numaralı iletisi)"),
)
_NOTE_FORMS = tuple((re.compile(f"^{form}$", re.DOTALL), words) for form, words in _NOTES_TR)
# Groups that hold a piece of English of their own: worded again.
_INNER = frozenset({"reason", "where", "s"})
_DECISIONS_TR = {"approve": "onaylandı", "reject": "reddedildi"}

LABELS["tr"]["mail"] = {
    "ack": "alındı bildirimi",
    "duplicate": "mükerrer talep bildirimi",
    "survey": "memnuniyet anketi",
    "kyc_received": "belge alındı bildirimi",
    "kyc_refused": "belge reddi bildirimi",
    "kyc_request": "belge isteği",
    "kyc_approved": "onay bildirimi",
    "kyc_rejected": "ret bildirimi",
    "kyc_expired": "süre dolumu bildirimi",
    "virus_found": "virüs bildirimi",
    "sla_followup": "hatırlatma",
    "sla_auto_closed": "otomatik kapanış bildirimi",
    "agent": "temsilci yanıtı",
    "notify": "temsilci bildirimi",
}


def _worded(language: str, name: str, value: str) -> str:
    if name == "mail":
        return label(language, "mail", value)
    if name == "decision":
        return _DECISIONS_TR.get(value, value)
    return note(language, value) if name in _INNER else value


def note(language: str, text: str) -> str:
    """A note of ticketd's (or a reason in one) in the reader's language: each line worded by
    its form; English, or a line no form matches, as it is."""
    if language != "tr":
        return text
    return "\n".join(_note_line(language, line) for line in text.split("\n"))


def _note_line(language: str, line: str) -> str:
    for form, words in _NOTE_FORMS:
        found = form.match(line)
        if found:
            groups = found.groupdict()
            return words.format(**{k: _worded(language, k, v) for k, v in groups.items()})
    return line
