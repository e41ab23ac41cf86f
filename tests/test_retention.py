"""Retention of every copy (issue 16): when a document's retention ends no copy of its bytes is
left anywhere ticketd wrote; raw mail and the outbox keep their text only after `raw_days`;
closed tickets lose their text after `ticket_days`.

"Anywhere" is checked by `copies`: every file under the state folder as it is on disk, every blob
opened with the keyring (documents opened once more), every MIME part of those decoded (a
document travels base64-encoded), and every value of every row of every table.
"""

from __future__ import annotations

import base64
import json
import os
import re
import smtplib
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import compat32
from email.utils import make_msgid
from pathlib import Path

from sqlalchemy import select, text

from domain.clock import FixedClock
from domain.config import Config, load_config
from outbound.addresses import agent_reply_address, erased_key
from storage import sealed_rows
from storage.db import Database
from storage.documents import DOC_MAGIC, DocumentStore
from storage.keyring import Keyring
from storage.models import (
    OUTBOX_SENT,
    Base,
    BlobRemoval,
    Document,
    Erasure,
    JournalEntry,
    OutboxMail,
    Ticket,
)
from storage.removals import note_removed
from storage.sealed_blobs import SealedBlobStore
from tests.daemon import DaemonProcess, Relay, daemon_config
from tests.helpers import DESK, write_config
from tests.test_kyc import JPEG, KYC_AGENT, OTHER_AGENT, PDF, TEAM, _agent_mail
from tests.test_threading import deliver
from tests.test_tnef import winmail_message
from tests.tnef_writer import TnefAttachment, write_tnef
from ticketd.cli import main
from ticketd.state import State, open_state

MARKER = b"KVKK-MARKER-5e1d0c"
# The identity photo: a JPEG whose comment segment carries the marker.
MARKED = JPEG[:2] + b"\xff\xfe" + (len(MARKER) + 2).to_bytes(2, "big") + MARKER + JPEG[2:]
CUSTOMER = "Deniz Arslan <deniz@musteri.example>"


# A run of base64 lines (or one long line): what a file looks like encoded in mail.
_BASE64_RUN = re.compile(rb"(?:[A-Za-z0-9+/]{16,}={0,2}[ \t]*\r?\n?){2,}|[A-Za-z0-9+/]{64,}={0,2}")


def _decoded_runs(data: bytes, depth: int) -> Iterator[bytes]:
    """Every base64 run in `data` decoded (from each of its 4 possible starts, a run may begin
    mid-line), and the runs in those, `depth` levels down: a forwarded message sent base64
    holds its file base64 inside base64, which no single decoding shows."""
    if depth <= 0:
        return
    for run in _BASE64_RUN.finditer(data):
        chunk = re.sub(rb"\s", b"", run.group())
        for start in range(4):
            piece = chunk[start:]
            piece = piece[: len(piece) - len(piece) % 4]
            try:
                decoded = base64.b64decode(piece)
            except ValueError:
                continue
            yield decoded
            yield from _decoded_runs(decoded, depth - 1)


def _parts(data: bytes) -> Iterator[bytes]:
    """`data` itself, every part's decoded bytes when it reads as mail, and every base64 run
    in it decoded, as deep as mail nests them (`_decoded_runs`)."""
    yield data
    try:
        message = message_from_bytes(data, policy=compat32)
        for part in message.walk():
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                yield payload
    except Exception:
        pass
    yield from _decoded_runs(data, 4)


def _blob_contents(config: Config) -> Iterator[tuple[str, bytes]]:
    """Every blob opened with the keyring; a document opened once more with its record's hash.
    A sealed document no record names cannot be opened: it is reported as found."""
    keyring = Keyring.open(config.kyc.key_file)
    store = SealedBlobStore(config.storage.blobs, keyring)
    documents = DocumentStore(store, keyring)
    db = Database(config.storage.database)
    try:
        with db.read() as session:
            named = {k: s for k, s in session.execute(select(Document.blob_key, Document.sha256))}
    finally:
        db.dispose()
    for key in store.addresses():
        opened = store.get(key)
        if not opened.startswith(DOC_MAGIC):
            yield f"blob {key}", opened
        elif key in named:
            yield f"document blob {key}", documents.get(key, named[key])
        else:
            yield f"document blob {key} (no record names it)", b"*" + opened


