"""End to end: smtplib as the customer, the daemon as a process, aiosmtpd as the relay."""

from __future__ import annotations

import smtplib
from email.message import Message
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import pytest

from domain.refs import find_references
from tests.daemon import DaemonProcess, Relay, daemon_config
from tests.helpers import DESK, customer_mail

pytestmark = pytest.mark.slow


def send(port: int, raw: bytes, sender: str = "ayse@musteri.com.tr", to: str = DESK) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.sendmail(sender, [to], raw)


def _parts(mail: Message) -> dict[str, str]:
    found: dict[str, str] = {}
    for part in mail.walk():
        if part.get_content_maintype() == "text":
            found[part.get_content_type()] = part.get_content()  # type: ignore[attr-defined]
    return found


def _tickets(daemon: DaemonProcess) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = daemon.cli("tickets", "list", "--json")
    return result


def test_turkish_request_opens_ticket_and_is_acknowledged_in_turkish(
    daemon: DaemonProcess, relay: Relay
) -> None:
    raw = customer_mail(message_id="<talep-1@musteri.com.tr>")
    send(daemon.port, raw)

    ack = relay.wait_for(1)[0]
    tickets = _tickets(daemon)
    assert len(tickets) == 1
    ref = tickets[0]["ref"]
    assert tickets[0]["customer"] == "ayse@musteri.com.tr"
    assert tickets[0]["status"] == "open"

    assert find_references(str(ack["Subject"])) == [ref]
    assert parseaddr(str(ack["To"]))[1] == "ayse@musteri.com.tr"
    assert parseaddr(str(ack["From"]))[1] == DESK
    assert str(ack["In-Reply-To"]) == "<talep-1@musteri.com.tr>"
    assert "<talep-1@musteri.com.tr>" in str(ack["References"])
    assert str(ack["Auto-Submitted"]) == "auto-replied"
    assert ack.get_content_type() == "multipart/alternative"
    parts = _parts(ack)
    assert set(parts) == {"text/plain", "text/html"}
    assert ref in parts["text/plain"] and ref in parts["text/html"]
    assert "Talebiniz" in parts["text/plain"]
    # Automatic mail goes out with an empty envelope sender: nothing bounces back to it.
    assert relay.handler.received[0][0] in ("", "<>")

    shown = daemon.cli("tickets", "show", ref, "--json")
    assert shown["participants"] == ["ayse@musteri.com.tr"]
    directions = [(m["direction"], m["kind"]) for m in shown["messages"]]
    assert directions == [("in", "customer"), ("out", "auto")]
    assert shown["messages"][0]["text"] == "Para çekme talebim 3 gündür beklemede"
    assert shown["messages"][1]["delivery"]["state"] == "sent"


def test_english_request_gets_english_acknowledgement(daemon: DaemonProcess, relay: Relay) -> None:
    raw = customer_mail(
        sender="John Smith <john@example.org>",
        subject="Withdrawal still pending",
        body="Hello, my withdrawal has been waiting for three days. Please help.",
    )
    send(daemon.port, raw, sender="john@example.org")
    ack = relay.wait_for(1)[0]
    text = _parts(ack)["text/plain"]
    assert "We have received your request" in text
    assert "Talebiniz" not in text
    assert _tickets(daemon)[0]["customer"] == "john@example.org"


def test_reply_with_reference_joins_ticket_without_new_acknowledgement(
    daemon: DaemonProcess, relay: Relay
) -> None:
    send(daemon.port, customer_mail())
    relay.wait_for(1)
    ref = _tickets(daemon)[0]["ref"]

    follow_up = customer_mail(subject=f"Ynt: [#{ref}] Para çekme talebim", body="Hâlâ bekliyorum.")
    send(daemon.port, follow_up)
    daemon.wait_until(
        lambda: _tickets(daemon)[0]["messages"] == 3, what="the follow-up joining the ticket"
    )
    tickets = _tickets(daemon)
    assert len(tickets) == 1
    assert len(relay.handler.messages()) == 1
    shown = daemon.cli("tickets", "show", ref, "--json")
    assert [m["text"] for m in shown["messages"] if m["direction"] == "in"][-1] == (
        "Hâlâ bekliyorum."
    )
    outbox = daemon.cli("outbox", "list", "--json")
    assert [(o["kind"], o["state"]) for o in outbox] == [("ack", "sent")]


def test_same_message_twice_is_one_ticket_message(daemon: DaemonProcess, relay: Relay) -> None:
    raw = customer_mail(message_id="<twice@musteri.com.tr>")
    send(daemon.port, raw)
    send(daemon.port, raw)  # an SMTP retry after a lost 250
    relay.wait_for(1)
    daemon.wait_until(
        lambda: daemon.cli("quarantine", "list", "--json") == [] and _tickets(daemon),
        what="processing",
    )
    tickets = _tickets(daemon)
    assert len(tickets) == 1 and tickets[0]["messages"] == 2  # the message and its ack
    assert len(relay.handler.messages()) == 1


def test_listener_refuses_relaying_and_oversized_mail(tmp_path: Path, relay: Relay) -> None:
    config = daemon_config(tmp_path, relay.port, extra="")
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("[smtp_in]\n", "[smtp_in]\nmax_message_size = 2048\n"))
    daemon = DaemonProcess(config)
    daemon.start()
    try:
        with smtplib.SMTP("127.0.0.1", daemon.port, timeout=10) as client:
            client.ehlo()
            client.mail("ayse@musteri.com.tr")
            code, reply = client.rcpt("someone@elsewhere.example")
            assert code == 550, reply
            code, _ = client.rcpt("destek+abc@example.com")  # plus-addressed forms are ours
            assert code == 250
            client.rset()
            big = customer_mail(body="satır\n" * 1000)
            # A client that declares SIZE is refused at MAIL FROM ...
            with pytest.raises(smtplib.SMTPSenderRefused) as refused:
                client.sendmail("ayse@musteri.com.tr", [DESK], big)
            assert refused.value.smtp_code == 552
            # ... one that does not is refused after DATA, and nothing is stored.
            client.rset()
            assert client.mail("ayse@musteri.com.tr")[0] == 250
            assert client.rcpt(DESK)[0] == 250
            code, _ = client.data(big)
            assert code == 552
    finally:
        assert daemon.stop() == 0
    assert daemon.cli("tickets", "list", "--json") == []


def test_storage_failure_answers_451_and_the_client_can_retry(
    daemon: DaemonProcess, relay: Relay
) -> None:
    blobs = daemon.config.storage.blobs
    moved = blobs.with_name("blobs.saved")
    blobs.rename(moved)
    blobs.write_text("a file where the blob folder should be")  # every write now fails
    raw = customer_mail(message_id="<retry-451@musteri.com.tr>")
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(daemon.port, raw)
    assert refused.value.smtp_code == 451
    assert "could not store" in daemon.log()

    blobs.unlink()
    moved.rename(blobs)
    send(daemon.port, raw)  # the client's retry succeeds once storage is back
    relay.wait_for(1)
    assert len(_tickets(daemon)) == 1
