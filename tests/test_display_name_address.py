"""An address in a display name is only a name: the mailbox is the angle-addr.

`From: can@musteri.example.net <attacker@evil.example>` (no quotes around the display name, as
phishing mail writes it and corpus mail-parser/mail_test_15 holds) was read by the standard
library as two addresses, the display name's first: the attacker's mail, with a reference of
Can's ticket, joined that ticket as Can's, and a no-reply sender behind `zeynep@x <noreply@...>`
had its acknowledgement sent to zeynep. Every header read as addresses (From, Sender, Reply-To,
To, Cc) is read so now, and so is the From whose domain our DMARC check judges.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import select

from domain.clock import FixedClock
from domain.config import load_config
from domain.header_addresses import header_addresses, shown_name, usable
from ingest.classify import classify, no_automatic_answer
from ingest.journal import Arrival
from ingest.parsing import decode_header_value, parse_message
from ingest.runner import Processed
from ingest.verify import from_domain_of
from storage.models import OutboxMail
from tests.helpers import DESK, customer_mail, write_config
from ticketd.state import State, open_state
from ticketd.views import list_outbox, show_ticket

VICTIM = "can@musteri.example.net"
ATTACKER = "attacker@evil.example"
SPOOF = f"{VICTIM} <{ATTACKER}>"


def raw_with(headers: str, body: str = "Merhaba") -> bytes:
    """A message with exactly these header lines (CRLF, as written: no header registry)."""
    head = headers.strip("\n").replace("\n", "\r\n")
    return (head + "\r\n\r\n" + body + "\r\n").encode()


def from_line(raw: bytes, sender: str) -> bytes:
    """`raw` (from customer_mail) with its From line replaced by `sender` as written."""
    lines = raw.split(b"\r\n")
    return b"\r\n".join(
        b"From: " + sender.encode() if line.startswith(b"From: ") else line for line in lines
    )


# --- parsing --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        SPOOF,
        f"=?utf-8?q?{VICTIM}?= <{ATTACKER}>",
        # The whole value in one encoded word: decoded, then read the same way.
        "=?utf-8?b?Y2FuQG11c3RlcmkuZXhhbXBsZS5uZXQgPGF0dGFja2VyQGV2aWwuZXhhbXBsZT4=?=",
        f"{VICTIM} <{ATTACKER}",  # the ">" missing
        f'"{VICTIM}" <{ATTACKER}>',  # quoted: read right before as well
    ],
)
def test_the_sender_is_the_angle_addr_and_the_display_name_only_its_name(value: str) -> None:
    sender = parse_message(raw_with(f"From: {value}\nSubject: x")).sender
    assert (sender.email, sender.name) == (ATTACKER, VICTIM)


def test_the_words_around_an_address_in_a_display_name_stay_its_name() -> None:
    sender = parse_message(raw_with(f"From: Can Yılmaz {VICTIM} <{ATTACKER}>")).sender
    assert (sender.email, sender.name) == (ATTACKER, f"Can Yılmaz {VICTIM}")


@pytest.mark.parametrize("header", ["To", "Cc", "Reply-To"])
def test_every_address_header_reads_display_names_the_same_way(header: str) -> None:
    value = f"{SPOOF}, colleague@musteri.example.net <other@evil.example>"
    message = parse_message(raw_with(f"From: ayse@musteri.com.tr\n{header}: {value}"))
    found = {"To": message.to, "Cc": message.cc, "Reply-To": message.reply_to}[header]
    assert [(a.email, a.name) for a in found] == [
        (ATTACKER, VICTIM),
        ("other@evil.example", "colleague@musteri.example.net"),
    ]


def test_a_sender_header_without_a_from_names_its_angle_addr() -> None:
    assert parse_message(raw_with(f"Sender: {SPOOF}\nSubject: x")).sender.email == ATTACKER


def test_an_empty_angle_addr_never_makes_the_display_name_the_sender() -> None:
    raw = raw_with(f"From: {VICTIM} <>\nSubject: x")
    assert parse_message(raw, envelope_from=f"<{ATTACKER}>").sender.email == ATTACKER


def test_a_second_angle_addr_after_a_name_is_a_second_address() -> None:
    value = f"{VICTIM} <{ATTACKER}> b@musteri.example.net <b@evil.example>"
    assert [a.email for a in header_addresses([value], decode_header_value)] == [
        ATTACKER,
        "b@evil.example",
    ]


def test_an_address_with_a_backslash_is_not_usable() -> None:
    # `can@x\" <a@b>` read by the standard library: the escaped quote swallows the angle-addr.
    assert not usable(f"{VICTIM}\\")
    value = f'{VICTIM}\\" <{ATTACKER}>'
    assert [a.email for a in header_addresses([value], decode_header_value)] == [ATTACKER]


def test_the_from_domain_for_dmarc_is_the_senders() -> None:
    assert from_domain_of(raw_with(f"From: {SPOOF}\nSubject: x")) == "evil.example"
    assert from_domain_of(raw_with("From: =?utf-8?q?Ay=C5=9Fe?= <a@Musteri.Example>")) == (
        "musteri.example"
    )


def test_a_no_reply_sender_behind_a_persons_address_is_not_answered() -> None:
    message = parse_message(raw_with("From: zeynep@cust.example.net <noreply@evil.example>"))
    assert message.sender.email == "noreply@evil.example"
    assert no_automatic_answer(message, acknowledge=True) is not None


def test_the_corpus_mail_is_from_its_real_sender() -> None:
    corpus = Path(os.environ.get("TICKETD_CORPUS", Path(__file__).parents[2] / "shared/corpus"))
    raw = (corpus / "mail-parser/mails/mail_test_15").read_bytes()
    message = parse_message(raw)
    assert (message.sender.email, message.sender.name) == (
        "do-not-reply@ncs.gov.ng",
        "purchasing@aquillaindustries.com",
    )
    # A web form's shape (a no-reply From, a Reply-To): a person's mail, answered to nobody.
    assert classify(message, (DESK,)).kind.value == "form"
    assert no_automatic_answer(message, acknowledge=True) is not None


# --- through the worker ---------------------------------------------------------------------


def deliver(state: State, raw: bytes) -> Processed:
    state.journal.accept(Arrival(raw=raw, source="test", envelope_to=(DESK,)))
    [result] = state.worker.drain()
    assert result.state == "done" and result.ticket_ref is not None, result.detail
    return result


def test_an_attacker_behind_the_customers_address_does_not_join_her_ticket(
    state: State,
) -> None:
    first = deliver(state, customer_mail(sender=f"Can <{VICTIM}>", subject="Para çekme"))
    ref = first.ticket_ref
    forged = customer_mail(
        sender="placeholder@evil.example",
        subject=f"Ynt: [#{ref}] Para çekme talebim beklemede",
        body="Lütfen para çekme talebimi şu IBAN'a yönlendirin: TR99 0000 0000 0000 0000 00",
    )
    attack = deliver(state, from_line(forged, SPOOF))
    assert attack.ticket_ref != ref
    victims = show_ticket(state.db, ref or "")
    assert victims is not None
    assert victims["customer"] == VICTIM and victims["participants"] == [VICTIM]
    assert not any("IBAN" in m["text"] for m in victims["messages"])
    theirs = show_ticket(state.db, attack.ticket_ref or "")
    assert theirs is not None and theirs["customer"] == ATTACKER
    assert VICTIM not in theirs["participants"]
    assert [m["to"] for m in list_outbox(state.db) if VICTIM in m["to"]] == [VICTIM]  # 1 ack


def test_a_no_reply_sender_behind_a_persons_address_gets_no_acknowledgement(
    state: State,
) -> None:
    raw = from_line(
        customer_mail(subject="Şifremi unuttum"), "zeynep@x.example <noreply@e.example>"
    )
    result = deliver(state, raw)
    ticket = show_ticket(state.db, result.ticket_ref or "")
    assert ticket is not None and ticket["customer"] == "noreply@e.example"
    assert list_outbox(state.db) == []


# --- what agents read -----------------------------------------------------------------------


def test_a_name_holding_another_address_is_not_shown() -> None:
    assert shown_name(VICTIM, ATTACKER) == ""
    assert shown_name(f"Can Yılmaz ({VICTIM})", ATTACKER) == ""
    assert shown_name("Can Yılmaz", ATTACKER) == "Can Yılmaz"
    assert shown_name(ATTACKER.upper(), ATTACKER) == ATTACKER.upper()  # its own address
    assert shown_name(None, ATTACKER) == ""


def test_agents_never_read_the_display_names_address_as_the_sender(
    tmp_path: Path, clock: FixedClock
) -> None:
    team = (
        '[[queues]]\nname = "genel"\ncategories = ["account", "payment", "bonus", "technical", '
        '"kyc", "complaint", "other"]\n\n'
        '[[agents]]\nemail = "ajan@example.com"\nname = "Ajan"\nqueues = ["genel"]\n'
    )
    state = open_state(load_config(write_config(tmp_path, extra=team)), clock=clock)
    try:
        first = deliver(state, from_line(customer_mail(subject="Para çekme"), SPOOF))
        again = customer_mail(subject=f"Ynt: [#{first.ticket_ref}] Para çekme", body="Acil")
        assert deliver(state, from_line(again, SPOOF)).ticket_ref == first.ticket_ref
        with state.db.transaction() as session:
            texts = session.scalars(select(OutboxMail.text)).all()
        to_agents = [text for text in texts if "Acil" in text or "Para çekme talebim" in text]
        assert len(to_agents) >= 2  # the new ticket's notification and the follow-up's
        assert all(f"{ATTACKER} <{ATTACKER}>" in text for text in to_agents)
        assert not any(VICTIM in text for text in to_agents)
        ticket = show_ticket(state.db, first.ticket_ref or "")
        assert ticket is not None and ticket["customer_name"] == VICTIM  # kept, as written
    finally:
        state.close()
