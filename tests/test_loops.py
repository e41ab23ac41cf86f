"""No loops, no noise: what never gets an automatic answer, out-of-office replies, bounces."""

from __future__ import annotations

import smtplib
import threading
import time
import uuid
from datetime import timedelta
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import select

from domain.clock import FixedClock
from outbound.compose import new_message_id
from storage.models import Suppression
from tests.daemon import DaemonProcess, daemon_config
from tests.helpers import DESK, customer_mail, free_port
from tests.test_threading import deliver, messages_of, open_ticket
from ticketd.state import State
from ticketd.views import list_outbox, list_tickets


def _report(report_type: str, status: str, original_id: str, failed: str) -> bytes:
    mail = EmailMessage()
    mail["From"] = "Mail Delivery System <MAILER-DAEMON@mx.musteri.com.tr>"
    mail["To"] = DESK
    mail["Subject"] = "Undelivered Mail Returned to Sender"
    mail["Message-ID"] = f"<report-{status}-{original_id[:8]}@mx.musteri.com.tr>"
    mail.set_content("This is the mail system at host mx.musteri.com.tr.\n")
    action = "failed" if status.startswith("5") else "delayed"
    status_part = EmailMessage()
    status_part.set_content(
        f"Reporting-MTA: dns; mx.musteri.com.tr\n\nFinal-Recipient: rfc822; {failed}\n"
        f"Action: {action}\nStatus: {status}\n"
    )
    mail.make_mixed()
    mail.attach(status_part)
    headers = EmailMessage()
    headers.set_content(f"From: {DESK}\nTo: {failed}\nMessage-ID: <{original_id}>\n")
    mail.attach(headers)
    mail.replace_header(
        "Content-Type",
        f'multipart/report; report-type={report_type}; boundary="{mail.get_boundary()}"',
    )
    return mail.as_bytes(policy=SMTP_POLICY)


NO_ANSWER_HEADERS = [
    {"Auto-Submitted": "auto-replied"},
    {"Auto-Submitted": "auto-generated"},
    {"Precedence": "bulk"},
    {"Precedence": "junk"},
    {"Precedence": "list"},
    {"List-Id": "<duyurular.musteri.com.tr>"},
    {"List-Unsubscribe": "<mailto:unsubscribe@musteri.com.tr>"},
    {"Return-Path": "<>"},
    {"X-Loop": DESK},
]


@pytest.mark.parametrize("headers", NO_ANSWER_HEADERS, ids=lambda h: next(iter(h.items()))[0])
def test_no_automatic_mail_to_machines(state: State, headers: dict[str, str]) -> None:
    deliver(state, customer_mail(headers=headers))
    assert list_outbox(state.db) == []


@pytest.mark.parametrize(
    "sender",
    [
        "MAILER-DAEMON@mx.example.net",
        "postmaster@example.net",
        "no-reply@example.net",
        "noreply@bank.example",
    ],
)
def test_no_automatic_mail_to_system_senders(state: State, sender: str) -> None:
    deliver(state, customer_mail(sender=sender, subject="Bilgilendirme"))
    assert list_outbox(state.db) == []


def test_x_auto_response_suppress_opens_a_ticket_without_an_answer(state: State) -> None:
    result = deliver(state, customer_mail(headers={"X-Auto-Response-Suppress": "All"}))
    assert result.state == "done" and "X-Auto-Response-Suppress" in result.detail
    assert len(list_tickets(state.db)) == 1 and list_outbox(state.db) == []


def test_our_own_mail_coming_back_is_a_loop(state: State, clock: FixedClock) -> None:
    _ref, _ack = open_ticket(state, clock)
    [ack_raw] = _outbox_raw(state)
    result = deliver(state, ack_raw)  # a forwarder that sends our mail back to us
    assert result.state == "ignored" and result.detail.startswith("loop")
    assert len(list_outbox(state.db)) == 1


def _outbox_raw(state: State) -> list[bytes]:
    from tests.test_threading import _outbox_raw as raw_rows

    return raw_rows(state)


def test_read_receipt_and_feedback_report_get_no_answer(state: State, clock: FixedClock) -> None:
    _ref, ack_id = open_ticket(state, clock)
    deliver(state, _report("disposition-notification", "2.0.0", ack_id, "ayse@musteri.com.tr"))
    deliver(
        state,
        _report(
            "feedback-report",
            "2.0.0",
            new_message_id("x", "AAAA-AAAA", "e.c"),
            "ayse@musteri.com.tr",
        ),
    )
    assert len(list_outbox(state.db)) == 1


