"""Identity documents (issue 6): intake by real type, encryption at rest, review, export, purge.

The files are made here: a JPEG (Pillow), a PNG built byte by byte (with zlib), a one-page PDF,
one carrying /Encrypt, an ELF executable named .jpg and a zip. Each mail goes through the
journal and the worker, as in the daemon, with a clock the test moves.
"""

from __future__ import annotations

import io
import stat
import struct
import zipfile
import zlib
from datetime import timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import make_msgid
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select

from domain.clock import FixedClock
from ingest.agent_commands import parse_commands
from outbound.addresses import agent_reply_address
from outbound.quoting import quoted_filename
from storage.documents import DocumentIntegrityError, DocumentStore
from storage.models import Document, DocumentAccess, OutboxMail
from tests.helpers import DESK, make_config
from tests.test_threading import deliver
from ticketd.documents_admin import audit, export_documents, list_documents, purge
from ticketd.state import State, open_state

CUSTOMER = "Ayşe Yılmaz <ayse@musteri.com.tr>"
KYC_AGENT = "zeynep@destek.example.com"
OTHER_AGENT = "mert@destek.example.com"
TEAM = f"""
[[queues]]
name = "kimlik"
categories = ["kyc"]

[[queues]]
name = "genel"
categories = ["other", "account", "payment", "bonus", "technical", "complaint"]

[[agents]]
email = "{KYC_AGENT}"
name = "Zeynep Kaya"
queues = ["kimlik"]

[[agents]]
email = "{OTHER_AGENT}"
name = "Mert Demir"
queues = ["genel"]

[agent_replies]
# Not about sender proof (tests/test_agents.py, tests/test_sender_auth.py): mail comes
# with no verdict at all, as through a server nobody verifies at.
require_authentication = false
"""


def _png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)  # 2x2, 8-bit RGB
    pixels = zlib.compress(b"".join(b"\x00" + b"\xff\x00\x00" * 2 for _ in range(2)))
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def _jpeg() -> bytes:
    """A real JPEG (it decodes whole) the size of a phone's ID photo after downscaling, never
    taken for a signature icon; its comment segment is a marker tests look for."""
    buffer = io.BytesIO()
    Image.new("RGB", (640, 400), (200, 30, 30)).save(
        buffer, "JPEG", quality=90, comment=b"KIMLIK-ON-YUZ-" * 40
    )
    return buffer.getvalue()


