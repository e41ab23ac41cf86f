"""Issue 22, forged senders: a From is the sender's own word, so a forged one with someone
else's Reply-To learns nothing of the victim's ticket, and the desk never carries an unproven
sender's text or links to anyone.

End to end: smtplib delivers to the daemon, the relay (aiosmtpd) keeps what ticketd sends.
"""

from __future__ import annotations

import smtplib
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import pytest

from tests.daemon import DaemonProcess, Relay, daemon_config
from tests.helpers import DESK

pytestmark = pytest.mark.slow

VICTIM = "dilek@customer.example"
ATTACKER = "attacker@evil.example"
TARGET = "target@customer.example"
TEXT = "Merhaba, 5000 TL para çekme talebim 4 gündür beklemede, hesap numaram TR12 0006 2000 01."


def _mail(sender: str, subject: str, body: str, **headers: str) -> bytes:
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = DESK
    mail["Subject"] = subject
    for name, value in headers.items():
        mail[name.replace("_", "-")] = value
    mail.set_content(body)
    return mail.as_bytes(policy=SMTP)


def _send(desk: DaemonProcess, envelope_from: str, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", desk.port, timeout=10) as client:
        client.sendmail(envelope_from, [DESK], raw)


def _settled(desk: DaemonProcess, count: int) -> list[dict[str, Any]]:
    """The tickets once `count` of them are open, and the outbox has settled after them."""

    def due(row: dict[str, Any]) -> bool:
        # A mail the rate limit holds for a later slot (a second acknowledgement) is not due.
        slot = datetime.fromisoformat(row["created_at"])
        return (slot if slot.tzinfo else slot.replace(tzinfo=UTC)) <= datetime.now(UTC)

    def done() -> list[dict[str, Any]] | None:
        rows: list[dict[str, Any]] = desk.cli("tickets", "list", "--json")
        outbox = desk.cli("outbox", "list", "--json")
        queued = [r for r in outbox if r["state"] == "queued" and due(r)]
        return rows if len(rows) >= count and not queued else None

    result: list[dict[str, Any]] = desk.wait_until(done, what=f"{count} tickets")
    return result


def _to(relay: Relay, address: str) -> list[bytes]:
    return [raw for _, rcpt, raw in relay.handler.received if address in rcpt]


@pytest.fixture
def desk(tmp_path: Path, relay: Relay) -> Any:
    process = DaemonProcess(daemon_config(tmp_path, relay.port))
    process.start()
    yield process
    assert process.stop() == 0, process.log()


def test_a_forged_from_with_a_reply_to_learns_nothing_of_her_ticket(
    desk: DaemonProcess, relay: Relay
) -> None:
    _send(desk, VICTIM, _mail(f"Dilek Demir <{VICTIM}>", "Para çekme talebim", TEXT))
    [ack] = relay.wait_for(1)
    assert parseaddr(str(ack["To"]))[1] == VICTIM
    [ticket] = desk.cli("tickets", "list", "--json")
    ref = ticket["ref"]
    # The same words under her From, with the attacker's Reply-To and envelope sender.
    forged = _mail(f"Dilek Demir <{VICTIM}>", "Para çekme talebim", TEXT, Reply_To=ATTACKER)
    _send(desk, ATTACKER, forged)
    assert _to(relay, ATTACKER) == []
    assert not [raw for _, _, raw in relay.handler.received[1:] if ref.encode() in raw]
    tickets = _settled(desk, 2)
    assert len(tickets) == 2  # a ticket of its own, not a "repeat" joined to hers
    shown = desk.cli("tickets", "show", ref, "--json")
    assert [m["kind"] for m in shown["messages"]] == ["customer", "auto"]


def test_an_acknowledgement_carries_no_text_or_link_of_an_unproven_sender(
    desk: DaemonProcess, relay: Relay
) -> None:
    phishing = _mail(
        "Destek Güvenlik https://evil.example/ <spoof@evil.example>",
        "Hesabınız askıya alındı: https://evil.example/giris " + "acil " * 40,
        "Hesabınızı açmak için https://evil.example/giris adresine girin.",
        Reply_To=TARGET,
    )
    _send(desk, "bounce@evil.example", phishing)
    [ack] = relay.wait_for(1)
    _settled(desk, 1)
    assert _to(relay, TARGET) == []
    # RFC 3834 section 4: the answer goes to the sender the From names, never to Reply-To.
    assert parseaddr(str(ack["To"]))[1] == "spoof@evil.example"
    assert relay.handler.received[0][1] == ["spoof@evil.example"]
    subject = str(ack["Subject"])
    assert "Hesabınız askıya alındı" in subject and "https" not in subject
    assert "evil.example/giris" not in subject and len(subject) < 140
    parts = [p.get_content() for p in ack.walk() if p.get_content_maintype() == "text"]  # type: ignore[attr-defined]
    body = "\n".join(parts)
    assert "evil.example" not in body and "adresine girin" not in body
    assert "Destek Güvenlik" not in body  # the display name is the sender's text too
    assert "Destek Güvenlik" not in str(ack["To"])


def _shown(desk: DaemonProcess, ref: str, count: int) -> dict[str, Any]:
    """`tickets show REF` once it holds `count` messages (notes included)."""

    def done() -> dict[str, Any] | None:
        shown: dict[str, Any] = desk.cli("tickets", "show", ref, "--json")
        return shown if len(shown["messages"]) >= count else None

    result: dict[str, Any] = desk.wait_until(done, what=f"{count} messages on {ref}")
    return result


def test_a_forged_mail_of_the_customer_makes_nobody_in_its_cc_a_participant(
    desk: DaemonProcess, relay: Relay
) -> None:
    _send(desk, VICTIM, _mail(f"Dilek Demir <{VICTIM}>", "Para çekme talebim", TEXT))
    [ack] = relay.wait_for(1)
    [ticket] = _settled(desk, 1)
    ref = ticket["ref"]
    # Her From, the attacker's envelope and Cc: a participant's address, so it joins (a
    # person's mail reaches a ticket), but nothing proves she wrote it.
    forged = _mail(
        VICTIM, f"Re: [#{ref}] Talebiniz alındı", "Eşim de bu talebi takip edecek.", Cc=ATTACKER
    )
    _send(desk, ATTACKER, forged)
    shown = _shown(desk, ref, 3)  # the note comes in the same transaction
    assert [m["kind"] for m in shown["messages"]] == ["customer", "auto", "customer", "system"]
    assert shown["participants"] == [VICTIM]
    assert ATTACKER in shown["messages"][3]["text"]
    assert "made nobody a participant" in shown["messages"][3]["text"]
    # The attacker's own mail with her reference is a stranger's: a ticket of its own.
    _send(desk, ATTACKER, _mail(ATTACKER, f"Re: [#{ref}] IBAN", "IBAN'ım değişti: TR11 1111."))
    tickets = _settled(desk, 2)
    [claimed] = [t["ref"] for t in tickets if t["ref"] != ref]
    assert desk.cli("tickets", "show", claimed, "--json")["claimed_ref"] == ref
    assert len(desk.cli("tickets", "show", ref, "--json")["messages"]) == 4
    # Her answer to our acknowledgement proves her From: her Cc becomes a participant.
    answer = _mail(
        VICTIM,
        f"Re: [#{ref}] Talebiniz alındı",
        "Eşim de takip edecek.",
        Cc=TARGET,
        In_Reply_To=str(ack["Message-ID"]),
    )
    _send(desk, VICTIM, answer)
    shown = _shown(desk, ref, 5)
    assert shown["participants"] == [VICTIM, TARGET]
    _send(desk, TARGET, _mail(TARGET, f"Re: [#{ref}] ek", "Ben eşiyim, belgeyi ekledim."))
    shown = _shown(desk, ref, 6)
    assert shown["messages"][5]["from"] == TARGET
