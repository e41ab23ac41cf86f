"""ticketd as the MX verifies SPF, DKIM and DMARC itself, against a real DNS server (dnsmasq).

The test writes the records: SPF policies, a DKIM key it generates (and signs with, through
dkimpy), DMARC policies; `[dns] nameservers` points ticketd at that server. Mail arrives through
the real listener, so the client IP, HELO and envelope sender are the ones the SMTP session had.
"""

from __future__ import annotations

import base64
import smtplib
import time
from collections.abc import Iterator
from email.message import Message
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select

from domain.clock import FixedClock
from domain.config_trust import DnsConfig
from ingest.journal import Arrival
from ingest.verify import Envelope, verify
from storage.db import Database
from storage.models import JournalEntry, OutboxMail, TicketMessage
from tests.daemon import DaemonProcess, Relay, daemon_config
from tests.dnsmasq import Dnsmasq, dnsmasq
from tests.helpers import DESK, customer_mail, free_port, make_config
from tests.test_agents import agent_reply, text_of, wait_for_mail
from ticketd.state import open_state

pytestmark = pytest.mark.slow

SPF_AGENT = "ajan@spf.example"  # its domain's SPF lets 127.0.0.1 send
DKIM_AGENT = "imza@signed.example"  # its domain's SPF lets nobody send; it signs with DKIM
FORGED_AGENT = "kotu@reject.example"  # SPF lets nobody send, DMARC p=reject, no DKIM key
OWN_ID = "mx.destek.test"
# The in-process desks listen on loopback (verification off by default there) but journal mail as
# our listener would, from direct clients.
VERIFY = "[smtp_in]\nverify_senders = true\n"
TEAM = f"""
[[queues]]
name = "genel"
categories = ["account", "payment", "bonus", "technical", "kyc", "complaint", "other"]

[[agents]]
email = "{SPF_AGENT}"
name = "Ajan"
queues = ["genel"]

[[agents]]
email = "{DKIM_AGENT}"
name = "İmza"
queues = ["genel"]

[[agents]]
email = "{FORGED_AGENT}"
name = "Kötü"
queues = ["genel"]
"""


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=1024)


def _records(key: rsa.RSAPrivateKey) -> list[tuple[str, str]]:
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return [
        ("spf.example", "v=spf1 ip4:127.0.0.1 -all"),
        ("_dmarc.spf.example", "v=DMARC1; p=reject"),
        ("signed.example", "v=spf1 -all"),
        ("s1._domainkey.signed.example", "v=DKIM1; k=rsa; p=" + base64.b64encode(public).decode()),
        ("_dmarc.signed.example", "v=DMARC1; p=reject; adkim=s"),
        ("reject.example", "v=spf1 -all"),
        ("_dmarc.reject.example", "v=DMARC1; p=reject"),
    ]


@pytest.fixture
def dns_server(key: rsa.RSAPrivateKey) -> Iterator[Dnsmasq]:
    with dnsmasq(_records(key)) as server:
        yield server


def sign(raw: bytes, key: rsa.RSAPrivateKey) -> bytes:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    headers = [b"from", b"to", b"subject", b"message-id", b"in-reply-to"]
    signature: bytes = dkim.sign(raw, b"s1", b"signed.example", pem, include_headers=headers)
    return signature.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") + raw


@pytest.fixture
def desk(tmp_path: Path, relay: Relay, dns_server: Dnsmasq) -> Iterator[DaemonProcess]:
    extra = (
        f'[smtp_in]\nlisten = "127.0.0.1:{free_port()}"\nauthserv_id = "{OWN_ID}"\n'
        # On loopback here, but the MX as far as the test is concerned: the clients are direct.
        "verify_senders = true\n\n"
        f'[dns]\nnameservers = ["{dns_server.nameserver}"]\ntimeout = 5\n{TEAM}'
    )
    daemon = DaemonProcess(daemon_config(tmp_path, relay.port, extra=extra))
    daemon.start()
    yield daemon
    assert daemon.stop() == 0