def _row_contents(config: Config) -> Iterator[tuple[str, bytes]]:
    """Every value of every row as stored (the outbox's bytes sealed, as SQL reads them)."""
    db = Database(config.storage.database)
    try:
        with db.read() as session:
            for table in Base.metadata.sorted_tables:
                for row in session.execute(text(f"SELECT * FROM {table.name}")):
                    for value in row:
                        if isinstance(value, bytes):
                            yield table.name, value
                        elif value is not None:
                            yield table.name, str(value).encode("utf-8", "surrogateescape")
    finally:
        db.dispose()


def _outbox_contents(config: Config) -> Iterator[tuple[str, bytes]]:
    """The outbox's bytes opened with the keyring (storage/sealed_rows.py)."""
    db = Database(config.storage.database)
    sealed_rows.bind(db.engine, Keyring.open(config.kyc.key_file))
    try:
        with db.read() as session:
            yield from (("outbox", raw) for raw in session.scalars(select(OutboxMail.raw)))
    finally:
        db.dispose()


def at_rest(config: Config, needle: bytes) -> list[str]:
    """Where `needle` is found as stored, nothing opened: the files under the state folder (the
    database's own file and its -wal among them) and every row as SQL reads it."""
    found: list[str] = []
    root = config.path.parent
    for path in root.rglob("*"):
        if path.is_file() and any(needle in part for part in _parts(path.read_bytes())):
            found.append(str(path.relative_to(root)))
    found += [
        where for where, data in _row_contents(config) if any(needle in p for p in _parts(data))
    ]
    return found


def copies(config: Config, needle: bytes) -> list[str]:
    """Where `needle` is found: file names, blob keys, table names (the outbox opened)."""
    found: list[str] = []
    root = config.path.parent
    for path in root.rglob("*"):
        if path.is_file() and any(needle in part for part in _parts(path.read_bytes())):
            found.append(str(path.relative_to(root)))
    contents = [*_blob_contents(config), *_row_contents(config), *_outbox_contents(config)]
    for where, data in contents:
        if data.startswith(b"*" + DOC_MAGIC) or any(needle in part for part in _parts(data)):
            found.append(where)
    return found


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ticketd.cli", "--config", str(config), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )


def _send(daemon: DaemonProcess, mail: EmailMessage, sender: str, to: str = DESK) -> None:
    with smtplib.SMTP("127.0.0.1", daemon.port, timeout=30) as client:
        client.send_message(mail, from_addr=sender, to_addrs=[to])


def _customer_documents() -> EmailMessage:
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = CUSTOMER, DESK, "Kimlik doğrulama"
    mail["Message-ID"] = make_msgid(domain="musteri.example")
    mail.set_content("Kimliğimin fotoğrafı ekte.")
    mail.add_attachment(MARKED, maintype="image", subtype="jpeg", filename="kimlik.jpg")
    return mail


def _agent(config: Config, ref: str, body: str, attach: bytes | None = None) -> EmailMessage:
    mail = EmailMessage()
    mail["From"], mail["Subject"] = KYC_AGENT, f"RE: [#{ref}] Kimlik doğrulama"
    mail["To"] = agent_reply_address(config.desk, ref)
    mail["Message-ID"] = make_msgid(domain="destek.example.com")
    mail.set_content(body)
    if attach is not None:
        mail.add_attachment(attach, maintype="image", subtype="jpeg", filename="geri.jpg")
    return mail


def _documents_of(path: Path, ref: str) -> list[dict[str, object]]:
    listed = _cli(path, "kyc", "list", ref, "--json")
    assert listed.returncode == 0, listed.stderr
    rows: list[dict[str, object]] = json.loads(listed.stdout)
    return rows