def _pdf(comment: bytes) -> bytes:
    """A one-page PDF with a correct cross-reference table, as pypdf reads it strictly."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>",
    ]
    out = b"%PDF-1.4\n" + comment + b"\n"
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj " % number + body + b" endobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer << /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return out


JPEG = _jpeg()
PNG = _png()
PDF = _pdf(b"% FATURA ADRES BELGESI Bagcilar Istanbul")
ENCRYPTED_PDF = PDF.replace(b"trailer << ", b"trailer << /Encrypt 3 0 R ")
ELF = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + b"\x02\x00\x3e\x00" + b"\x00" * 100


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("kimlik.jpg", JPEG)
    return buffer.getvalue()


def kyc_mail(
    files: list[tuple[str, str, bytes]],
    subject: str = "Kimlik belgelerim",
    body: str = "Kimlik doğrulaması için belgelerim ekte.",
    to: str = DESK,
) -> bytes:
    mail = EmailMessage()
    mail["From"] = CUSTOMER
    mail["To"] = to
    mail["Subject"] = subject
    mail.set_content(body)
    for filename, content_type, payload in files:
        maintype, _, subtype = content_type.partition("/")
        mail.add_attachment(payload, maintype=maintype, subtype=subtype, filename=filename)
    return mail.as_bytes(policy=SMTP)


def _outbox(state: State, kind: str) -> list[OutboxMail]:
    with state.db.read() as session:
        rows = list(session.scalars(select(OutboxMail).where(OutboxMail.kind == kind)))
        session.expunge_all()  # read after the transaction ends
        return rows


def _documents(state: State) -> list[Document]:
    with state.db.read() as session:
        documents = list(session.scalars(select(Document).order_by(Document.id)))
        session.expunge_all()  # read after the transaction ends
        return documents


def _ref(detail: str) -> str:
    return detail.split()[1].rstrip(":")


def test_the_receipt_names_each_file_as_the_customer_did(kyc_state: State) -> None:
    """An extension that is one of the detected type's (`.jpeg`, `.JPG`, `.tiff`) is the
    customer's own and stays, in the receipt and the stored name; one that is not (`.png`
    holding a JPEG) becomes the type's."""
    tiff = io.BytesIO()
    Image.new("RGB", (4, 4), (1, 2, 3)).save(tiff, "TIFF")
    files = [
        ("IMG_0042.jpeg", "image/jpeg", JPEG),
        ("arka yüz.JPG", "image/jpeg", JPEG + b"\0"),
        ("tarama.tiff", "image/tiff", tiff.getvalue()),
        ("selfie.png", "image/png", JPEG + b"\0\0"),
    ]
    result = deliver(kyc_state, kyc_mail(files))
    assert "documents: 4 stored, 0 refused" in result.detail, result.detail
    names = ["IMG_0042.jpeg", "arka yüz.JPG", "tarama.tiff", "selfie.jpg"]
    assert [d.filename for d in _documents(kyc_state)] == names
    [receipt] = _outbox(kyc_state, "kyc_received")
    listed = [line[2:] for line in receipt.text.splitlines() if line.startswith("- ")]
    assert listed == [quoted_filename(name) for name in names], receipt.text


def test_accepted_documents_are_stored_encrypted_and_acknowledged(
    kyc_state: State, tmp_path: Path
) -> None:
    files = [
        ("kimlik ön yüz.jpg", "image/jpeg", JPEG),
        ("../../etc/passwd.png", "image/png", PNG),
        ("fatura.pdf", "application/pdf", PDF),
    ]
    result = deliver(kyc_state, kyc_mail(files))
    assert result.state == "done", result.detail
    assert "acknowledged by the document receipt" in result.detail
    assert "documents: 3 stored, 0 refused" in result.detail
    documents = _documents(kyc_state)
    assert [d.detected_type for d in documents] == ["jpeg", "png", "pdf"]
    assert [d.state for d in documents] == ["received"] * 3
    assert documents[1].filename == "passwd.png"  # the sender's path never survives
    [receipt] = _outbox(kyc_state, "kyc_received")
    assert "kimlik ön yüz.jpg" in receipt.text and _ref(result.detail) in receipt.subject
    assert _outbox(kyc_state, "ack") == []  # the receipt is the acknowledgement

    # Promise 6: no blob on disk holds a document in clear, and none is named after a file.
    blob_files = [p for p in (tmp_path / "var" / "blobs").rglob("*") if p.is_file()]
    document_blobs = {d.blob_key for d in documents}
    assert document_blobs <= {p.name for p in blob_files}
    # Every blob, the journal's raw message included (sealed too, see test_sealed_journal.py).
    for path in blob_files:
        content = path.read_bytes()
        for _name, _type, payload in files:
            assert payload not in content
            assert payload[:16] not in content and payload[-32:] not in content
        assert b"KIMLIK-ON-YUZ" not in content and b"FATURA ADRES" not in content
    key = tmp_path / "var" / "kyc.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and len(key.read_bytes()) == 32


def test_documents_from_a_sender_asking_for_no_automatic_answer_are_kept_unanswered(
    kyc_state: State,
) -> None:
    raw = kyc_mail([("kimlik.jpg", "image/jpeg", JPEG)])
    raw = b"X-Auto-Response-Suppress: All\r\n" + raw
    result = deliver(kyc_state, raw)
    assert result.state == "done", result.detail
    assert "documents: 1 stored, 0 refused" in result.detail
    assert "X-Auto-Response-Suppress: not answered" in result.detail
    assert [d.detected_type for d in _documents(kyc_state)] == ["jpeg"]
    assert _outbox(kyc_state, "kyc_received") == [] and _outbox(kyc_state, "ack") == []


