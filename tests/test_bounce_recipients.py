"""A delivery report acts on the mail it quotes only for that mail's recipients, block by block.

A DSN whose message/delivery-status part says B failed, but which quotes our acknowledgement to
A, marked A's acknowledgement failed ("Delivery of ack mail ... to its recipient failed
permanently", beside "The report also names 1 address(es) that mail was not sent to"): the
note contradicted itself and the outbox said A's mail bounced. Each per-recipient block is now
tied to the quoted mail's recipients (its Original-Recipient, the address we sent to that a
forwarding system kept, or its Final-Recipient); only a failed block of a recipient fails the
mail, a delayed one is only noted, and every other address is named in the note with what the
report says of it (status, diagnostic) and acts on nothing.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from sqlalchemy import select

from domain.clock import FixedClock
from ingest.parsing import parse_message
from storage.models import Suppression
from tests.helpers import DESK
from tests.test_threading import deliver, messages_of, open_ticket
from ticketd.state import State
from ticketd.views import list_outbox

CUSTOMER = "ayse@musteri.com.tr"
CORPUS = Path(os.environ.get("TICKETD_CORPUS", Path(__file__).parents[2] / "shared" / "corpus"))


def _block(final: str, action: str, status: str, original: str = "", diag: str = "") -> str:
    lines = [f"Final-Recipient: rfc822; {final}", f"Action: {action}", f"Status: {status}"]
    if original:
        lines.insert(0, f"Original-Recipient: rfc822;{original}")
    if diag:
        lines.append(f"Diagnostic-Code: smtp; {diag}")
    return "\r\n".join(lines) + "\r\n\r\n"


def _dsn(original_id: str, blocks: list[str], quoted_to: str = CUSTOMER) -> bytes:
    """A Postfix-shaped DSN: the notice, the delivery-status part, the returned header."""
    return (
        "From: MAILER-DAEMON@mx.musteri.com.tr (Mail Delivery System)\r\n"
        f"To: {DESK}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        f"Message-ID: <dsn-{uuid.uuid4().hex}@mx.musteri.com.tr>\r\n"
        "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="R1"\r\n\r\n'
        "--R1\r\nContent-Description: Notification\r\nContent-Type: text/plain\r\n\r\n"
        "This is the mail system at host mx.musteri.com.tr.\r\n\r\n"
        "I'm sorry to have to inform you that your message could not\r\n"
        "be delivered to one or more recipients.\r\n\r\n"
        "--R1\r\nContent-Description: Delivery report\r\n"
        "Content-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.musteri.com.tr\r\nX-Postfix-Queue-ID: 3F2A1C0\r\n\r\n"
        + "".join(blocks)
        + "--R1\r\nContent-Description: Undelivered Message Headers\r\n"
        "Content-Type: text/rfc822-headers\r\n\r\n"
        f"From: Destek <{DESK}>\r\nTo: {quoted_to}\r\nSubject: Talebiniz alindi\r\n"
        f"Message-ID: <{original_id}>\r\n\r\n--R1--\r\n"
    ).encode()


def _suppressed(state: State) -> set[str]:
    with state.db.read() as session:
        return set(session.scalars(select(Suppression.address)))


def test_a_report_of_another_address_does_not_fail_the_mail_it_quotes(
    state: State, clock: FixedClock
) -> None:
    ref, ack_id = open_ticket(state, clock)
    diag = "550 5.1.1 <b@baska.example>: Recipient address rejected: User unknown"
    result = deliver(state, _dsn(ack_id, [_block("b@baska.example", "failed", "5.1.1", diag=diag)]))
    assert result.state == "done" and result.detail.startswith(f"ticket {ref}:")
    [ack] = list_outbox(state.db)
    assert ack["state"] == "queued" and ack["last_error"] is None
    assert _suppressed(state) == set()
    note = messages_of(state, ref)[-1]
    text = str(note["text"])
    assert note["subject"] == "Delivery report"
    assert "failed permanently" not in text and "to its recipient" not in text
    assert (
        f"Message-ID <{ack_id}>" in text
        and f"sent to {CUSTOMER}, but none of its recipients" in text
    )
    assert f"- b@baska.example: failed; 5.1.1; smtp; {diag}" in text
    assert "not marked failed" in text


def test_a_forwarded_address_fails_the_recipient_we_sent_to(
    state: State, clock: FixedClock
) -> None:
    """Original-Recipient is the address we sent to; Final-Recipient where it was forwarded."""
    ref, ack_id = open_ticket(state, clock)
    block = _block("ayse@eski.example", "failed", "5.2.2", CUSTOMER, "552 5.2.2 Mailbox full")
    deliver(state, _dsn(ack_id, [block]))
    [ack] = list_outbox(state.db)
    assert ack["state"] == "failed" and CUSTOMER in ack["last_error"]
    assert "5.2.2" in ack["last_error"]
    assert _suppressed(state) == {CUSTOMER}
    note = messages_of(state, ref)[-1]
    assert note["subject"] == "Delivery failed"
    assert f"to {CUSTOMER} (forwarded to ayse@eski.example) failed permanently: 5.2.2" in str(
        note["text"]
    )


def test_each_block_counts_for_itself(state: State, clock: FixedClock) -> None:
    """The customer delayed, a stranger failed: nothing failed on the customer's account."""
    ref, ack_id = open_ticket(state, clock)
    blocks = [
        _block(CUSTOMER, "delayed", "4.4.1", diag="421 4.4.1 Connection timed out"),
        _block("b@baska.example", "failed", "5.1.1"),
        _block("c@baska.example", "delivered", "2.0.0"),
    ]
    deliver(state, _dsn(ack_id, blocks))
    [ack] = list_outbox(state.db)
    assert ack["state"] == "queued"
    assert _suppressed(state) == set()
    note = messages_of(state, ref)[-1]
    text = str(note["text"])
    assert note["subject"] == "Delivery delayed"
    assert f"to {CUSTOMER} is delayed (the remote server keeps trying): 4.4.1" in text
    assert "- b@baska.example: failed; 5.1.1" in text
    assert "c@baska.example" not in text  # delivered: nothing to say


