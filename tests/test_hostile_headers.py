"""Issue 10, injection, at the unit level: every character some reader takes for a line break
is kept out of the headers ticketd writes, and parsing never hands on an address or a
Message-ID that holds one (the end-to-end proof is in test_hostile_injection.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default

import pytest

from domain.templating import RenderedMail
from ingest.parsing import parse_message
from outbound.compose import Envelope, build_mail

BREAKS = ["\r\n", "\n", "\r", "\x00", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028"]


@pytest.mark.parametrize("brk", BREAKS, ids=[f"U+{ord(b[0]):04X}" for b in BREAKS])
def test_build_mail_writes_no_header_from_a_line_break(brk: str) -> None:
    evil = f"Ayşe{brk}Bcc: evil@attacker.example{brk}X-Evil: 1"
    envelope = Envelope(
        sender_name="Destek",
        sender="destek@example.com",
        to_name=evil,
        to="ayse@musteri.com.tr",
        message_id="ticketd.ABC.1@example.com",
        in_reply_to=f"id{brk}Bcc: evil@attacker.example",
        references=(f"r{brk}Cc: evil@attacker.example", "ok@musteri.com.tr"),
        date=datetime(2026, 11, 23, 9, 0, tzinfo=UTC),
        auto_submitted="auto-replied",
        ref="ABC",
    )
    raw = build_mail(envelope, RenderedMail(subject=evil, text="x", html="<p>x</p>"))
    head = raw.split(b"\r\n\r\n", 1)[0]
    names = [line.split(b":")[0].lower() for line in head.split(b"\r\n") if line[:1] not in b" \t"]
    assert b"bcc" not in names and b"cc" not in names and b"x-evil" not in names
    assert b"\x00" not in head
    mail = message_from_bytes(raw, policy=default)
    assert mail.get_all("To") is not None and len(mail.get_all("To", [])) == 1
    assert mail["To"].addresses[0].addr_spec == "ayse@musteri.com.tr"
    assert "In-Reply-To" not in mail  # a Message-ID with a break in it is left out
    assert str(mail["References"]) == "<ok@musteri.com.tr>"


def test_parsing_drops_addresses_and_ids_with_control_characters() -> None:
    raw = (
        b'From: "A" <a\x00b@musteri.com.tr>\r\nCc: <c\x0bd@musteri.com.tr>, ok@musteri.com.tr\r\n'
        b"Message-ID: <m\x0bBcc:evil@attacker.example>\r\n"
        b"References: <r\x01@x.example> <fine@x.example>\r\nSubject: s\r\n\r\nbody\r\n"
    )
    parsed = parse_message(raw)
    assert parsed.sender.email == ""
    assert [a.email for a in parsed.cc] == ["ok@musteri.com.tr"]
    assert parsed.message_id is None
    assert parsed.references == ("fine@x.example",)


def test_encoded_crlf_in_subject_and_name_is_flattened_by_parsing() -> None:
    raw = (
        b"From: =?utf-8?q?Ay=C5=9Fe=0D=0ABcc=3A_evil=40attacker.example?= <a@musteri.com.tr>\r\n"
        b"Subject: =?utf-8?q?Merhaba=0D=0ABcc=3A_evil=40attacker.example?=\r\n\r\nbody\r\n"
    )
    parsed = parse_message(raw)
    assert parsed.sender.email == "a@musteri.com.tr"
    assert "\r" not in parsed.sender.name + parsed.subject
    assert "\n" not in parsed.sender.name + parsed.subject


@pytest.mark.parametrize(
    "subject",
    [
        "=?UTF-8?B?44G+4$G/44KA44KB44KC?=",  # a broken word (found by fuzz/atheris_pipeline.py)
        "Kod: =?utf-8?q?=C3=BC?= yazıyor",  # a word the sender wrote literally
    ],
)
def test_encoded_word_text_left_after_parsing_is_written_as_text(subject: str) -> None:
    raw = f"From: a@musteri.com.tr\r\nSubject: {subject}\r\n\r\nbody\r\n".encode()
    parsed = parse_message(raw)
    envelope = Envelope(
        sender_name="Destek",
        sender="destek@example.com",
        to_name=parsed.subject,
        to="a@musteri.com.tr",
        message_id="ticketd.ABC.1@example.com",
        in_reply_to=None,
        references=(),
        date=datetime(2026, 11, 23, 9, 0, tzinfo=UTC),
        auto_submitted="auto-replied",
        ref="ABC",
    )
    raw_out = build_mail(envelope, RenderedMail(subject=f"Re: {parsed.subject}", text="x", html=""))
    mail = message_from_bytes(raw_out, policy=default)
    # Not decoded again by the email package (it raised on the broken one): the text is kept.
    assert str(mail["Subject"]).replace("= ?", "=?") == f"Re: {parsed.subject}"