def _approved_with_copies(
    tmp_path: Path, relay: Relay | None, extra: str = ""
) -> tuple[DaemonProcess, str]:
    """A running daemon holding the marked document in every place a copy can be: the raw
    message, the document, an agent's answer relaying it (the outbox; without a relay, the
    Maildir too)."""
    port = relay.port if relay is not None else None
    daemon = DaemonProcess(daemon_config(tmp_path, port, extra=TEAM + extra))
    daemon.start()
    _send(daemon, _customer_documents(), "deniz@musteri.example")
    tickets = daemon.wait_until(lambda: daemon.cli("tickets", "list", "--json"), what="ticket")
    ref = str(tickets[0]["ref"])
    address = agent_reply_address(daemon.config.desk, ref)
    _send(
        daemon, _agent(daemon.config, ref, "Gönderdiğiniz belge ekte.", MARKED), KYC_AGENT, address
    )
    _send(daemon, _agent(daemon.config, ref, "#kyc onayla\n\nUygun."), KYC_AGENT, address)
    daemon.wait_until(
        lambda: [d["state"] for d in _documents_of(daemon.config_path, ref)] == ["approved"],
        what="the approval",
    )
    # The receipt, the agent's answer with the file, the approval: delivered.
    if relay is not None:
        relay.wait_for(3)
    else:
        new = daemon.config.smtp_out.maildir / "new"
        daemon.wait_until(lambda: len(list(new.iterdir())) >= 3, what="the Maildir")
    return daemon, ref


def test_after_the_purge_no_copy_of_the_document_is_left(tmp_path: Path, relay: Relay) -> None:
    daemon, ref = _approved_with_copies(tmp_path, relay)
    path = daemon.config_path
    try:
        export = tmp_path / "kyc-export"
        assert (
            _cli(path, "kyc", "export", ref, "--to", str(export), "--agent", KYC_AGENT).returncode
            == 0
        )
        where = copies(daemon.config, MARKER)
        # The scan finds each kind of copy before the purge (so its silence after means something).
        assert any(w.startswith("blob ") for w in where), where
        assert "outbox" in where and any(w.startswith("document blob") for w in where), where
        assert [p.read_bytes() for p in export.iterdir()] == [MARKED]

        at = (datetime.now(UTC) + timedelta(days=31)).strftime("%Y-%m-%dT%H:%M:%S")
        purged = _cli(path, "kyc", "purge", "--at", at)
        assert purged.returncode == 0, purged.stderr
        assert "1 document(s) were purged" in purged.stdout

        assert copies(daemon.config, MARKER) == []
        assert not list(export.iterdir())  # the export ticketd made is gone too
        [record] = _documents_of(path, ref)
        assert record["state"] == "approved" and record["purged_at"] is not None
        assert record["sha256"] and record["type"] == "jpeg" and record["decided_by"] == KYC_AGENT
        shown = daemon.cli("tickets", "show", ref, "--json")
        texts = [m["text"] for m in shown["messages"]]
        assert "Kimliğimin fotoğrafı ekte." in texts  # the text stays; only the file went
        before = sum(t["messages"] for t in daemon.cli("tickets", "list", "--json"))
        _send(daemon, _customer_documents(), "deniz@musteri.example")  # the daemon goes on
        daemon.wait_until(
            lambda: sum(t["messages"] for t in daemon.cli("tickets", "list", "--json")) > before,
            what="the next message",
        )
    finally:
        assert daemon.stop() == 0, daemon.log()


