"""Issue 22, files: a document is what its whole structure is, not its first bytes; it is stored
and exported under the extension of the type found; one mail or one customer cannot bring
thousands of them; an export never writes through a symbolic link.

Mail goes through the journal and the worker as in the daemon; exports through the CLI.
"""

from __future__ import annotations

import io
import os
import stat
import time
from datetime import timedelta
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

from PIL import Image
from sqlalchemy import select

from domain.clock import FixedClock
from ingest.document_structure import PdfBudget
from storage.models import Document, OutboxMail, TicketMessage
from tests.helpers import DESK
from tests.test_kyc import CUSTOMER, JPEG, KYC_AGENT, PDF, _ref, kyc_mail
from tests.test_threading import deliver
from ticketd.cli import main
from ticketd.state import State

HTML = b"<html><script>new ActiveXObject('WScript.Shell').Run('calc')</script></html>"
FAKE_PDF = b"%PDF-1.4\n" + HTML + b"\n%%EOF\n"


def _documents(state: State) -> list[Document]:
    with state.db.read() as session:
        rows = list(session.scalars(select(Document).order_by(Document.id)))
        session.expunge_all()
        return rows


def _outbox(state: State) -> list[OutboxMail]:
    with state.db.read() as session:
        rows = list(session.scalars(select(OutboxMail).order_by(OutboxMail.id)))
        session.expunge_all()
        return rows


def _notes(state: State) -> list[str]:
    with state.db.read() as session:
        query = select(TicketMessage.text).where(TicketMessage.kind == "system")
        return list(session.scalars(query))


def test_a_script_behind_a_pdf_header_is_refused_and_names_follow_the_type_found(
    kyc_state: State, clock: FixedClock, tmp_path: Path
) -> None:
    truncated = JPEG[: len(JPEG) // 2]
    files = [
        ("kimlik.hta", "application/pdf", FAKE_PDF),
        ("kimlik.bat", "application/pdf", FAKE_PDF + b"\n"),
        ("on yuz.jpg", "image/jpeg", truncated),
        ("pasaport.hta", "application/octet-stream", PDF),  # a real PDF, a hostile name
        ("arka yuz.exe", "image/jpeg", JPEG),
    ]
    result = deliver(kyc_state, kyc_mail(files))
    assert "2 stored, 3 refused" in result.detail, result.detail
    assert [(d.filename, d.detected_type) for d in _documents(kyc_state)] == [
        ("pasaport.pdf", "pdf"),
        ("arka yuz.jpg", "jpeg"),
    ]
    [note] = [n for n in _notes(kyc_state) if "broken_" in n]
    assert note.count("broken_pdf") == 2 and "broken_image" in note
    [receipt] = [m for m in _outbox(kyc_state) if m.kind == "kyc_refused"]
    assert "pasaport.pdf" in receipt.text and "PDF bozuk veya eksik" in receipt.text
    assert "fotoğraf bozuk veya eksik" in receipt.text

    # Exported under the type found, whatever the sender called it.
    out = tmp_path / "out"
    config = ["--config", str(kyc_state.config.path)]
    ref = _ref(result.detail)
    assert main([*config, "kyc", "export", ref, "--to", str(out), "--agent", KYC_AGENT]) == 0
    assert sorted(p.name.split("-", 1)[1] for p in out.iterdir()) == [
        "arka yuz.jpg",
        "pasaport.pdf",
    ]


def _many(count: int) -> bytes:
    """One mail carrying `count` tiny but real PNG "documents"."""
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (1, 2, 3)).save(buffer, "PNG")
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = CUSTOMER, DESK, "Kimlik belgelerim"
    mail.set_content("Belgelerim ekte.")
    for number in range(count):
        png = buffer.getvalue() + number.to_bytes(4, "big")  # each file different
        mail.add_attachment(png, maintype="image", subtype="png", filename=f"belge{number}.png")
    return mail.as_bytes(policy=SMTP)


def test_documents_per_message_and_per_day_are_limited_and_said_once(
    kyc_state: State, clock: FixedClock
) -> None:
    first = deliver(kyc_state, _many(3000))
    assert "10 stored, 0 refused, 2990 over the limit" in first.detail, first.detail
    assert len(_documents(kyc_state)) == 10
    [mail] = [m for m in _outbox(kyc_state) if m.kind == "kyc_refused"]
    assert len(mail.raw) < 20_000
    assert "2990 dosyayı daha almadık" in mail.text and "bir mesajda en fazla 10" in mail.text
    assert any("kyc.max_documents_per_message = 10" in n for n in _notes(kyc_state))

    # Two more messages fill the day (30); the fourth gets one mail about the daily limit, the
    # fifth none.
    for _ in range(2):
        clock.advance(timedelta(minutes=10))
        assert "10 stored" in deliver(kyc_state, _many(12)).detail
    clock.advance(timedelta(minutes=10))
    fourth = deliver(kyc_state, _many(5))
    assert "0 stored, 0 refused, 5 over the limit, reply sent" in fourth.detail, fourth.detail
    told = [m for m in _outbox(kyc_state) if "günde en fazla 30" in m.text]
    assert len(told) == 1
    clock.advance(timedelta(minutes=10))
    fifth = deliver(kyc_state, _many(5))
    assert "told before: not answered" in fifth.detail, fifth.detail
    assert len(_documents(kyc_state)) == 30
    # A day later there is room again.
    clock.advance(timedelta(days=1))
    assert "2 stored" in deliver(kyc_state, _many(2)).detail


def test_kyc_export_never_writes_through_a_symbolic_link(
    kyc_state: State, clock: FixedClock, tmp_path: Path
) -> None:
    result = deliver(kyc_state, kyc_mail([("kimlik.jpg", "image/jpeg", JPEG)]))
    ref = _ref(result.detail)
    [document] = _documents(kyc_state)
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("root's file\n")
    (out / f"{document.id}-kimlik.jpg").symlink_to(victim)
    config = ["--config", str(kyc_state.config.path)]
    export = [*config, "kyc", "export", ref, "--to", str(out), "--agent", KYC_AGENT]
    assert main(export) == 1
    assert victim.read_text() == "root's file\n"
    # A file left there by someone with mode 0644 is rewritten 0600.
    (out / f"{document.id}-kimlik.jpg").unlink()
    left = out / f"{document.id}-kimlik.jpg"
    left.write_bytes(b"x" * 100_000)
    os.chmod(left, 0o644)
    assert main(export) == 0
    assert left.read_bytes() == JPEG and stat.S_IMODE(left.stat().st_mode) == 0o600
    # A symbolic link as the folder itself is refused too.
    (tmp_path / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    linked = [*config, "kyc", "export", ref, "--to", str(tmp_path / "linked"), "--agent", KYC_AGENT]
    assert main(linked) == 1
    assert not (tmp_path / "elsewhere").exists()


def test_the_pdfs_of_one_message_share_one_time_limit() -> None:
    """A PDF whose broken table pypdf would repair for seconds (megabytes of whitespace) is cut
    at the limit in its child process; the PDFs after it in the message are not read at all."""
    slow = b"%PDF-1.4\n" + b" " * 8_000_000 + b"\nstartxref\n9\n%%EOF\n"
    budget = PdfBudget(1.0)
    started = time.monotonic()
    first = budget.check(slow)
    assert first is not None and "within" in first
    assert budget.check(PDF) == "not read: this message's 10 s for reading PDFs were used up"
    assert time.monotonic() - started < 5
    assert PdfBudget().check(PDF) is None
