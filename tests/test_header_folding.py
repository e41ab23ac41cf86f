"""Long Turkish subjects keep every space (domain/header_folding.py): policy.SMTP left the space
at a fold between two encoded-words, where RFC 2047 has readers drop it, and "Çekim " * 30
came back with "ÇekimÇekim" in places, in our acknowledgements and in tickets the API opened."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import SMTP, default

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.templating import RenderedMail
from ingest.parsing import parse_message
from outbound.compose import Envelope, build_mail

ENVELOPE = Envelope(
    sender_name="Destek",
    sender="destek@example.com",
    to_name="Ayşe Yılmaz",
    to="ayse@musteri.com.tr",
    message_id="ticketd.ABC.1@example.com",
    in_reply_to=None,
    references=(),
    date=datetime(2026, 11, 23, 9, 0, tzinfo=UTC),
    auto_submitted="auto-replied",
    ref="ABC",
)

WORDS = ["Çekim", "talebim", "hâlâ", "şikâyet", "İade", "ödeme", "[#7KQM-X3P9]", "Re:", "a", "ğ,"]


def _sent(subject: str) -> bytes:
    return build_mail(ENVELOPE, RenderedMail(subject=subject, text="x", html="<p>x</p>"))


def _read_back(raw: bytes) -> tuple[str, str]:
    return parse_message(raw).subject, str(message_from_bytes(raw, policy=default)["Subject"])


@pytest.mark.parametrize(
    "subject",
    [
        " ".join(["Çekim"] * 30),
        "Re: [#7KQM-X3P9] " + "Şikâyetim hâlâ çözülmedi, lütfen yardımcı olun " * 3,
        "a" * 200 + " ş",
        "Çekim\ttalebim " * 12,
    ],
)
def test_a_long_turkish_subject_reads_back_whole(subject: str) -> None:
    raw = _sent(subject)
    written = " ".join(subject.split())  # our mail's headers have single spaces (compose._clean)
    assert _read_back(raw) == (written, written)
    assert max(len(line) for line in raw.split(b"\r\n")) <= 78


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(WORDS), min_size=1, max_size=60))
def test_any_subject_of_words_reads_back_whole(words: list[str]) -> None:
    subject = " ".join(words)
    assert _read_back(_sent(subject)) == (subject, subject)


def test_an_ascii_subject_is_folded_as_before() -> None:
    subject = "Your request about the refund of order 12345 " * 4
    mail = _sent(subject.strip())
    head = mail.split(b"\r\n\r\n")[0]
    from email.message import EmailMessage

    plain = EmailMessage(policy=SMTP)
    plain["Subject"] = subject.strip()
    assert plain.as_bytes().split(b"\r\n\r\n")[0] in head