def test_the_purge_rewrites_the_mail_ticketd_left_in_its_maildir(tmp_path: Path) -> None:
    daemon, _ = _approved_with_copies(tmp_path, None)
    try:
        where = copies(daemon.config, MARKER)
        assert any(w.startswith("var/outbox/new/") for w in where), where
        at = (datetime.now(UTC) + timedelta(days=31)).strftime("%Y-%m-%dT%H:%M:%S")
        assert _cli(daemon.config_path, "kyc", "purge", "--at", at).returncode == 0
        assert copies(daemon.config, MARKER) == []
        files = list((daemon.config.smtp_out.maildir / "new").iterdir())
        assert len(files) >= 3  # all still there
        # ... with the mode the Maildir gives every file, the rewritten ones too.
        assert {oct(stat.S_IMODE(f.stat().st_mode)) for f in files} == {"0o640"}
    finally:
        assert daemon.stop() == 0, daemon.log()


def test_the_daemons_scheduled_purge_removes_every_copy(tmp_path: Path, relay: Relay) -> None:
    daemon, ref = _approved_with_copies(tmp_path, relay, "\n[kyc]\nretention_days = 0\n")
    assert daemon.stop() == 0
    assert copies(daemon.config, MARKER)
    daemon.start()  # the housekeeping runs at start
    try:
        daemon.wait_until(
            lambda: _documents_of(daemon.config_path, ref)[0]["purged_at"], what="the purge"
        )
        daemon.wait_until(lambda: not copies(daemon.config, MARKER), what="no copy left")
    finally:
        assert daemon.stop() == 0, daemon.log()


def _payment_mail(body: str, attachment: bytes) -> bytes:
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = CUSTOMER, DESK, "Para yatırma dekontu"
    mail["Message-ID"] = make_msgid(domain="musteri.example")
    mail.set_content(body)
    mail.add_attachment(attachment, maintype="application", subtype="pdf", filename="dekont.pdf")
    return mail.as_bytes()


RECEIPT = PDF.replace(b"FATURA ADRES", MARKER)


def _sent_now(state: State, clock: FixedClock) -> None:
    """The outbox's mail as the sender leaves it once delivered (no sender runs here)."""
    with state.db.transaction() as session:
        for mail in session.scalars(select(OutboxMail)):
            mail.state, mail.sent_at = OUTBOX_SENT, clock.now()


def test_raw_messages_keep_their_text_only_after_raw_days(
    kyc_state: State, clock: FixedClock
) -> None:
    config = ["--config", str(kyc_state.config.path)]
    result = deliver(kyc_state, _payment_mail("Dekont ekte, 500 TL yatırdım.", RECEIPT))
    assert result.state == "done"
    _sent_now(kyc_state, clock)  # the notification that attached the receipt too
    assert copies(kyc_state.config, MARKER)
    at = (clock.now() + timedelta(days=29)).strftime("%Y-%m-%dT%H:%M:%S")
    assert main([*config, "retention", "run", "--at", at]) == 0
    assert copies(kyc_state.config, MARKER)  # within raw_days (30 by default): all kept
    at = (clock.now() + timedelta(days=31)).strftime("%Y-%m-%dT%H:%M:%S")
    assert main([*config, "retention", "run", "--at", at, "--dry-run"]) == 0
    assert copies(kyc_state.config, MARKER)
    assert main([*config, "retention", "run", "--at", at]) == 0
    assert copies(kyc_state.config, MARKER) == []
    with kyc_state.db.read() as session:
        entry = session.scalars(select(JournalEntry)).one()
        raw, raw_state = kyc_state.blobs.get(entry.blob_key), entry.raw_state
    assert raw_state == "stripped"
    assert "Dekont ekte, 500 TL yatırdım.".encode() in raw
    assert b"dekont.pdf (application/pdf" in raw  # what was there is named
    assert main([*config, "retention", "run", "--at", at]) == 0  # nothing left to do