@pytest.mark.parametrize(
    ("filename", "content_type", "payload", "reason_en"),
    [
        ("pasaport.jpg", "image/jpeg", ELF, "this kind of file is not accepted"),
        ("belgeler.zip", "application/zip", _zip(), "this kind of file is not accepted"),
        ("ekstre.pdf", "application/pdf", ENCRYPTED_PDF, "password-protected"),
        ("yarim.pdf", "application/pdf", PDF[:-7], "damaged or incomplete"),
        ("notlar.txt", "text/plain", b"just words", "could not recognise"),
    ],
)
def test_refused_files_are_named_in_the_reply_and_noted(
    tmp_path: Path,
    clock: FixedClock,
    filename: str,
    content_type: str,
    payload: bytes,
    reason_en: str,
) -> None:
    state = open_state(make_config(tmp_path, extra=TEAM), clock=clock)
    try:
        raw = kyc_mail(
            [("kimlik.png", "image/png", PNG), (filename, content_type, payload)],
            subject="Identity documents for KYC",
            body="Please find my identity documents attached for the verification.",
        )
        result = deliver(state, raw)
        assert "documents: 1 stored, 1 refused" in result.detail, result.detail
        [reply] = _outbox(state, "kyc_refused")
        assert filename in reply.text and reason_en in reply.text
        assert "kimlik.png" in reply.text  # what did arrive is named too
        assert [d.filename for d in _documents(state)] == ["kimlik.png"]
        from ticketd.views import show_ticket

        ticket = show_ticket(state.db, _ref(result.detail))
        assert ticket is not None
        notes = [m for m in ticket["messages"] if m["kind"] == "system"]
        assert any(filename in str(n["text"]) for n in notes)
    finally:
        state.close()


def test_an_oversized_file_is_refused_in_turkish(tmp_path: Path, clock: FixedClock) -> None:
    extra = TEAM + "\n[kyc]\nmax_file_size = 1000\n"
    state = open_state(make_config(tmp_path, extra=extra), clock=clock)
    try:
        big = JPEG[:-2] + b"\x00" * 2000 + b"\xff\xd9"
        result = deliver(state, kyc_mail([("kimlik.jpg", "image/jpeg", big)]))
        assert "documents: 0 stored, 1 refused" in result.detail
        [reply] = _outbox(state, "kyc_refused")
        assert "kimlik.jpg: dosya 1000 B sınırından büyük" in reply.text
        assert _documents(state) == []
    finally:
        state.close()


def test_attachments_on_other_tickets_are_not_identity_documents(kyc_state: State) -> None:
    result = deliver(
        kyc_state,
        kyc_mail(
            [("dekont.pdf", "application/pdf", PDF)],
            subject="Para yatırma sorunu",
            body="Yatırımım hesabıma geçmedi, dekont ekte.",
        ),
    )
    assert "documents" not in result.detail
    assert _documents(kyc_state) == []
    assert len(_outbox(kyc_state, "ack")) == 1


def _agent_mail(state: State, ref: str, sender: str, body: str) -> bytes:
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = agent_reply_address(state.config.desk, ref)
    mail["Subject"] = f"RE: [#{ref}] Kimlik belgelerim"
    mail["Message-ID"] = make_msgid(domain="destek.example.com")
    mail.set_content(body)
    return mail.as_bytes(policy=SMTP)


def _send_documents(state: State, clock: FixedClock) -> str:
    files = [("kimlik.jpg", "image/jpeg", JPEG), ("fatura.pdf", "application/pdf", PDF)]
    result = deliver(state, kyc_mail(files))
    assert result.state == "done", result.detail
    clock.advance(timedelta(hours=1))
    return _ref(result.detail)


