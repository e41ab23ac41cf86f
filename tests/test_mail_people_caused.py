"""Mail a person caused reaches them; mail that may wait waits; what is dropped is told (issue
15, point 3). The per-recipient limit of automatic mail is against loops: an agent's KYC decision
is not automatic, a survey or a receipt held by the limit is delayed, and an acknowledgement the
limit drops is named in the agents' notification."""

from __future__ import annotations

import smtplib
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import pytest

from domain.clock import FixedClock
from outbound.addresses import agent_reply_address
from tests.daemon import DaemonProcess, Relay, daemon_config
from tests.helpers import DESK, customer_mail, make_config
from tests.test_agents import agent_reply, mails_to, text_of, wait_for_mail
from tests.test_kyc import JPEG, KYC_AGENT, TEAM, kyc_mail
from tests.test_loops import _report
from tests.test_sla_survey import outbox
from tests.test_threading import deliver
from ticketd.state import State, open_state

pytestmark = pytest.mark.slow
CUSTOMER = "ayse@musteri.com.tr"


def send(port: int, raw: bytes, sender: str, to: str = DESK) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.sendmail(sender, [to], raw)


def _documents() -> bytes:
    return kyc_mail([("kimlik.jpg", "image/jpeg", JPEG)])


def _start(tmp_path: Path, relay: Relay, limits: str = "") -> DaemonProcess:
    daemon = DaemonProcess(daemon_config(tmp_path, relay.port, extra=TEAM + limits))
    daemon.start()
    return daemon


@pytest.fixture
def desk(tmp_path: Path, relay: Relay) -> Iterator[DaemonProcess]:
    daemon = _start(tmp_path, relay)
    yield daemon
    assert daemon.stop() == 0


def test_an_agents_decision_reaches_the_customer_right_after_the_receipt(
    desk: DaemonProcess, relay: Relay
) -> None:
    send(desk.port, _documents(), CUSTOMER)
    [notification] = wait_for_mail(relay, KYC_AGENT, 1, "(notification)")
    wait_for_mail(relay, CUSTOMER, 1, "(receipt)")
    # Within the 2 minutes the limit keeps between two automatic mails: a person's decision.
    approve = agent_reply(notification, KYC_AGENT, "#kyc onayla")
    send(desk.port, approve, KYC_AGENT, str(notification["Reply-To"]))
    [_, approved] = wait_for_mail(relay, CUSTOMER, 2, "(the approval)")
    assert "onaylandı" in text_of(approved).lower() or "doğrulandı" in text_of(approved).lower()
    assert "Auto-Submitted" not in approved  # an agent's act, not an automatic answer
    request = agent_reply(notification, KYC_AGENT, "#kyc iste")
    send(desk.port, request, KYC_AGENT, str(notification["Reply-To"]))
    wait_for_mail(relay, CUSTOMER, 3, "(the request for documents)")


def _tick(daemon: DaemonProcess) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "ticketd.cli", "--config", str(daemon.config_path), "sla", "tick"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_survey_held_by_the_limit_is_delayed_not_dropped(tmp_path: Path, relay: Relay) -> None:
    daemon = _start(tmp_path, relay, "\n[limits]\nauto_reply_interval_seconds = 30\n")
    try:
        send(daemon.port, customer_mail(sender=CUSTOMER, subject="Hesap", body="Hesabım"), CUSTOMER)
        [notification] = wait_for_mail(relay, "mert@destek.example.com", 1, "(notification)")
        [ack] = wait_for_mail(relay, CUSTOMER, 1, "(acknowledgement)")
        acked = time.monotonic()
        close = agent_reply(notification, "mert@destek.example.com", "#kapat")
        send(daemon.port, close, "mert@destek.example.com", str(notification["Reply-To"]))
        ref = daemon.cli("tickets", "list", "--json")[0]["ref"]
        daemon.wait_until(
            lambda: daemon.cli("tickets", "show", ref, "--json")["status"] == "closed",
            what="#kapat",
        )
        assert "delayed until" in _tick(daemon)
        [_, survey] = wait_for_mail(relay, CUSTOMER, 2, "(the delayed survey)", timeout=45)
        assert time.monotonic() - acked >= 10  # not before the limit allowed it
        notes = [m["text"] for m in daemon.cli("tickets", "show", ref, "--json")["messages"]]
        assert any("waits until" in n for n in notes), notes
        assert ack["Message-ID"] != survey["Message-ID"]
    finally:
        assert daemon.stop() == 0