def test_closed_tickets_lose_their_text_after_ticket_days(
    tmp_path: Path, clock: FixedClock
) -> None:
    path = write_config(tmp_path, extra=TEAM + "\n[retention]\nticket_days = 90\n")
    state = open_state(load_config(path), clock=clock)
    words = b"KVKK-TEXT-41"
    # A word as the full-text index holds it (lower case, no first letter to share).
    indexed = b"qvarlikxy"
    database = tmp_path / "var" / "ticketd.sqlite3"
    try:
        text = f"Hesabım {words.decode()} kilitlendi, zqvarlikxy."
        result = deliver(state, _payment_mail(text, RECEIPT))
        ref = result.detail.split()[1].rstrip(":")
        address = agent_reply_address(state.config.desk, ref)
        closed = deliver(
            state, _agent_mail(state, ref, OTHER_AGENT, "#kapat\n\nÇözüldü."), (address,)
        )
        assert closed.state == "done", closed.detail
        clock.advance(timedelta(days=89))
        assert main(["--config", str(path), "retention", "run"]) == 0
        assert copies(state.config, words) and indexed in database.read_bytes()
        clock.advance(timedelta(days=2))
        assert (
            main(["--config", str(path), "retention", "run", "--at", clock.now().isoformat()[:19]])
            == 0
        )
        assert copies(state.config, words) == [] and copies(state.config, MARKER) == []
        assert indexed not in database.read_bytes()  # nor in the search index
        with state.db.read() as session:
            raw_states = set(session.scalars(select(JournalEntry.raw_state)))
            ticket = session.scalars(select(Ticket)).one()
            record = (ticket.ref, ticket.status, ticket.category, ticket.text_removed_at)
        assert raw_states == {"removed"}
        assert record == (ref, "closed", "payment", clock.now())  # the record stays
    finally:
        state.close()


def test_a_removed_blob_left_by_a_crash_goes_at_the_next_pass(kyc_state: State) -> None:
    result = deliver(kyc_state, _payment_mail("Dekont ekte.", RECEIPT))
    assert result.state == "done"
    with kyc_state.db.transaction() as session:
        entry = session.scalars(select(JournalEntry)).one()
        key = entry.blob_key
        entry.blob_key = kyc_state.blobs.put(b"Subject: replaced\r\n\r\ncopy\r\n")
        note_removed(session, [key])  # ... and the process died before deleting the file
    assert kyc_state.blobs.exists(key)
    config = ["--config", str(kyc_state.config.path)]
    assert main([*config, "retention", "run"]) == 0
    assert not kyc_state.blobs.exists(key)
    with kyc_state.db.read() as session:
        assert session.get(BlobRemoval, key) is not None  # kept a day, for a rotation


def _every_form(other: bytes) -> list[bytes]:
    """The marked photo as a forwarded message's file, inside a winmail.dat, and shown in the
    body beside a file that is no document (`other`, on the same message)."""
    forwarded = EmailMessage()
    forwarded["From"], forwarded["Subject"] = "deniz@eski.example", "kimlik"
    forwarded.set_content("eski mesaj")
    forwarded.add_attachment(MARKED, maintype="image", subtype="jpeg", filename="kimlik.jpg")
    outer = EmailMessage()
    outer["From"], outer["To"], outer["Subject"] = CUSTOMER, DESK, "Kimlik belgelerim"
    outer.set_content("İletilen mesajda kimliğim var.")
    outer.add_attachment(forwarded)
    inline = EmailMessage()
    inline["From"], inline["To"], inline["Subject"] = CUSTOMER, DESK, "Kimlik belgelerim 2"
    inline.set_content("Kimliğim aşağıda.")
    inline.add_alternative('<p>Kimliğim:</p><img src="cid:kimlik@x">', subtype="html")
    html = inline.get_body(("html",))
    assert isinstance(html, EmailMessage)
    html.add_related(MARKED, "image", "jpeg", cid="<kimlik@x>")
    inline.add_attachment(other, maintype="application", subtype="octet-stream", filename="not.txt")
    tnef = write_tnef([TnefAttachment(MARKED, long_filename="kimlik.jpg")])
    return [outer.as_bytes(), inline.as_bytes(), winmail_message(tnef)]


