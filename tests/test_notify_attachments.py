"""Agents see what the customer sent (issue 15, point 10): the notification attaches the
customer's files up to `limits.notify_attachment_size` (5 MB by default), names the rest with
why, attaches identity documents only to identity agents (an access_audit row and a document
audit row for each one mailed), and never attaches refused files."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import SMTP, default
from pathlib import Path

import pytest
from sqlalchemy import select

from domain.clock import FixedClock
from domain.config import load_config
from outbound.addresses import reply_address
from outbound.agent_mail import MAILED_TO_AGENT, MAX_ATTACHED_FILES
from storage.models import AccessAudit, Ticket
from tests.helpers import DESK, write_config
from tests.test_kyc import JPEG, KYC_AGENT, OTHER_AGENT, PNG, TEAM, kyc_mail
from tests.test_sla_survey import outbox
from tests.test_threading import deliver
from ticketd.documents_admin import audit
from ticketd.state import State, open_state


@pytest.fixture
def desk(tmp_path: Path, clock: FixedClock) -> Iterator[State]:
    extra = TEAM + "\n[limits]\nnotify_attachment_size = 4000\n"
    opened = open_state(load_config(write_config(tmp_path, extra=extra)), clock=clock)
    yield opened
    opened.close()


@pytest.fixture
def default_desk(tmp_path: Path, clock: FixedClock) -> Iterator[State]:
    opened = open_state(load_config(write_config(tmp_path, extra=TEAM)), clock=clock)
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


def _mailed(state: State) -> list[AccessAudit]:
    with state.db.read() as session:
        rows = list(
            session.scalars(select(AccessAudit).where(AccessAudit.action == MAILED_TO_AGENT))
        )
        session.expunge_all()
        return rows


def test_identity_documents_go_to_identity_agents_only_each_audited(
    default_desk: State, clock: FixedClock
) -> None:
    desk = default_desk
    # Named kimlik.exe by the sender: attached under the name of the type found, kimlik.jpg.
    result = deliver(desk, kyc_mail([("kimlik.exe", "image/jpeg", JPEG)]))
    assert result.state == "done", result.detail
    [note] = [m for m in outbox(desk, "notify") if m.recipient == KYC_AGENT]
    assert _attached(note.raw) == ["kimlik.jpg"]
    [part] = [p for p in message_from_bytes(note.raw, policy=default).walk() if p.get_filename()]
    assert part.get_payload(decode=True) == JPEG
    [row] = _mailed(desk)
    assert row.actor == KYC_AGENT and row.customer == "ayse@musteri.com.tr"
    assert "kimlik.jpg" in str(row.detail) and "sha256 " in str(row.detail)
    assert [(a["actor"], a["action"]) for a in audit(desk.db)] == [(KYC_AGENT, "mailed")]
    # The ticket now assigned to an agent of another queue: they are told of the next
    # document by name only, and nothing of theirs is audited as mailed.
    with desk.db.transaction() as session:
        ticket = session.scalars(select(Ticket)).one()
        ticket.assignee, ref = OTHER_AGENT, ticket.ref
    clock.advance(timedelta(hours=1))
    address = reply_address(desk.config.desk, ref)
    raw = kyc_mail([("arka.png", "image/png", PNG)], subject="Ynt: Belgeler", to=address)
    assert deliver(desk, raw, (address,)).state == "done"
    [other] = [m for m in outbox(desk, "notify") if m.recipient == OTHER_AGENT]
    assert _attached(other.raw) == []
    assert "arka.png" in other.text
    assert "[eklenmedi: kimlik belgesi, yalnızca kimlik temsilcilerine]" in other.text
    [_, second] = [m for m in outbox(desk, "notify") if m.recipient == KYC_AGENT]
    assert _attached(second.raw) == ["arka.png"]
    assert [r.actor for r in _mailed(desk)] == [KYC_AGENT, KYC_AGENT]


def test_the_limit_holds_identity_documents_too(tmp_path: Path, clock: FixedClock) -> None:
    extra = TEAM + "\n[limits]\nnotify_attachment_size = 100\n"
    state = open_state(load_config(write_config(tmp_path, extra=extra)), clock=clock)
    try:
        assert deliver(state, kyc_mail([("kimlik.jpg", "image/jpeg", JPEG)])).state == "done"
        [note] = [m for m in outbox(state, "notify") if m.recipient == KYC_AGENT]
        assert _attached(note.raw) == []
        assert "[eklenmedi: boyut sınırı]" in note.text
        assert _mailed(state) == []
    finally:
        state.close()


def test_attaching_is_on_by_default_and_0_turns_it_off(tmp_path: Path, clock: FixedClock) -> None:
    for size, expected in (("", ["dekont.pdf"]), ("[limits]\nnotify_attachment_size = 0\n", [])):
        folder = tmp_path / ((size and "off") or "default")
        folder.mkdir()
        state = open_state(load_config(write_config(folder, extra=TEAM + size)), clock=clock)
        try:
            mail = EmailMessage()
            mail["From"], mail["To"], mail["Subject"] = "can@example.net", DESK, "Para çekme"
            mail.set_content("Dekont ekte.")
            mail.add_attachment(
                b"%PDF-1.4 x" * 100_000,
                maintype="application",
                subtype="pdf",
                filename="dekont.pdf",
            )
            assert deliver(state, mail.as_bytes(policy=SMTP)).state == "done"
            [note] = [m for m in outbox(state, "notify") if m.recipient == OTHER_AGENT]
            assert _attached(note.raw) == expected
            if not expected:
                assert "eklenmiyor (limits.notify_attachment_size)" in note.text
        finally:
            state.close()


def test_one_notification_carries_at_most_max_attached_files(default_desk: State) -> None:
    # A mail of many tiny files (a phone's photo dump, or an attack of thousands of parts) is
    # named file by file, but only the first MAX_ATTACHED_FILES ride along: each attached part
    # is held, encoded and stored in the outbox.
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "can@example.net", DESK, "Ekran görüntüleri"
    mail.set_content("Hata ekranlarının görüntüleri ekte.")
    count = MAX_ATTACHED_FILES + 5
    for n in range(count):
        mail.add_attachment(
            f"log {n}".encode(), maintype="text", subtype="plain", filename=f"log{n:02}.txt"
        )
    assert deliver(default_desk, mail.as_bytes(policy=SMTP)).state == "done"
    [note] = [m for m in outbox(default_desk, "notify") if m.recipient == OTHER_AGENT]
    assert _attached(note.raw) == [f"log{n:02}.txt" for n in range(MAX_ATTACHED_FILES)]
    assert note.text.count("[ekte]") == MAX_ATTACHED_FILES
    assert note.text.count("bir postanın taşıdığından fazla dosya") == 5
    assert f"log{count - 1:02}.txt" in note.text


def test_files_come_back_whole_from_the_parsing_process(default_desk: State) -> None:
    """The parsing process sends each file's bytes out of band, as a message of its own
    (ingest/isolation.py, issue 19): what the agent gets is byte for byte what was sent."""
    default_desk.isolate()
    payloads = {
        "dekont.pdf": b"%PDF-1.4 " + bytes(range(256)) * (3 * 1024 * 1024 // 256),
        "bos.txt": b"",
        "not.txt": "Kısa bir not.\n".encode(),
    }
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "can@example.net", DESK, "Dekont ve not"
    mail.set_content("Dekont ekte.")
    for name, payload in payloads.items():
        mail.add_attachment(payload, "application", "octet-stream", filename=name)
    assert deliver(default_desk, mail.as_bytes(policy=SMTP)).state == "done"
    [note] = [m for m in outbox(default_desk, "notify") if m.recipient == OTHER_AGENT]
    sent = message_from_bytes(note.raw, policy=default)
    attached = {
        str(part.get_filename()): part.get_payload(decode=True)
        for part in sent.walk()
        if part.get_filename()
    }
    assert attached["dekont.pdf"] == payloads["dekont.pdf"]
    assert attached["not.txt"] == payloads["not.txt"]
    assert "bos.txt" not in attached  # an empty file is named, not attached (as in process)


def _forward_of(files: list[tuple[str, str, bytes]]) -> bytes:
    """A customer's mail forwarding (as an attachment) a mail that carries `files`."""
    inner = message_from_bytes(kyc_mail(files, subject="Kimlik"), policy=default)
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "ayse@musteri.com.tr", DESK, "Kimlik belgelerim"
    mail.set_content("Kimlik belgem ekteki iletide.")
    mail.add_attachment(inner, filename="kimlik.eml")
    return mail.as_bytes(policy=SMTP)