def send(port: int, raw: bytes, sender: str, to: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.sendmail(sender, [to], raw)


def _journal_detail(desk: DaemonProcess, count: int) -> list[str]:
    """What became of each received message (the journal's reason), once `count` are done."""
    db = Database(desk.config.storage.database)

    def done() -> list[str]:
        with db.read() as session:
            rows = session.scalars(select(JournalEntry).order_by(JournalEntry.id)).all()
            finished = [r.reason or "" for r in rows if r.state != "pending"]
        return finished if len(finished) >= count else []

    found: list[str] = desk.wait_until(done, what=f"{count} processed messages")
    return found


def _notification(relay: Relay, agent: str) -> Message:
    return wait_for_mail(relay, agent, 1, "(notification)")[-1]


def test_our_own_verdict_proves_agents_and_refuses_forgeries(
    desk: DaemonProcess, relay: Relay, key: rsa.RSAPrivateKey
) -> None:
    customer = "can@musteri.test"  # publishes nothing: no verdict against it, answered
    send(desk.port, customer_mail(sender=customer, body="Hesabım kilitlendi."), customer, DESK)
    wait_for_mail(relay, customer, 1, "(acknowledgement)")
    [ticket] = desk.cli("tickets", "list", "--json")
    notes = {a: _notification(relay, a) for a in (SPF_AGENT, DKIM_AGENT, FORGED_AGENT)}

    def reply(agent: str, body: str, signed: bool = False, broken: bool = False) -> None:
        note = notes[agent]
        raw = agent_reply(note, agent, body, Authentication_Results="")
        raw = raw.replace(b"Authentication-Results: \r\n", b"")
        if signed:
            raw = sign(raw, key)
        if broken:  # a list footer added on the way: the body hash no longer matches
            raw = raw.replace(b"\r\n\r\n", b"\r\n\r\nFW: ", 1)
        send(desk.port, raw, agent, str(note["Reply-To"]))

    # DKIM broken in transit, and SPF -all for signed.example: refused, nothing relayed.
    reply(DKIM_AGENT, "Kırık imza.", signed=True, broken=True)
    # A forged agent (SPF fail, DMARC p=reject): refused.
    reply(FORGED_AGENT, "#close\n\nSahte.")
    details = _journal_detail(desk, 3)
    assert "dkim=fail (signed.example)" in details[1] and "spf=fail (signed.example)" in details[1]
    assert "dmarc=fail (reject.example)" in details[2] and "security" in details[2]
    time.sleep(0.5)
    assert len(wait_for_mail(relay, customer, 1)) == 1  # only the acknowledgement
    # An aligned DKIM pass (strict alignment) and an aligned SPF pass are proof.
    reply(DKIM_AGENT, "İmzalı cevap.", signed=True)
    answers = wait_for_mail(relay, customer, 2, "(the signed agent's answer)")
    assert "İmzalı cevap." in text_of(answers[-1])
    reply(SPF_AGENT, "#kapat\n\nÇözüldü.")
    answers = wait_for_mail(relay, customer, 3, "(the SPF agent's answer)")
    assert "Çözüldü." in text_of(answers[-1])
    assert desk.cli("tickets", "show", ticket["ref"], "--json")["status"] == "closed"
    details = _journal_detail(desk, 5)
    assert "dkim=pass (signed.example)" in details[3] and "dmarc=pass" in details[3]
    assert "spf=pass (spf.example)" in details[4] and "dmarc=pass (spf.example)" in details[4]


def test_a_dns_server_that_does_not_answer_costs_the_timeout_and_proves_nothing(
    tmp_path: Path, clock: FixedClock
) -> None:
    # A UDP port nobody listens on: every query waits for its answer until the budget is spent.
    silent = f'[dns]\nnameservers = ["127.0.0.1:{free_port()}"]\ntimeout = 1\n{VERIFY}{TEAM}'
    state = open_state(make_config(tmp_path, extra=silent), clock=clock)
    raw = b"Received: from client.test ([127.0.0.1])\r\n\tby mx (ticketd) with SMTP\r\n"
    state.journal.accept(
        Arrival(
            raw=raw + customer_mail(sender="can@musteri.test"),
            source="smtp:127.0.0.1",
            envelope_from="can@musteri.test",
            envelope_to=(DESK,),
        )
    )
    started = time.monotonic()
    [result] = state.worker.drain()
    took = time.monotonic() - started
    assert took < 2.5, f"a silent DNS held the worker {took:.1f} s"
    # Temporary errors prove nothing and refute nothing: the ticket is made and answered.
    assert result.state == "done" and "acknowledged" in result.detail, result.detail
    assert "spf=temperror" in result.detail and "dmarc=temperror" in result.detail
    assert "dkim=none" in result.detail


def _arrival(raw: bytes, mail_from: str) -> Arrival:
    """As our listener journals it: client IP in the source, HELO in the trace header first."""
    trace = b"Received: from client.test ([127.0.0.1])\r\n\tby mx (ticketd) with SMTP\r\n"
    return Arrival(trace + raw, "smtp:127.0.0.1", mail_from, (DESK,))


def test_a_thousand_forged_senders_get_no_automatic_mail(tmp_path: Path, clock: FixedClock) -> None:
    """Backscatter: 1,000 mails from 1,000 forged senders of 100 domains that publish SPF -all
    and DMARC p=reject, sent from an IP their SPF does not allow: 1,000 tickets, 0 mails out."""
    domains = [f"d{i}.forged.test" for i in range(100)]
    records = [(d, "v=spf1 -all") for d in domains]
    records += [(f"_dmarc.{d}", "v=DMARC1; p=reject") for d in domains]
    records.append(("honest.test", "v=spf1 ip4:127.0.0.1 -all"))
    with dnsmasq(records) as server:
        extra = f'[dns]\nnameservers = ["{server.nameserver}"]\n{VERIFY}'
        state = open_state(make_config(tmp_path, extra=extra), clock=clock)
        for i in range(1000):
            sender = f"kisi{i}@{domains[i % 100]}"
            raw = customer_mail(sender=sender, subject=f"Talep {i}", body=f"Metin {i}")
            state.journal.accept(_arrival(raw, sender))
        started = time.monotonic()
        results = state.worker.drain()
        took = time.monotonic() - started
        honest = customer_mail(sender="can@honest.test", subject="Gerçek talep")
        state.journal.accept(_arrival(honest, "can@honest.test"))
        [answered] = state.worker.drain()
    assert len(results) == 1000 and all(r.state == "done" for r in results)
    assert all(r.untrusted == "dmarc" for r in results)
    assert all("fails DMARC" in r.detail for r in results), results[0].detail
    with state.db.read() as session:
        sent = [(m.kind, m.recipient) for m in session.scalars(select(OutboxMail))]
    assert sent == [("ack", "can@honest.test")]  # not one to a forged sender
    with state.db.read() as session:
        notes = session.scalars(
            select(TicketMessage).where(TicketMessage.subject.like("Sender not proven%"))
        ).all()
    assert len(notes) == 1000  # every ticket is marked for the agents
    # The same desk answers an honest sender: the silence is the forgeries', not the desk's.
    assert "acknowledged" in answered.detail and answered.untrusted is None
    print(f"1000 forged mails verified and processed in {took:.1f} s")


def test_a_signature_quoted_in_the_body_of_an_lf_message_is_no_signature_of_it(
    key: rsa.RSAPrivateKey, dns_server: Dnsmasq
) -> None:
    # A desk's mail pipe hands over LF line ends; a customer forwarding a signed mail inline
    # quotes its DKIM-Signature line in the body. Only the header's signatures are the
    # message's: the quoted one used to be counted too, and judged a permerror beside the pass.
    quoted = b"DKIM-Signature: v=1; a=rsa-sha256; d=bank.example; s=x; h=from; bh=a; b=b\n"
    body = b"Asagidaki mail bankadan geldi:\n\n" + quoted + b"From: bank@bank.example\n"
    raw = sign(
        b"From: Ayse <ayse@signed.example>\nTo: destek@example.com\nSubject: Fwd: dekont\n"
        b"Message-ID: <lf-quoted@signed.example>\n\n" + body,
        key,
    ).replace(b"\r\n", b"\n")
    config = DnsConfig(nameservers=(("127.0.0.1", dns_server.port),), timeout=5)
    results = verify(raw, Envelope("127.0.0.1", "ayse@signed.example", "mx"), config, "mx.test")
    assert [(r.method, r.result, r.domain) for r in results if r.method == "dkim"] == [
        ("dkim", "pass", "signed.example")
    ]