def test_an_acknowledgement_the_limit_drops_is_named_in_the_notification(
    desk: DaemonProcess, relay: Relay
) -> None:
    agent = "mert@destek.example.com"
    send(desk.port, customer_mail(sender=CUSTOMER, subject="Hesap", body="Hesabım"), CUSTOMER)
    wait_for_mail(relay, CUSTOMER, 1, "(first acknowledgement)")
    # The second acknowledgement waits out the interval (outbound/automatic.py); the third is
    # dropped, and its notification says so.
    send(desk.port, customer_mail(sender=CUSTOMER, subject="Bonus", body="Bonusum"), CUSTOMER)
    send(desk.port, customer_mail(sender=CUSTOMER, subject="Çekim", body="Çekimim"), CUSTOMER)
    notified = [text_of(m) for m in wait_for_mail(relay, agent, 3, "(third notification)")]
    # The reason, in the desk's language (in the third's notification, whatever the order).
    assert any("Müşteriye gönderilemedi" in t and "gönderim sınırı" in t for t in notified)
    assert len(mails_to(relay, CUSTOMER)) == 1  # the second waits for its slot


@pytest.fixture
def kyc_desk(tmp_path: Path, clock: FixedClock) -> Iterator[State]:
    opened = open_state(make_config(tmp_path, extra=TEAM), clock=clock)
    yield opened
    opened.close()


def _agent(state: State, ref: str, body: str) -> None:
    mail = EmailMessage()
    mail["From"] = KYC_AGENT
    mail["To"] = agent_reply_address(state.config.desk, ref)
    mail["Subject"] = f"RE: [#{ref}] Kimlik"
    mail.set_content(body)
    result = deliver(state, mail.as_bytes(policy=SMTP), (mail["To"],))
    assert result.state == "done", result.detail


def test_a_decision_that_cannot_go_is_told_to_the_agent(kyc_desk: State, clock: FixedClock) -> None:
    result = deliver(kyc_desk, _documents())
    ref = result.detail.split()[1].rstrip(":")
    [receipt] = outbox(kyc_desk, "kyc_received")
    bounce = _report("delivery-status", "5.1.1", receipt.message_id, CUSTOMER)
    assert deliver(kyc_desk, bounce).state == "done"
    _agent(kyc_desk, ref, "#kyc onayla")
    assert outbox(kyc_desk, "kyc_approved") == []  # the address bounced: nothing into the void
    [told] = outbox(kyc_desk, "not-sent")
    # A Turkish desk: the mail's kind and the reason in Turkish (domain/labels.py).
    assert told.recipient == KYC_AGENT and "onay bildirimi" in told.text
    assert "zamanına kadar e-posta gönderilmiyor" in told.text, told.text


def test_automatic_mail_past_the_hourly_limit_waits_for_its_slot(
    kyc_desk: State, clock: FixedClock
) -> None:
    """Three automatic mails in an hour: the fourth, a document receipt, goes an hour after the
    first (the acknowledgement of a fourth request, which a loop would multiply, is dropped)."""
    first = clock.now()
    for subject in ("Hesap", "Bonus", "Para"):
        deliver(kyc_desk, customer_mail(sender=CUSTOMER, subject=subject, body=subject))
        clock.advance(timedelta(minutes=5))
    assert len(outbox(kyc_desk, "ack")) == 3
    deliver(kyc_desk, customer_mail(sender=CUSTOMER, subject="Çekim", body="Çekim"))
    assert len(outbox(kyc_desk, "ack")) == 3
    deliver(kyc_desk, _documents())
    [receipt] = outbox(kyc_desk, "kyc_received")
    assert receipt.next_attempt_at.replace(tzinfo=first.tzinfo) == first + timedelta(hours=1)