def test_a_forward_holding_an_identity_document_goes_to_identity_agents_only(
    default_desk: State, clock: FixedClock
) -> None:
    # The forwarded mail holds the photo: attaching the .eml is attaching the document.
    desk = default_desk
    assert deliver(desk, _forward_of([("kimlik.jpg", "image/jpeg", JPEG)])).state == "done"
    with desk.db.transaction() as session:
        ticket = session.scalars(select(Ticket)).one()
        assert ticket.category == "kyc"
        ticket.assignee, ref = OTHER_AGENT, ticket.ref
    clock.advance(timedelta(hours=1))
    address = reply_address(desk.config.desk, ref)
    raw = _forward_of([("arka.jpg", "image/jpeg", JPEG)])
    raw = raw.replace(f"To: {DESK}".encode(), f"To: {address}".encode(), 1)
    assert deliver(desk, raw, (address,)).state == "done"
    [other] = [m for m in outbox(desk, "notify") if m.recipient == OTHER_AGENT]
    assert _attached(other.raw) == [] and JPEG not in other.raw
    assert "[eklenmedi: kimlik belgesi, yalnızca kimlik temsilcilerine]" in other.text
    mailed = [m for m in outbox(desk, "notify") if m.recipient == KYC_AGENT]
    assert mailed and all("kimlik.eml" in _attached(m.raw) for m in mailed)
    assert {r.actor for r in _mailed(desk)} == {KYC_AGENT}