def test_out_of_office_is_kept_on_the_ticket_and_never_answered(
    state: State, clock: FixedClock
) -> None:
    ref, ack_id = open_ticket(state, clock)
    ooo = customer_mail(
        subject="Otomatik yanıt: Para çekme talebim",
        body="12 Aralık'a kadar ofis dışındayım.",
        headers={"Auto-Submitted": "auto-replied", "In-Reply-To": f"<{ack_id}>"},
    )
    result = deliver(state, ooo)
    assert result.state == "done" and "recorded, not answered" in result.detail
    last = messages_of(state, ref)[-1]
    assert last["kind"] == "auto" and last["direction"] == "in"
    assert [t["status"] for t in list_tickets(state.db)] == ["open"]
    assert len(list_outbox(state.db)) == 1


def test_a_permanent_bounce_is_noted_and_suppresses_the_address(
    state: State, clock: FixedClock
) -> None:
    ref, ack_id = open_ticket(state, clock)
    bounce = _report("delivery-status", "5.1.1", ack_id, "ayse@musteri.com.tr")
    result = deliver(state, bounce)
    assert result.state == "done" and result.detail.startswith(f"ticket {ref}:")
    note = messages_of(state, ref)[-1]
    assert note["kind"] == "system" and "failed permanently" in str(note["text"])
    [ack] = list_outbox(state.db)
    assert ack["state"] == "failed" and "bounced" in ack["last_error"]
    # The same report again changes nothing.
    assert deliver(state, bounce).state == "ignored"
    # A new request from the dead address: a ticket, but no mail into the void.
    clock.advance(timedelta(hours=2))
    new = deliver(state, customer_mail(subject="Bonus", body="Bonusum nerede?"))
    new_ref = new.detail.split()[1].rstrip(":")
    assert len(list_outbox(state.db)) == 1
    silent = messages_of(state, new_ref)[-1]
    assert "suppressed" in str(silent["text"])
    # After the suppression ends, mail flows again.
    clock.advance(timedelta(days=8))
    deliver(state, customer_mail(subject="Hesap", body="Hesabım kilitlendi."))
    assert len(list_outbox(state.db)) == 2


def _forged_report(original_id: str, failed: list[str]) -> bytes:
    """A well-formed DSN (message/delivery-status, one block per recipient) about our mail."""
    status = "".join(
        f"Final-Recipient: rfc822; {a}\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n" for a in failed
    )
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.evil.example>\r\n"
        f"To: {DESK}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <forged-report@mx.evil.example>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B42"\r\n\r\n'
        "--B42\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n"
        "--B42\r\nContent-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; mx.evil.example\r\n\r\n{status}"
        "--B42\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: {DESK}\r\nMessage-ID: <{original_id}>\r\n\r\n--B42--\r\n"
    ).encode()


def test_a_report_about_our_mail_suppresses_only_its_recipients(
    state: State, clock: FixedClock
) -> None:
    """Issue 22 (8): a forged report quoting our acknowledgement's Message-ID and listing fifty
    strangers as failed silences nobody but the acknowledgement's recipient."""
    ref, ack_id = open_ticket(state, clock)
    strangers = [f"musteri{n}@baska.example" for n in range(50)]
    report = _forged_report(ack_id, [*strangers[:25], "ayse@musteri.com.tr", *strangers[25:]])
    result = deliver(state, report)
    assert result.state == "done" and result.detail.startswith(f"ticket {ref}:")
    with state.db.read() as session:
        suppressed = set(session.scalars(select(Suppression.address)))
    assert suppressed == {"ayse@musteri.com.tr"}
    note = str(messages_of(state, ref)[-1]["text"])
    assert "names 50 address(es) that mail was not sent to" in note
    # One of them writes: acknowledged as usual.
    clock.advance(timedelta(hours=2))
    deliver(state, customer_mail(sender=strangers[7], subject="Bonus", body="Bonusum nerede?"))
    assert [r["to"] for r in list_outbox(state.db)][-1] == strangers[7]


