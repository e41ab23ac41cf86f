"""A bounce that returns our whole mail finds it wherever the returned part lies.

An MTA that returns the full message (Postfix with the default `bounce_size_limit` raised,
Exchange, Exim's `return_message`) puts it after the report's human-readable part; a mail of
ours that carried a 2 MB file, after a long transcript, puts the returned header megabytes
into the bounce. The Message-IDs were looked for in the first 512 KB only, so such a bounce
was "not about a mail of ours": the failure was never noted on the ticket and the dead address
kept getting mail. The returned part is now found by the MIME structure (ingest/parsing.py
`_returned_ids`), and what the scan costs is still what parsing costs.
"""

from __future__ import annotations

import base64
import time

from domain.clock import FixedClock
from ingest.parsing import BOUNCE_SCAN_LIMIT, parse_message
from tests.helpers import DESK
from tests.test_threading import deliver, messages_of, open_ticket
from ticketd.state import State
from ticketd.views import list_outbox

CUSTOMER = "ayse@musteri.com.tr"


def _lines(data: bytes) -> bytes:
    encoded = base64.b64encode(data)
    return b"\r\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76)) + b"\r\n"


def _transcript(size: int) -> bytes:
    """The SMTP session of every retry, as some MTAs quote it in the human-readable part."""
    line = b"<<< 451 4.7.1 Greylisted, please try again later (mx.musteri.com.tr)\r\n"
    return line * (size // len(line))


def _returned_part(content_type: bytes, message_id: str, file_size: int) -> bytes:
    returned = (
        f"From: Destek <{DESK}>\r\nTo: {CUSTOMER}\r\nSubject: Talebiniz alindi\r\n"
        f"Message-ID: <{message_id}>\r\nAuto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="orj"\r\n\r\n'
        "--orj\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nTalebiniz alindi.\r\n"
        '--orj\r\nContent-Type: application/pdf; name="sozlesme.pdf"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n"
    ).encode()
    returned += _lines(b"%PDF-1.4\n" + b"\x00\x01\x02\x03" * (file_size // 4)) + b"--orj--\r\n"
    if content_type == b"text/rfc822-headers":
        returned = returned[: returned.index(b"\r\n\r\n") + 2]
    return b"Content-Type: " + content_type + b"\r\n\r\n" + returned


def _bounce(message_id: str, content_type: bytes = b"message/rfc822") -> bytes:
    """A Postfix-shaped DSN returning the whole message after a 600 KB human-readable part."""
    return (
        b"From: MAILER-DAEMON@mx.musteri.com.tr (Mail Delivery System)\r\n"
        b"To: " + DESK.encode() + b"\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        b"Message-ID: <20240501.dsn@mx.musteri.com.tr>\r\nAuto-Submitted: auto-replied\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: multipart/report; report-type=delivery-status;\r\n"
        b'\tboundary="dsn"\r\n\r\n'
        b"--dsn\r\nContent-Description: Notification\r\nContent-Type: text/plain\r\n\r\n"
        b"This is the mail system at host mx.musteri.com.tr.\r\n\r\n"
        b"I'm sorry to have to inform you that your message could not\r\n"
        b"be delivered to one or more recipients.\r\n\r\n"
        b"<"
        + CUSTOMER.encode()
        + b">: host mx.musteri.com.tr said: 550 5.1.1 User unknown\r\n\r\n"
        + _transcript(600 * 1024)
        + b"\r\n--dsn\r\nContent-Description: Delivery report\r\n"
        b"Content-Type: message/delivery-status\r\n\r\n"
        b"Reporting-MTA: dns; mx.musteri.com.tr\r\n\r\n"
        b"Final-Recipient: rfc822; " + CUSTOMER.encode() + b"\r\n"
        b"Action: failed\r\nStatus: 5.1.1\r\n\r\n"
        b"--dsn\r\nContent-Description: Undelivered Message\r\n"
        + _returned_part(content_type, message_id, 2 * 1024 * 1024)
        + b"--dsn--\r\n"
    )


def test_the_returned_message_is_found_megabytes_in() -> None:
    raw = _bounce("ack-1@destek.example.com")
    assert raw.index(b"Message-ID: <ack-1@") > BOUNCE_SCAN_LIMIT  # past the byte scan
    message = parse_message(raw, envelope_from="<>")
    assert "ack-1@destek.example.com" in message.embedded_message_ids


def test_returned_headers_alone_are_found_past_the_scan_too() -> None:
    raw = _bounce("ack-2@destek.example.com", b"text/rfc822-headers")
    assert raw.index(b"Message-ID: <ack-2@") > BOUNCE_SCAN_LIMIT
    message = parse_message(raw, envelope_from="<>")
    assert message.embedded_message_ids == ("ack-2@destek.example.com",)


def test_finding_it_costs_what_parsing_costs() -> None:
    """The same bounce as a person's mail (no scan at all) and as a bounce: the returned part
    is found among the parts the parser made, not by reading the bytes again."""
    raw = _bounce("ack-3@destek.example.com")
    as_person = raw.replace(b"MAILER-DAEMON@", b"ayse.yilmaz@").replace(
        b"Auto-Submitted: auto-replied\r\nMIME", b"MIME"
    )

    def seconds(mail: bytes, envelope: str) -> float:
        best = float("inf")
        for _ in range(3):
            start = time.process_time()
            parse_message(mail, envelope_from=envelope)
            best = min(best, time.process_time() - start)
        return best

    assert seconds(raw, "<>") < 2 * seconds(as_person, CUSTOMER) + 0.2


def test_a_large_bounce_of_our_mail_is_noted_on_the_ticket(state: State, clock: FixedClock) -> None:
    ref, ack_id = open_ticket(state, clock)
    result = deliver(state, _bounce(ack_id))
    assert result.state == "done" and result.detail.startswith(f"ticket {ref}:"), result.detail
    note = messages_of(state, ref)[-1]
    assert note["kind"] == "system" and "failed permanently" in str(note["text"])
    [ack] = list_outbox(state.db)
    assert ack["state"] == "failed"