def test_the_purge_finds_the_document_in_every_form_it_came_in(
    kyc_state: State, clock: FixedClock
) -> None:
    other = b"not a document: KVKK-OTHER-FILE kept until raw_days"
    refs = []
    for raw in _every_form(other):
        result = deliver(kyc_state, raw)
        assert result.state == "done" and "1 stored" in result.detail, result.detail
        refs.append(result.detail.split()[1].rstrip(":"))
    for ref in refs:
        address = agent_reply_address(kyc_state.config.desk, ref)
        deliver(kyc_state, _agent_mail(kyc_state, ref, KYC_AGENT, "#kyc approve"), (address,))
    assert len(copies(kyc_state.config, MARKER)) >= 3
    at = (clock.now() + timedelta(days=31)).strftime("%Y-%m-%dT%H:%M:%S")
    assert main(["--config", str(kyc_state.config.path), "kyc", "purge", "--at", at]) == 0
    assert copies(kyc_state.config, MARKER) == []
    assert copies(kyc_state.config, b"KVKK-OTHER-FILE")  # what was no document stays
    with kyc_state.db.read() as session:
        states = session.scalars(select(JournalEntry.raw_state).order_by(JournalEntry.id)).all()
    assert states[:3] == ["redacted"] * 3


def test_a_rotation_that_rewrites_a_removed_blob_deletes_it_again(kyc_state: State) -> None:
    """The rotation's rename can put back a blob a purge just deleted; it deletes it again."""
    assert deliver(kyc_state, _payment_mail("Dekont ekte.", RECEIPT)).state == "done"
    with kyc_state.db.transaction() as session:
        entry = session.scalars(select(JournalEntry)).one()
        key = entry.blob_key
        entry.blob_key = kyc_state.blobs.put(b"Subject: replaced\r\n\r\ncopy\r\n")
        note_removed(session, [key])  # deleted, then put back by a rotation's rename
    config = ["--config", str(kyc_state.config.path)]
    assert main([*config, "kyc", "rotate-key"]) == 0
    assert not kyc_state.blobs.exists(key)
    # The blob store holds no copy; the agent's notification attached the receipt, and the
    # outbox keeps that copy (sealed) until `raw_days` after it is sent.
    assert copies(kyc_state.config, MARKER) == ["outbox"]
    assert at_rest(kyc_state.config, MARKER) == []


def test_the_daemons_retention_pass_strips_old_raw_mail_and_finishes_an_erasure(
    tmp_path: Path, relay: Relay
) -> None:
    """Mail processed two days ago (raw_days = 1) and an erasure a crash cut short: the daemon's
    own pass, soon after start, deals with both."""
    path = daemon_config(tmp_path, relay.port, extra=TEAM + "\n[retention]\nraw_days = 1\n")
    state = open_state(load_config(path), clock=FixedClock(datetime.now(UTC) - timedelta(days=2)))
    try:
        assert deliver(state, _payment_mail("Dekont ekte.", RECEIPT)).state == "done"
        other = _payment_mail("Ben başka biriyim.", PDF).replace(b"deniz@", b"ece@")
        assert deliver(state, other).state == "done"
        with state.db.transaction() as session:  # step 1 of an erasure, then the crash
            session.add(
                Erasure(
                    address_key=erased_key(state.config.desk.secret, "ece@musteri.example"),
                    pseudonym="erased-0123456789ab",
                    address="ece@musteri.example",
                    state="started",
                    actor="admin (command line)",
                    started_at=datetime.now(UTC),
                )
            )
    finally:
        state.close()
    assert copies(state.config, MARKER) and copies(state.config, b"ece@musteri.example")
    daemon = DaemonProcess(path)
    daemon.start()
    try:
        daemon.wait_until(lambda: not copies(daemon.config, MARKER), 40, "raw mail stripped")
        daemon.wait_until(
            lambda: not copies(daemon.config, b"ece@musteri.example"), 40, "the erasure finished"
        )
        assert "an interrupted erasure finished: erased-0123456789ab" in daemon.log()
    finally:
        assert daemon.stop() == 0, daemon.log()
