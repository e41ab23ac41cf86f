"""Agents work from their mail client: end to end through real sockets.

The customer writes over SMTP; the agent of the queue gets a notification at the relay; the
agent answers it as Outlook, Gmail or Thunderbird would; the answer reaches the customer from
the support address. Commands, refusals and a forged agent reply go the same way.
"""

from __future__ import annotations

import hashlib
import hmac
import smtplib
import socket
import time
from email.message import EmailMessage, Message
from email.policy import SMTP as SMTP_POLICY
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import pytest

from ingest.agent_commands import parse_commands
from tests.daemon import DaemonProcess, Relay, daemon_config
from tests.helpers import DESK, customer_mail, free_port

pytestmark = pytest.mark.slow

AGENT = "ayse@destek.example.com"
OTHER_AGENT = "mert@destek.example.com"
TEAM = f"""
[[queues]]
name = "odeme"
categories = ["payment"]
escalation = ["lead@destek.example.com"]

[[queues]]
name = "genel"
categories = ["other", "account", "bonus", "technical", "kyc", "complaint"]

[[agents]]
email = "{AGENT}"
name = "Ayşe Yılmaz"
queues = ["odeme"]

[[agents]]
email = "{OTHER_AGENT}"
name = "Mert Demir"
queues = ["genel"]
"""