def test_a_delay_warning_is_noted_without_suppression(state: State, clock: FixedClock) -> None:
    ref, ack_id = open_ticket(state, clock)
    deliver(state, _report("delivery-status", "4.4.1", ack_id, "ayse@musteri.com.tr"))
    assert "delayed" in str(messages_of(state, ref)[-1]["text"])
    [ack] = list_outbox(state.db)
    assert ack["state"] == "queued"
    clock.advance(timedelta(hours=2))
    deliver(state, customer_mail(subject="Hesap", body="Hesabım kilitlendi."))
    assert len(list_outbox(state.db)) == 2


def test_a_bounce_about_someone_elses_mail_is_ignored(state: State) -> None:
    result = deliver(
        state, _report("delivery-status", "5.1.1", "abc@elsewhere.example", "x@y.example")
    )
    assert result.state == "ignored" and "not about a mail of ours" in result.detail


def test_two_requests_a_minute_apart_both_get_their_reference_a_third_does_not(
    state: State, clock: FixedClock
) -> None:
    # A person, not a loop: the second acknowledgement waits out the interval (120 s) instead
    # of being dropped. A third mail within the hour is what a responder answering every
    # acknowledgement with a fresh message would send: it gets none, and the exchange ends.
    sender = "deniz@musteri.com.tr"
    started = clock.now()
    for wait, subject in ((0, "Para çekme"), (60, "Bonus"), (30, "Hesap kilitli")):
        clock.advance(timedelta(seconds=wait))
        deliver(state, customer_mail(sender=sender, subject=subject, body=f"{subject} sorunu"))
    acks = [row for row in list_outbox(state.db) if row["kind"] == "ack"]
    tickets = {t["ref"]: t for t in list_tickets(state.db)}
    assert len(tickets) == 3 and len(acks) == 2
    first, second = acks
    assert "Para çekme" in first["subject"]
    assert "Bonus" in second["subject"]
    assert second["created_at"] == (started + timedelta(seconds=120)).isoformat()
    [third] = [t for t in tickets.values() if t["subject"] == "Hesap kilitli"]
    notes = [m["text"] for m in messages_of(state, third["ref"]) if m["kind"] == "system"]
    assert any("No ack mail went to" in str(n) for n in notes), notes


class AutoResponder:
    """A naive auto-responder: answers every mail it receives, without any of the headers that
    mark an automatic reply, with a fresh subject and no threading headers: the worst case."""

    def __init__(self, desk_port: int) -> None:
        self.desk_port = desk_port
        self.received = 0
        self.lock = threading.Lock()

    def _answer(self) -> None:
        reply = customer_mail(
            sender="ayse@musteri.com.tr",
            subject=f"Mesajınız için teşekkürler {uuid.uuid4().hex[:6]}",
            # Text different every time, so only the rate limit can stop the exchange.
            body=" ".join(uuid.uuid4().hex for _ in range(8)),
        )
        try:
            with smtplib.SMTP("127.0.0.1", self.desk_port, timeout=10) as client:
                client.sendmail("ayse@musteri.com.tr", [DESK], reply)
        except (OSError, smtplib.SMTPException):
            pass

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.lock:
            self.received += 1
        threading.Thread(target=self._answer).start()
        return "250 OK"


@pytest.mark.slow
def test_an_auto_responder_and_ticketd_do_not_answer_each_other_forever(tmp_path: Path) -> None:
    relay_port = free_port()
    config = daemon_config(tmp_path, relay_port, extra="")
    # Let it answer quickly, to see the per-recipient limit (not the interval) stop it.
    text = config.read_text().replace(
        "[smtp_out]",
        "[limits]\nauto_reply_interval_seconds = 0\nauto_replies_per_hour = 3\n\n[smtp_out]",
    )
    config.write_text(text)
    daemon = DaemonProcess(config)
    responder = AutoResponder(daemon.port)
    controller = Controller(responder, hostname="127.0.0.1", port=relay_port)
    controller.start()
    daemon.start()
    try:
        with smtplib.SMTP("127.0.0.1", daemon.port, timeout=10) as client:
            client.sendmail("ayse@musteri.com.tr", [DESK], customer_mail())
        daemon.wait_until(lambda: responder.received >= 3, what="three rounds")
        time.sleep(4)  # rounds would follow within a second each
        assert responder.received == 3
        tickets = daemon.cli("tickets", "list", "--json")
        assert len(tickets) == 4  # the exchange stopped: the fourth got no answer
    finally:
        assert daemon.stop() == 0
        controller.stop()