def test_only_an_identity_agent_may_approve(kyc_state: State, clock: FixedClock) -> None:
    ref = _send_documents(kyc_state, clock)
    address = agent_reply_address(kyc_state.config.desk, ref)
    refused = deliver(
        kyc_state, _agent_mail(kyc_state, ref, OTHER_AGENT, "#kyc approve"), (address,)
    )
    assert "refused" in refused.detail and "not one of yours" in refused.detail
    # Assigned the ticket, the other agent may act on it, but not decide on identity.
    deliver(kyc_state, _agent_mail(kyc_state, ref, KYC_AGENT, "#ata Mert"), (address,))
    assigned = deliver(
        kyc_state, _agent_mail(kyc_state, ref, OTHER_AGENT, "#kyc approve"), (address,)
    )
    assert "only agents of the identity (kyc) queue" in assigned.detail, assigned.detail
    assert {d.state for d in _documents(kyc_state)} == {"received"}

    approved = deliver(kyc_state, _agent_mail(kyc_state, ref, KYC_AGENT, "#kyc onayla"), (address,))
    assert "#kyc approve" in approved.detail, approved.detail
    documents = _documents(kyc_state)
    assert {d.state for d in documents} == {"approved"}
    assert {d.decided_by for d in documents} == {KYC_AGENT}
    assert len(_outbox(kyc_state, "kyc_approved")) == 1
    # Each document was mailed to the identity agent with its notification, then decided.
    assert [row["action"] for row in audit(kyc_state.db)] == ["mailed"] * 2 + ["decide"] * 2


def test_reject_tells_the_customer_the_reason(kyc_state: State, clock: FixedClock) -> None:
    ref = _send_documents(kyc_state, clock)
    address = agent_reply_address(kyc_state.config.desk, ref)
    body = "#kyc reddet Fotoğraf bulanık, kimliğin ön yüzü okunmuyor"
    result = deliver(kyc_state, _agent_mail(kyc_state, ref, KYC_AGENT, body), (address,))
    assert result.state == "done", result.detail
    [mail] = _outbox(kyc_state, "kyc_rejected")
    assert "Fotoğraf bulanık, kimliğin ön yüzü okunmuyor" in mail.text
    assert {d.reason for d in _documents(kyc_state)} == {
        "Fotoğraf bulanık, kimliğin ön yüzü okunmuyor"
    }
    # Nothing left to decide: a second decision is refused.
    again = deliver(kyc_state, _agent_mail(kyc_state, ref, KYC_AGENT, "#kyc approve"), (address,))
    assert "no documents waiting" in again.detail


def test_kyc_command_parsing() -> None:
    assert [c.argument for c in parse_commands("#kyc approve").commands] == ["approve"]
    assert [c.argument for c in parse_commands("#KYC reject bulanık foto").commands] == [
        "reject bulanık foto"
    ]
    assert "needs the reason" in parse_commands("#kyc reject").problems[0]
    assert "approve or reject" in parse_commands("#kyc maybe").problems[0]


def test_export_decrypts_the_exact_bytes_and_is_audited(
    kyc_state: State, clock: FixedClock, tmp_path: Path
) -> None:
    ref = _send_documents(kyc_state, clock)
    target = tmp_path / "export"
    config, blobs, now = kyc_state.config, kyc_state.blobs, clock.now()
    with pytest.raises(Exception, match="not an agent of the identity"):
        export_documents(kyc_state.db, config, blobs, now, ref, target, OTHER_AGENT)
    written = export_documents(kyc_state.db, config, blobs, now, ref, target, KYC_AGENT)
    assert sorted(p.read_bytes() for p in written) == sorted([JPEG, PDF])
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in written)
    rows = audit(kyc_state.db)
    # Mailed with the notification (tests/test_notify_attachments.py), then exported.
    assert [(r["actor"], r["action"]) for r in rows] == [(KYC_AGENT, "mailed")] * 2 + [
        (KYC_AGENT, "export")
    ] * 2
    assert list_documents(kyc_state.db, ref)[0]["filename"] == "kimlik.jpg"


