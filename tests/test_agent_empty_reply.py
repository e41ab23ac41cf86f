"""An agent reply with nothing of its own is refused, not relayed; no agent address reaches a
customer (issue 15, point 2). End to end: SMTP in, the relay receives what ticketd sends."""

from __future__ import annotations

import re
from collections.abc import Callable
from email.message import EmailMessage, Message
from email.policy import SMTP as SMTP_POLICY
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import pytest

from tests.daemon import DaemonProcess, Relay, daemon_config
from tests.helpers import DESK, customer_mail
from tests.test_agents import AGENT, TEAM, mails_to, send, text_of, wait_for_mail

pytestmark = pytest.mark.slow
CUSTOMER = "can@example.net"
AGENT_ADDRESS = re.compile(r"destek\+a\.", re.IGNORECASE)


def _quoted(mail: Message) -> str:
    return "\n".join("> " + line for line in text_of(mail).splitlines())


# How mail clients write a reply the agent sent without typing anything: every attribution
# names the Reply-To, the agent address, as clients do.
EMPTY: dict[str, Callable[[Message], str]] = {
    "gmail-tr": lambda n: (
        f"1 Ara 2026 Sal, 11:46 tarihinde Destek <{n['Reply-To']}> şunu yazdı:\n{_quoted(n)}"
    ),
    "gmail-en": lambda n: (
        f"On Tue, 1 Dec 2026 at 11:46, Destek <{n['Reply-To']}> wrote:\n{_quoted(n)}"
    ),
    "apple-folded": lambda n: (
        f"On 1 Dec 2026, at 11:46, Destek\n<{n['Reply-To']}> wrote:\n\n{_quoted(n)}"
    ),
    "outlook": lambda n: (
        f"\n\n________________________________\nFrom: Destek <{n['Reply-To']}>\n"
        f"Sent: Tuesday, December 1, 2026 11:46\nTo: {AGENT}\nSubject: {n['Subject']}\n\n"
        + text_of(n)
    ),
    "signature-only": lambda n: f"\n-- \nAyşe Yılmaz\nDestek Ekibi\n\n{_quoted(n)}",
    "quote-only": lambda n: f"\n\n{_quoted(n)}",
}


def _reply(notification: Message, body: str) -> bytes:
    mail = EmailMessage()
    mail["From"] = f"Ayşe Yılmaz <{AGENT}>"
    mail["To"] = str(notification["Reply-To"])
    mail["Subject"] = f"Re: {notification['Subject']}"
    mail["In-Reply-To"] = str(notification["Message-ID"])
    mail["References"] = str(notification["Message-ID"])
    mail["Message-ID"] = make_msgid(domain="destek.example.com")
    mail.set_content(body)
    return mail.as_bytes(policy=SMTP_POLICY)


def _everything_customers_got(relay: Relay) -> str:
    """Headers, text and HTML of every mail to a customer, decoded."""
    parts = []
    for mail in relay.handler.messages():
        if str(mail["To"]).endswith("example.net>") or str(mail["To"]).endswith("example.net"):
            parts.append(str(mail))
            texts = [p for p in mail.walk() if p.get_content_maintype() == "text"]
            parts += [str(p.get_content()) for p in texts]  # type: ignore[attr-defined]
    return "\n".join(parts)


@pytest.fixture
def desk(tmp_path: Path, relay: Relay) -> Any:
    # Not about sender proof (tests/test_agents.py, tests/test_sender_auth.py).
    team = TEAM + "\n[agent_replies]\nrequire_authentication = false\n"
    daemon = DaemonProcess(daemon_config(tmp_path, relay.port, extra=team))
    daemon.start()
    yield daemon
    assert daemon.stop() == 0


def test_a_reply_with_nothing_of_its_own_goes_back_to_the_agent(
    desk: DaemonProcess, relay: Relay
) -> None:
    send(desk.port, customer_mail(sender=CUSTOMER, subject="Para çekme"), CUSTOMER, DESK)
    [notification] = wait_for_mail(relay, AGENT, 1, "(notification)")
    wait_for_mail(relay, CUSTOMER, 1, "(acknowledgement)")
    for count, (client, write) in enumerate(EMPTY.items(), start=2):
        send(desk.port, _reply(notification, write(notification)), AGENT, notification["Reply-To"])
        refusal = wait_for_mail(relay, AGENT, count, f"(refusal of the {client} reply)")[-1]
        assert "kendi metniniz yok" in text_of(refusal), (client, text_of(refusal))
        assert len(mails_to(relay, CUSTOMER)) == 1, client  # nothing relayed
    ref = desk.cli("tickets", "list", "--json")[0]["ref"]
    notes = [m["text"] for m in desk.cli("tickets", "show", ref, "--json")["messages"]]
    assert sum("no text of its own" in n for n in notes) == len(EMPTY)


def test_no_agent_address_reaches_a_customer(desk: DaemonProcess, relay: Relay) -> None:
    send(desk.port, customer_mail(sender=CUSTOMER, subject="Para çekme"), CUSTOMER, DESK)
    [notification] = wait_for_mail(relay, AGENT, 1, "(notification)")
    wait_for_mail(relay, CUSTOMER, 1, "(acknowledgement)")
    # The agent-bound mails: the notification, and a refusal (an unknown command).
    send(desk.port, _reply(notification, "#frobnicate"), AGENT, notification["Reply-To"])
    refusal = wait_for_mail(relay, AGENT, 2, "(refusal)")[-1]
    answers = 1
    for mail in (notification, refusal):
        attribution = f"On Tue, 1 Dec 2026 at 11:46, Destek <{mail['Reply-To']}> wrote:"
        forms = [
            f"Merhaba Can Bey,\nİnceliyoruz.\n\n{attribution}\n{_quoted(mail)}",  # top posting
            f"{attribution}\n{_quoted(mail)}\n\nMerhaba Can Bey,\nİnceliyoruz.",  # bottom
            f"Merhaba, yazdığınız adres: {mail['Reply-To']}\nİnceliyoruz.",  # in the text
        ]
        for body in forms:
            send(desk.port, _reply(notification, body), AGENT, notification["Reply-To"])
            answers += 1
            relayed = wait_for_mail(relay, CUSTOMER, answers, "(the relayed answer)")[-1]
            assert "İnceliyoruz." in text_of(relayed)
    got = _everything_customers_got(relay)
    assert "İnceliyoruz." in got and AGENT_ADDRESS.search(got) is None, got