def send(port: int, raw: bytes, sender: str, to: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.sendmail(sender, [to], raw)


def text_of(mail: Message) -> str:
    for part in mail.walk():
        if part.get_content_type() == "text/plain":
            content: str = part.get_content()  # type: ignore[attr-defined]
            return content.replace("\r\n", "\n")  # the relay keeps SMTP's line ends
    return ""


def mails_to(relay: Relay, address: str) -> list[Message]:
    return [m for m in relay.handler.messages() if parseaddr(str(m["To"]))[1] == address]


def wait_for_mail(
    relay: Relay, address: str, count: int, what: str = "", timeout: float = 15
) -> list[Message]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = mails_to(relay, address)
        if len(found) >= count:
            return found
        time.sleep(0.05)
    raise AssertionError(f"{address} got {len(mails_to(relay, address))} mails, not {count} {what}")


# The receiving server in front of these desks (a gateway that is the MX): ticketd believes its
# Authentication-Results. An agent mail proves its sender with the gateway's aligned DKIM pass.
GATEWAY = "mx.example.net"


def proven(sender: str) -> str:
    domain = parseaddr(sender)[1].rpartition("@")[2]
    return f"{GATEWAY}; dkim=pass header.d={domain} header.s=s1; spf=pass smtp.mailfrom={domain}"


def agent_reply(
    notification: Message, sender: str, body: str, client: str = "outlook", **headers: str
) -> bytes:
    """An agent's Reply to a notification, written the way `client` writes it, as the gateway
    passes it on (with its Authentication-Results unless `headers` give one)."""
    mail = EmailMessage()
    mail["From"] = sender
    if "Authentication_Results" not in headers:
        mail["Authentication-Results"] = proven(sender)
    mail["To"] = str(notification["Reply-To"])
    prefix = {"outlook": "RE:", "gmail": "Re:", "thunderbird": "Re:"}[client]
    mail["Subject"] = f"{prefix} {notification['Subject']}"
    mail["In-Reply-To"] = str(notification["Message-ID"])
    mail["References"] = str(notification["Message-ID"])
    for name, value in headers.items():
        mail[name.replace("_", "-")] = value
    quoted = text_of(notification)
    if client == "outlook":
        full = (
            f"{body}\n\n________________________________\nFrom: Destek <{DESK}>\n"
            f"Sent: Monday, November 23, 2026 09:00\nTo: {sender}\nSubject: "
            f"{notification['Subject']}\n\n{quoted}"
        )
    elif client == "gmail":
        full = (
            f"{body}\n\n23 Kas 2026 Pzt, 09:00 tarihinde Destek <{DESK}> şunu yazdı:\n"
            + "\n".join("> " + line for line in quoted.splitlines())
        )
    else:
        full = f"{body}\n\nOn 23.11.2026 09:00, Destek wrote:\n" + "\n".join(
            "> " + line for line in quoted.splitlines()
        )
    mail.set_content(full)
    return mail.as_bytes(policy=SMTP_POLICY)


@pytest.fixture
def desk(tmp_path: Path, relay: Relay) -> Any:
    trusted = (
        f'[smtp_in]\nlisten = "127.0.0.1:{free_port()}"\ntrusted_authserv_ids = ["{GATEWAY}"]\n'
        "verify_senders = false\n"
        # A desk behind a verifying gateway: agents must be proven by its verdict, although
        # the listener itself is on loopback (where the default would not require it).
        "[agent_replies]\nrequire_authentication = true\n"
    )
    config = daemon_config(tmp_path, relay.port, extra=trusted + TEAM)
    text = config.read_text().replace(
        'language = "tr"', 'language = "tr"\nadmins = ["guvenlik@destek.example.com"]'
    )
    config.write_text(text)
    daemon = DaemonProcess(config)
    daemon.start()
    yield daemon
    assert daemon.stop() == 0


def test_an_agent_answers_from_their_mail_client(desk: DaemonProcess, relay: Relay) -> None:
    customer = "musteri@example.net"
    request = customer_mail(
        sender=f"Can Kaya <{customer}>",
        subject="Para çekme talebim",
        body="Para çekme talebim 3 gündür beklemede.",
        message_id="<istek-1@example.net>",
    )
    send(desk.port, request, customer, DESK)
    [notification] = wait_for_mail(relay, AGENT, 1, "(notification)")
    wait_for_mail(relay, customer, 1, "(acknowledgement)")
    ticket = desk.cli("tickets", "list", "--json")[0]
    ref = ticket["ref"]
    assert (ticket["category"], ticket["status"]) == ("payment", "open")
    assert ref in str(notification["Subject"])
    assert "Para çekme talebim 3 gündür beklemede." in text_of(notification)
    assert str(notification["Auto-Submitted"]) == "auto-generated"
    assert "+a." in str(notification["Reply-To"])
    assert mails_to(relay, OTHER_AGENT) == []  # not their queue

    # Outlook reply with a signature, the quoted notification, and an attachment.
    raw = agent_reply(
        notification,
        f"Ayşe Yılmaz <{AGENT}>",
        "Merhaba Can Bey,\n\nÇekiminiz "
        "onaylandı, 24 saat içinde hesabınızda olur.\n\nSaygılarımla,\nAyşe",
    )
    reply = _with_attachment(raw, "dekont.pdf", b"%PDF-1.4 dekont")
    send(desk.port, reply, AGENT, str(notification["Reply-To"]))
    answers = wait_for_mail(relay, customer, 2, "(the agent's answer)")
    answer = answers[-1]
    assert parseaddr(str(answer["From"])) == ("Ayşe Yılmaz (Destek)", DESK)
    assert str(answer["In-Reply-To"]) == "<istek-1@example.net>"
    assert "Auto-Submitted" not in answer
    body = text_of(answer).strip()
    # The sign-off is part of the answer (issue 15, point 13); only a "-- " block is cut.
    assert body == (
        "Merhaba Can Bey,\n\nÇekiminiz onaylandı, 24 saat içinde hesabınızda olur."
        "\n\nSaygılarımla,\nAyşe"
    )
    assert [p.get_filename() for p in answer.walk() if p.get_filename()] == ["dekont.pdf"]
    shown = desk.cli("tickets", "show", ref, "--json")
    last = shown["messages"][-1]
    assert (last["direction"], last["kind"], last["from"]) == ("out", "agent", AGENT)

    # The customer answers the agent: the queue is told again.
    send(
        desk.port,
        customer_mail(
            sender=customer, subject=f"Re: [#{ref}] teşekkürler", body="Teşekkürler, bekliyorum."
        ),
        customer,
        DESK,
    )
    notifications = wait_for_mail(relay, AGENT, 2, "(customer answer)")
    assert "Teşekkürler, bekliyorum." in text_of(notifications[-1])
    assert str(notifications[-1]["In-Reply-To"]) == str(notification["In-Reply-To"])

    # Gmail, in Turkish, with commands: pending and high priority, and the text still goes.
    gmail = agent_reply(
        notifications[-1],
        AGENT,
        "#beklemede\n#öncelik yüksek\n\nDekontu ekte bulabilirsiniz.",
        client="gmail",
    )
    send(desk.port, gmail, AGENT, str(notification["Reply-To"]))
    answers = wait_for_mail(relay, customer, 3, "(second answer)")
    assert text_of(answers[-1]).strip() == "Dekontu ekte bulabilirsiniz."
    shown = desk.cli("tickets", "show", ref, "--json")
    assert shown["status"] == "pending"

    # Thunderbird: an internal note reaches nobody.
    note = agent_reply(notification, AGENT, "#note\nMüşteri telefonla aradı.", "thunderbird")
    send(desk.port, note, AGENT, str(notification["Reply-To"]))
    desk.wait_until(
        lambda: desk.cli("tickets", "show", ref, "--json")["messages"][-1]["kind"] == "note",
        what="the note",
    )
    assert len(mails_to(relay, customer)) == 3

    # An unknown command: the agent is told, nothing applied, nothing relayed.
    wrong = agent_reply(notification, AGENT, "#kapat\n#frobnicate\n\nKapatıyorum.")
    send(desk.port, wrong, AGENT, str(notification["Reply-To"]))
    errors = wait_for_mail(relay, AGENT, 3, "(refusal)")
    assert "frobnicate" in text_of(errors[-1])
    assert desk.cli("tickets", "show", ref, "--json")["status"] == "pending"
    assert len(mails_to(relay, customer)) == 3

    # Commands only: assign, recategorise, close.
    commands = agent_reply(notification, AGENT, "#ata Mert\n#kapat")
    send(desk.port, commands, AGENT, str(notification["Reply-To"]))
    desk.wait_until(
        lambda: desk.cli("tickets", "show", ref, "--json")["status"] == "closed", what="#close"
    )
    assert len(mails_to(relay, customer)) == 3

    # Another queue's agent may not act on it... unless assigned: Mert now is.
    other = agent_reply(notification, OTHER_AGENT, "#priority low")
    send(desk.port, other, OTHER_AGENT, str(notification["Reply-To"]))
    desk.wait_until(
        lambda: any(
            "priority low" in m["text"]
            for m in desk.cli("tickets", "show", ref, "--json")["messages"]
        ),
        what="the assignee's command",
    )


def test_a_forged_agent_reply_is_quarantined_and_the_admins_are_told(
    desk: DaemonProcess, relay: Relay
) -> None:
    customer = "musteri@example.net"
    send(
        desk.port,
        customer_mail(sender=customer, subject="Para çekme", body="Çekim bekliyor"),
        customer,
        DESK,
    )
    [notification] = wait_for_mail(relay, AGENT, 1)
    wait_for_mail(relay, customer, 1)
    # Someone who learned the agent address (a forwarded notification) writes to it.
    forged = agent_reply(notification, "Sahte <mallory@evil.example>", "Hesabınız kapatıldı.")
    send(desk.port, forged, "mallory@evil.example", str(notification["Reply-To"]))
    [alert] = wait_for_mail(relay, "guvenlik@destek.example.com", 1, "(security alert)")
    assert "mallory@evil.example" in text_of(alert)
    quarantined = desk.cli("quarantine", "list", "--json")
    assert len(quarantined) == 1 and "security" in quarantined[0]["reason"]
    # The agent's own address with a failing DKIM result is refused the same way.
    spoofed = agent_reply(
        notification,
        AGENT,
        "Hesabınız kapatıldı.",
        Authentication_Results="mx.example.net; dkim=fail header.d=destek.example.com; "
        "spf=fail smtp.mailfrom=destek.example.com",
    )
    send(desk.port, spoofed, AGENT, str(notification["Reply-To"]))
    wait_for_mail(relay, "guvenlik@destek.example.com", 2, "(second alert)")
    # A pass the sender wrote proves nothing: one claiming our own authserv-id (removed, RFC
    # 8601 section 5), one of an id nobody trusts, and a trusted pass for a look-alike domain.
    for claim in (
        f"{socket.gethostname()}; dkim=pass header.d=destek.example.com; spf=pass "
        f"smtp.mailfrom={AGENT}; dmarc=pass header.from=destek.example.com",
        "mx.evil.example; dkim=pass header.d=destek.example.com",
        f"{GATEWAY}; dkim=pass header.d=destek.example.com.evil.example; "
        "dmarc=pass header.from=destek.example.com.evil.example",
    ):
        closing = agent_reply(
            notification, AGENT, "#close\n\nKapattım.", Authentication_Results=claim
        )
        send(desk.port, closing, AGENT, str(notification["Reply-To"]))
    wait_for_mail(relay, "guvenlik@destek.example.com", 5, "(alerts for the forged passes)")
    time.sleep(1)
    assert len(mails_to(relay, customer)) == 1  # only the acknowledgement, nothing relayed
    assert desk.cli("tickets", "list", "--json")[0]["status"] == "open"
    reasons = [q["reason"] for q in desk.cli("quarantine", "list", "--json")]
    assert len(reasons) == 5 and "claiming our own authserv-id" in reasons[2]
    assert all("no aligned DKIM or SPF pass" in r for r in reasons[3:])
    # A forged From with the reference in the subject is only a customer message.
    stranger = customer_mail(sender=AGENT, subject=str(notification["Subject"]), body="#close")
    send(desk.port, stranger, AGENT, DESK)
    time.sleep(1.5)
    assert desk.cli("tickets", "list", "--json")[0]["status"] == "open"


def _with_attachment(raw: bytes, filename: str, payload: bytes) -> bytes:
    from email import message_from_bytes
    from email.policy import default

    mail = message_from_bytes(raw, policy=default)
    assert isinstance(mail, EmailMessage)
    mail.add_attachment(payload, maintype="application", subtype="pdf", filename=filename)
    return mail.as_bytes(policy=SMTP_POLICY)


@pytest.mark.parametrize(
    ("text", "verbs", "problems"),
    [
        ("#close\nDone.", ["close"], []),
        ("#KAPAT", ["close"], []),
        ("#öncelik düşük\n#kategori kimlik\n#ata Ayşe", ["priority", "category", "assign"], []),
        ("#merge 7KQM-X3P9", [], ["is not a ticket reference"]),
        ("#priority urgent", [], ["priority must be"]),
        ("#close\n#pending", ["close", "pending"], ["exclude each other"]),
        ("Text first\n#close", [], ["#close on line 2 is under the text"]),
        ("#frobnicate", [], ["unknown command #frobnicate"]),
    ],
)
def test_command_parsing(text: str, verbs: list[str], problems: list[str]) -> None:
    parsed = parse_commands(text)
    assert [c.verb for c in parsed.commands] == verbs
    assert len(parsed.problems) == len(problems)
    for wanted, found in zip(problems, parsed.problems, strict=True):
        assert wanted in found


def test_category_and_merge_commands_from_the_agent(desk: DaemonProcess, relay: Relay) -> None:
    first_customer, second_customer = "bir@example.net", "iki@example.net"
    send(
        desk.port,
        customer_mail(sender=first_customer, subject="Para çekme", body="Çekim talebim bekliyor."),
        first_customer,
        DESK,
    )
    [first_note] = wait_for_mail(relay, AGENT, 1)
    send(
        desk.port,
        customer_mail(sender=second_customer, subject="Yatırım", body="Yatırımım hesaba geçmedi."),
        second_customer,
        DESK,
    )
    second_note = wait_for_mail(relay, AGENT, 2)[-1]
    tickets = {t["customer"]: t["ref"] for t in desk.cli("tickets", "list", "--json")}
    first, second = tickets[first_customer], tickets[second_customer]

    # #birleştir: the second ticket goes into the first; its reference leads there.
    merge = agent_reply(second_note, AGENT, f"#birleştir {first} zorla", client="gmail")
    send(desk.port, merge, AGENT, str(second_note["Reply-To"]))
    desk.wait_until(
        lambda: desk.cli("tickets", "show", second, "--json")["ref"] == first, what="#merge"
    )
    assert second_customer in desk.cli("tickets", "show", first, "--json")["participants"]

    # #kategori: identity verification belongs to the other queue; Ayşe's command moves it.
    category = agent_reply(first_note, AGENT, "#kategori kimlik", client="thunderbird")
    send(desk.port, category, AGENT, str(first_note["Reply-To"]))
    desk.wait_until(
        lambda: desk.cli("tickets", "show", first, "--json")["category"] == "kyc",
        what="#category",
    )
    listed = {t["ref"]: t for t in desk.cli("tickets", "list", "--json")}
    assert listed[second]["status"] == "merged"
    # Now in Mert's queue, Ayşe may no longer act on it: she is told so.
    late = agent_reply(first_note, AGENT, "#close")
    send(desk.port, late, AGENT, str(first_note["Reply-To"]))
    refusals = wait_for_mail(relay, AGENT, 3, "(refusal)")
    assert "sizin kuyruklarınızdan değil" in text_of(refusals[-1])  # a tr desk: in Turkish
    assert desk.cli("tickets", "show", first, "--json")["status"] != "closed"


def test_behind_a_local_mta_the_signed_address_proves_the_agent_but_a_forged_verdict_refuses(
    tmp_path: Path, relay: Relay
) -> None:
    # The embedded default: a listener on loopback, reached through the machine's own MTA,
    # with nothing that verifies senders. The agent's answer acts on its signed reply address;
    # the same answer carrying a pass "from us" was written by its sender and acts on nothing.
    config = daemon_config(tmp_path, relay.port, extra=TEAM)
    daemon = DaemonProcess(config)
    daemon.start()
    try:
        customer = "musteri@example.net"
        raw = customer_mail(sender=customer, subject="Para çekme", body="Çekim bekliyor")
        send(daemon.port, raw, customer, DESK)
        [notification] = wait_for_mail(relay, AGENT, 1)
        forged = agent_reply(
            notification,
            AGENT,
            "#close\n\nKapattım.",
            Authentication_Results=f"{socket.gethostname()}; dkim=pass "
            f"header.d=destek.example.com; spf=pass smtp.mailfrom={AGENT}",
        )
        send(daemon.port, forged, AGENT, str(notification["Reply-To"]))
        deadline = time.monotonic() + 15
        while not daemon.cli("quarantine", "list", "--json") and time.monotonic() < deadline:
            time.sleep(0.3)
        [held] = daemon.cli("quarantine", "list", "--json")
        assert "claiming our own authserv-id" in held["reason"]
        assert daemon.cli("tickets", "list", "--json")[0]["status"] == "open"
        honest = agent_reply(notification, AGENT, "#close\n\nÇekiminiz yapıldı.")
        send(daemon.port, honest, AGENT, str(notification["Reply-To"]))
        deadline = time.monotonic() + 15
        while daemon.cli("tickets", "list", "--json")[0]["status"] == "open":
            assert time.monotonic() < deadline, "the agent's answer did not close the ticket"
            time.sleep(0.3)
    finally:
        assert daemon.stop() == 0


def test_an_answer_to_a_reply_address_signed_before_the_secret_changed_is_refused_to_the_agent(
    desk: DaemonProcess, relay: Relay
) -> None:
    # A desk that ran without desk.secret signed with the public default, HMAC("ticketd:" +
    # address); the upgrade generates a random secret, and the notifications already in the
    # agents' mailboxes carry addresses it does not sign. An agent answering one must learn
    # that nothing happened, not see the answer filed as the customer's message.
    customer = "musteri@example.net"
    raw = customer_mail(sender=customer, subject="Para çekme", body="Çekim bekliyor")
    send(desk.port, raw, customer, DESK)
    [notification] = wait_for_mail(relay, AGENT, 1)
    wait_for_mail(relay, customer, 1)
    ref = desk.cli("tickets", "list", "--json")[0]["ref"]
    old_key = f"ticketd:{DESK}".encode()
    old_sig = hmac.new(old_key, f"reply:agent:{ref}".encode(), hashlib.sha256).hexdigest()[:10]
    local, _, domain = DESK.partition("@")
    old_address = f"{local}+a.{ref.lower()}.{old_sig}@{domain}"
    answer = agent_reply(notification, AGENT, "Merhaba,\n\nÇekiminiz onaylandı.")
    answer = answer.replace(str(notification["Reply-To"]).encode(), old_address.encode())
    send(desk.port, answer, AGENT, old_address)
    [_, refusal] = wait_for_mail(relay, AGENT, 2, "(refusal to the agent)")
    # A tr desk: the refusal is in Turkish, the note on the ticket keeps English.
    assert old_address in text_of(refusal) and "imzalı değil" in text_of(refusal)
    assert str(refusal["Reply-To"]) == str(notification["Reply-To"])  # the current address
    shown = desk.cli("tickets", "show", ref, "--json")
    assert [m["kind"] for m in shown["messages"] if m["from"] == AGENT] == []
    assert AGENT not in shown["participants"]
    assert any("current secret" in m["text"] for m in shown["messages"] if m["kind"] == "system")
    time.sleep(1)
    assert len(mails_to(relay, customer)) == 1  # only the acknowledgement
    # A stranger writing to such an address is a customer's message, as before.
    stranger = customer_mail(sender="biri@example.org", subject="Merhaba", body="Selam")
    send(desk.port, stranger, "biri@example.org", old_address)
    desk.wait_until(lambda: len(desk.cli("tickets", "list", "--json")) == 2, what="a new ticket")


def test_an_answer_to_a_web_forms_no_reply_sender_is_refused_to_the_agent(
    desk: DaemonProcess, relay: Relay
) -> None:
    # A contact form mails the desk from its no-reply address; the person is in the text (and
    # in Reply-To). The ticket's customer is the From, which nobody reads: an answer relayed
    # there would be lost while the agent believes the customer has it.
    form = "no-reply@form.example.org"
    raw = customer_mail(
        sender=f"Web Sitesi <{form}>",
        subject="İletişim formu: Para çekme",
        body="Ad: Elif Kaya\nE-posta: elif@example.net\nMesaj: Para çekme talebim bekliyor.",
        headers={"Reply-To": "Elif Kaya <elif@example.net>"},
    )
    send(desk.port, raw, form, DESK)
    [notification] = wait_for_mail(relay, AGENT, 1, "(notification)")
    ref = desk.cli("tickets", "list", "--json")[0]["ref"]
    answer = agent_reply(notification, AGENT, "Merhaba Elif Hanım,\n\nÇekiminiz yapıldı.")
    send(desk.port, answer, AGENT, str(notification["Reply-To"]))
    [_, refusal] = wait_for_mail(relay, AGENT, 2, "(refusal to the agent)")
    assert form in text_of(refusal) and "kimsenin okumadığı" in text_of(refusal)
    # A note and commands still act: the agent keeps the answer on the ticket and closes it.
    note = agent_reply(notification, AGENT, "#note\n#kapat\nElif Hanım'a kendim yazdım.")
    send(desk.port, note, AGENT, str(notification["Reply-To"]))
    desk.wait_until(
        lambda: desk.cli("tickets", "show", ref, "--json")["status"] == "closed", what="#close"
    )
    time.sleep(1)
    assert mails_to(relay, form) == [] and mails_to(relay, "elif@example.net") == []
    kinds = [m["kind"] for m in desk.cli("tickets", "show", ref, "--json")["messages"]]
    assert "agent" not in kinds and "note" in kinds


def test_a_participants_mail_is_notified_as_theirs_not_the_customers(
    desk: DaemonProcess, relay: Relay
) -> None:
    customer, colleague = "musteri@example.net", "mehmet@example.net"
    first = customer_mail(
        sender=f"Can Kaya <{customer}>",
        subject="Para çekme",
        body="Çekim bekliyor",
        headers={"Cc": f"Mehmet Öz <{colleague}>"},
    )
    send(desk.port, first, customer, DESK)
    [notification] = wait_for_mail(relay, AGENT, 1)
    assert f"Can Kaya <{customer}> yazdı:" in text_of(notification)
    ref = desk.cli("tickets", "list", "--json")[0]["ref"]
    later = customer_mail(
        sender=f"Mehmet Öz <{colleague}>", subject=f"Re: [#{ref}] Para çekme", body="IBAN değişti"
    )
    send(desk.port, later, colleague, DESK)
    [_, told] = wait_for_mail(relay, AGENT, 2, "(the colleague's mail)")
    assert f"Mehmet Öz <{colleague}> yazdı:\n\nIBAN değişti" in text_of(told)
    assert f"<{customer}> yazdı:" not in text_of(told)


def test_an_agents_from_on_the_customers_reply_address_is_not_the_agents_mail(
    desk: DaemonProcess, relay: Relay
) -> None:
    customer = "musteri@example.net"
    send(desk.port, customer_mail(sender=customer, subject="Para çekme"), customer, DESK)
    wait_for_mail(relay, AGENT, 1)
    [ack] = wait_for_mail(relay, customer, 1)
    ref = desk.cli("tickets", "list", "--json")[0]["ref"]
    # The customer's signed reply address (no secret to her, nor to whoever she forwards our
    # mail to) under the agent's From, from elsewhere, with commands: no agent proof.
    forged = customer_mail(
        sender=f"Ayşe Yılmaz <{AGENT}>",
        to=str(ack["Reply-To"]),
        subject=f"Re: [#{ref}] Para çekme",
        body="#kapat\n#ata Mert\n\nTalebiniz kapatıldı.",
    )
    send(desk.port, forged, "mallory@evil.example", parseaddr(str(ack["Reply-To"]))[1])
    [_, told] = wait_for_mail(relay, AGENT, 2, "(the forged mail's notification)")
    assert f"<{AGENT}> yazdı (bir temsilcinin adresi, ama temsilci kanıtı olmadan" in text_of(told)
    shown = desk.cli("tickets", "show", ref, "--json")
    assert (shown["status"], shown["assignee"]) == ("open", None)  # no command was run
    kinds = [m["kind"] for m in shown["messages"]]
    # One note, the agent-From one: an agent is never made a participant, so there is nobody
    # the unproven mail did not add (tests/test_agent_at_desk.py).
    assert kinds == ["customer", "auto", "customer", "system"]
    assert shown["messages"][2]["from"] == AGENT
    [said] = [m["text"] for m in shown["messages"][3:] if "not the agent's" in m["text"]]
    assert "SMTP sender: mallory@evil.example." in said
    assert AGENT not in shown["participants"]  # unproven: nobody made a participant
    assert desk.cli("quarantine", "list", "--json") == []  # it reached the ticket
    # The customer writes again: the history quoted to the agent flags the forged entry.
    send(desk.port, customer_mail(sender=customer, subject=f"[#{ref}] ek"), customer, DESK)
    [*_, again] = wait_for_mail(relay, AGENT, 3, "(the customer's next mail)")
    assert "Ayşe Yılmaz (temsilci adresi, kanıtsız: temsilcinin değil):" in text_of(again)
    time.sleep(1)
    assert len(mails_to(relay, customer)) == 1  # only the acknowledgement


def test_a_made_up_agent_address_signature_is_a_security_event_not_a_stale_address(
    desk: DaemonProcess, relay: Relay
) -> None:
    customer = "musteri@example.net"
    send(desk.port, customer_mail(sender=customer, subject="Para çekme"), customer, DESK)
    wait_for_mail(relay, AGENT, 1)
    wait_for_mail(relay, customer, 1)
    ref = desk.cli("tickets", "list", "--json")[0]["ref"]
    local, _, domain = DESK.partition("@")
    made_up = f"{local}+a.{ref.lower()}.0000000000@{domain}"
    # The agent's From, the attacker's envelope, a signature nobody signed, and no mail of ours
    # answered: not an agent holding a notification from before the secret changed.
    forged = customer_mail(
        sender=f"Ayşe Yılmaz <{AGENT}>", to=made_up, subject=f"Re: [#{ref}] Yeni", body="#kapat"
    )
    send(desk.port, forged, "mallory@evil.example", made_up)
    [alert] = wait_for_mail(relay, "guvenlik@destek.example.com", 1, "(security alert)")
    assert made_up in text_of(alert) and "made-up address" in text_of(alert)
    [held] = desk.cli("quarantine", "list", "--json")
    assert "security" in held["reason"] and "made-up address" in held["reason"]
    time.sleep(1)
    assert len(mails_to(relay, AGENT)) == 1  # the notification only: no "secret changed" reply
    shown = desk.cli("tickets", "show", ref, "--json")
    assert shown["status"] == "open"
    assert not any("current secret" in m["text"] for m in shown["messages"])