def test_a_tampered_blob_fails_authentication(kyc_state: State) -> None:
    deliver(kyc_state, kyc_mail([("kimlik.png", "image/png", PNG)]))
    [document] = _documents(kyc_state)
    assert document.blob_key is not None
    store = DocumentStore.open(kyc_state.blobs, kyc_state.config.kyc.key_file)
    assert store.get(document.blob_key, document.sha256) == PNG
    path = kyc_state.blobs.path_for(document.blob_key)
    sealed = bytearray(path.read_bytes())
    sealed[-1] ^= 1
    path.write_bytes(bytes(sealed))
    with pytest.raises(DocumentIntegrityError):
        store.get(document.blob_key, document.sha256)


def test_retention_purges_content_and_keeps_the_record(kyc_state: State, clock: FixedClock) -> None:
    ref = _send_documents(kyc_state, clock)
    address = agent_reply_address(kyc_state.config.desk, ref)
    deliver(kyc_state, _agent_mail(kyc_state, ref, KYC_AGENT, "#kyc approve"), (address,))
    keys = [d.blob_key for d in _documents(kyc_state)]
    config, blobs = kyc_state.config, kyc_state.blobs

    clock.advance(timedelta(days=29))
    assert purge(kyc_state.db, config, blobs, clock.now()) == []
    clock.advance(timedelta(days=2))
    would = purge(kyc_state.db, config, blobs, clock.now(), dry_run=True)
    assert len(would) == 2 and all(blobs.path_for(k).exists() for k in keys if k)
    assert len(purge(kyc_state.db, config, blobs, clock.now())) == 2

    assert not any(blobs.path_for(k).exists() for k in keys if k)
    documents = _documents(kyc_state)
    assert all(d.blob_key is None and d.purged_at == clock.now() for d in documents)
    assert [(d.state, d.detected_type, d.decided_by) for d in documents] == [
        ("approved", "jpeg", KYC_AGENT),
        ("approved", "pdf", KYC_AGENT),
    ]
    assert documents[0].size == len(JPEG) and len(documents[0].sha256) == 64
    with kyc_state.db.read() as session:
        actions = session.scalars(select(DocumentAccess.action)).all()
    assert sorted(actions) == ["decide", "decide", "mailed", "mailed", "purge", "purge"]
    assert purge(kyc_state.db, config, blobs, clock.now()) == []


def test_rejected_documents_go_sooner(kyc_state: State, clock: FixedClock) -> None:
    ref = _send_documents(kyc_state, clock)
    address = agent_reply_address(kyc_state.config.desk, ref)
    body = "#kyc reject Süresi dolmuş belge"
    deliver(kyc_state, _agent_mail(kyc_state, ref, KYC_AGENT, body), (address,))
    clock.advance(timedelta(days=7, minutes=1))
    assert len(purge(kyc_state.db, kyc_state.config, kyc_state.blobs, clock.now())) == 2


def test_the_kyc_commands(kyc_state: State, clock: FixedClock, tmp_path: Path) -> None:
    from ticketd.cli import main

    ref = _send_documents(kyc_state, clock)
    config = ["--config", str(kyc_state.config.path)]
    assert main([*config, "kyc", "list", ref, "--json"]) == 0
    assert main([*config, "kyc", "list", "7KQM-X3P9"]) == 1
    out = tmp_path / "out"
    agent = ["--agent", KYC_AGENT]
    assert main([*config, "kyc", "export", ref, "--to", str(out), *agent]) == 0
    assert sorted(p.read_bytes() for p in out.iterdir()) == sorted([JPEG, PDF])
    assert main([*config, "kyc", "export", ref, "--to", str(out), "--agent", OTHER_AGENT]) == 1
    assert main([*config, "kyc", "audit", "--json"]) == 0
    assert main([*config, "kyc", "purge", "--dry-run", "--at", "2027-06-01T00:00:00"]) == 0
    assert main([*config, "kyc", "purge", "--at", "yesterday"]) == 64
    assert len(audit(kyc_state.db)) == 4  # mailed with the notification, exported
