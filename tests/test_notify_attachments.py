"""Agents see what the customer sent (issue 15, point 10, the part done): the notification
attaches the customer's files up to `limits.notify_attachment_size`, names the rest with why,
and never attaches identity documents (they stay sealed: `kyc export`) or refused files."""

from __future__ import annotations

from collections.abc import Iterator
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import SMTP, default
from pathlib import Path

import pytest

from domain.clock import FixedClock
from domain.config import load_config
from tests.helpers import DESK, write_config
from tests.test_kyc import JPEG, KYC_AGENT, OTHER_AGENT, TEAM, kyc_mail
from tests.test_sla_survey import outbox
from tests.test_threading import deliver
from ticketd.state import State, open_state


@pytest.fixture
def desk(tmp_path: Path, clock: FixedClock) -> Iterator[State]:
    extra = TEAM + "\n[limits]\nnotify_attachment_size = 4000\n"
    opened = open_state(load_config(write_config(tmp_path, extra=extra)), clock=clock)
    yield opened
    opened.close()


def _attached(raw: bytes) -> list[str]:
    mail = message_from_bytes(raw, policy=default)
    return [str(p.get_filename()) for p in mail.walk() if p.get_filename()]


def test_the_customers_files_are_attached_within_the_limit(desk: State) -> None:
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "can@example.net", DESK, "Para çekme dekontu"
    mail.set_content("Para çekme talebim için dekont ekte.")
    mail.add_attachment(
        b"%PDF-1.4 dekont" + b" " * 1000,
        maintype="application",
        subtype="pdf",
        filename="dekont.pdf",
    )
    mail.add_attachment(
        b"x" * 5000, maintype="application", subtype="octet-stream", filename="ekstre.bin"
    )
    assert deliver(desk, mail.as_bytes(policy=SMTP)).state == "done"
    [note] = [m for m in outbox(desk, "notify") if m.recipient == OTHER_AGENT]
    assert _attached(note.raw) == ["dekont.pdf"]
    assert "dekont.pdf (bildirilen application/pdf, 1015 bayt) [ekte]" in note.text
    assert "ekstre.bin" in note.text and "[eklenmedi: boyut sınırı]" in note.text


def test_identity_documents_are_named_not_attached(desk: State) -> None:
    assert deliver(desk, kyc_mail([("kimlik.jpg", "image/jpeg", JPEG)])).state == "done"
    [note] = [m for m in outbox(desk, "notify") if m.recipient == KYC_AGENT]
    assert _attached(note.raw) == []
    assert "kimlik.jpg" in note.text and "kimlik belgesi: ticketd kyc export" in note.text


def test_attaching_is_off_by_default(tmp_path: Path, clock: FixedClock) -> None:
    state = open_state(load_config(write_config(tmp_path, extra=TEAM)), clock=clock)
    try:
        mail = EmailMessage()
        mail["From"], mail["To"], mail["Subject"] = "can@example.net", DESK, "Para çekme"
        mail.set_content("Dekont ekte.")
        mail.add_attachment(
            b"%PDF-1.4 x", maintype="application", subtype="pdf", filename="dekont.pdf"
        )
        assert deliver(state, mail.as_bytes(policy=SMTP)).state == "done"
        [note] = [m for m in outbox(state, "notify") if m.recipient == OTHER_AGENT]
        assert _attached(note.raw) == []
        assert "eklenmiyor (limits.notify_attachment_size)" in note.text
    finally:
        state.close()