def test_the_customer_failed_among_others(state: State, clock: FixedClock) -> None:
    ref, ack_id = open_ticket(state, clock)
    blocks = [
        _block("b@baska.example", "delayed", "4.2.2"),
        _block(CUSTOMER, "failed", "5.1.1", diag="550 5.1.1 User unknown"),
    ]
    deliver(state, _dsn(ack_id, blocks))
    [ack] = list_outbox(state.db)
    assert ack["state"] == "failed"
    assert _suppressed(state) == {CUSTOMER}
    text = str(messages_of(state, ref)[-1]["text"])
    assert f"to {CUSTOMER} failed permanently: 5.1.1; smtp; 550 5.1.1 User unknown." in text
    assert "also names 1 address(es)" in text and "- b@baska.example: delayed; 4.2.2" in text


def test_a_report_that_everything_was_delivered_fails_nothing(
    state: State, clock: FixedClock
) -> None:
    ref, ack_id = open_ticket(state, clock)
    deliver(state, _dsn(ack_id, [_block(CUSTOMER, "relayed", "2.0.0")]))
    assert list_outbox(state.db)[0]["state"] == "queued"
    assert _suppressed(state) == set()
    assert "says no recipient failed" in str(messages_of(state, ref)[-1]["text"])


def _corpus(name: str, replace: dict[bytes, bytes]) -> bytes:
    raw = (CORPUS / name).read_bytes()
    for old, new in replace.items():
        assert old in raw
        raw = raw.replace(old, new)
    return raw


MULTI = "ruby-mail/emails/multipart_report_emails/multi_address_bounce1.eml"
MULTI_ID = b"118707422.15521266992174819.JavaMail.root@lvmail01"


def test_a_real_report_of_five_strangers_quoting_our_mail(state: State, clock: FixedClock) -> None:
    """Gmail's DSN of five failed addresses, its returned mail's Message-ID made our ack's."""
    ref, ack_id = open_ticket(state, clock)
    deliver(state, _corpus(MULTI, {MULTI_ID: ack_id.encode()}))
    assert list_outbox(state.db)[0]["state"] == "queued"
    assert _suppressed(state) == set()
    text = str(messages_of(state, ref)[-1]["text"])
    assert "names 5 address(es) that mail was not sent to" in text
    assert "- egyfefsdvsfvvhjsd@gmail.com: failed; 5.1.1; smtp; 550-5.1.1 The email" in text


def test_a_real_report_naming_the_customer_among_others(state: State, clock: FixedClock) -> None:
    ref, ack_id = open_ticket(state, clock)
    raw = _corpus(
        MULTI, {MULTI_ID: ack_id.encode(), b"egyfefsdvsfvvhjsd@gmail.com": b"AYSE@musteri.com.tr"}
    )
    deliver(state, raw)
    assert list_outbox(state.db)[0]["state"] == "failed"
    assert _suppressed(state) == {CUSTOMER}
    text = str(messages_of(state, ref)[-1]["text"])
    assert f"to {CUSTOMER} failed permanently: 5.1.1" in text
    assert "also names 4 address(es)" in text


def test_a_real_delay_of_a_forwarded_address(state: State, clock: FixedClock) -> None:
    """Postfix's delay warning: Final-Recipient the alias's target, Original-Recipient ours."""
    ref, ack_id = open_ticket(state, clock)
    mailman_id = b"mailman.150418.1209869464.31038.pray4-team@strategicnetwork.org"
    raw = _corpus("flufl.bounce/data/dsn_17.txt", {b"userx@example.fi": CUSTOMER.encode()})
    raw = raw.replace(b"=\n<" + mailman_id, b"<" + ack_id.encode())
    message = parse_message(raw, envelope_from="<>")
    assert ack_id in message.embedded_message_ids
    [block] = message.delivery_status
    assert (block.final_recipient, block.original_recipient) == ("xxx@example.fi", CUSTOMER)
    deliver(state, raw)
    assert list_outbox(state.db)[0]["state"] == "queued"
    text = str(messages_of(state, ref)[-1]["text"])
    assert f"to {CUSTOMER} (forwarded to xxx@example.fi) is delayed" in text
    assert "4.3.0; x-unix; Quota exceeded" in text
