"""An identity document that came inside a forwarded message (message/rfc822, at any depth)
leaves no copy when its retention ends (promise 6): not in the journal, the outbox or the
Maildir, not in the `customer export` made before the purge (its `attachments/N-1-kimlik.eml`
holds the forwarded message, document and all), not in an export made after it.

"Copy" is tests/test_retention.py's `copies`: every file under the state folder (the exports
here too), every blob opened, every row, each part decoded, base64 inside base64 included.
"""

from __future__ import annotations

import json
from datetime import timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from email.utils import make_msgid
from pathlib import Path

import pytest
from sqlalchemy import select

from domain.clock import FixedClock
from domain.config import load_config
from ingest.parsing import parse_message
from outbound.addresses import agent_reply_address
from storage.models import JournalEntry
from tests.helpers import DESK, write_config
from tests.test_kyc import KYC_AGENT, TEAM, _agent_mail
from tests.test_retention import (
    CUSTOMER,
    MARKED,
    MARKER,
    RECEIPT,
    _parts,
    _sent_now,
    copies,
)
from tests.test_threading import deliver
from tests.test_tnef import winmail_message
from tests.tnef_writer import TnefAttachment, write_tnef
from ticketd.cli import main
from ticketd.state import State, open_state

DENIZ = "deniz@musteri.example"


def _forwarded(content: bytes = MARKED, filename: str = "kimlik.jpg") -> EmailMessage:
    """The old mail the customer forwards: their ID photo attached to it."""
    mail = EmailMessage()
    mail["From"], mail["Subject"] = "deniz@eski.example", "kimlik"
    mail.set_content("eski mesaj")
    maintype, subtype = ("image", "jpeg") if content == MARKED else ("application", "pdf")
    mail.add_attachment(content, maintype=maintype, subtype=subtype, filename=filename)
    return mail


def _wrapped(inner: EmailMessage, levels: int) -> EmailMessage:
    """`inner` forwarded again `levels` times, each forward holding the previous one."""
    for level in range(levels):
        forward = EmailMessage()
        forward["From"], forward["Subject"] = "deniz@eski.example", f"Fwd {level}"
        forward.set_content(f"iletilen {level}")
        forward.add_attachment(inner)
        inner = forward
    return inner


def _sent_base64(inner: EmailMessage) -> EmailMessage:
    """A mail holding `inner` as a message/rfc822 part sent base64: only a parser that decodes
    that forward finds the file in it."""
    mail = EmailMessage()
    mail["From"], mail["Subject"] = "deniz@eski.example", "Fwd"
    mail.set_content("iletilen")
    mail.add_attachment(inner.as_bytes(), maintype="message", subtype="rfc822", filename="f.eml")
    return mail


def _customer_mail(inner: EmailMessage | bytes, name: str | None = None) -> bytes:
    """The customer's mail with `inner` attached as a message/rfc822 part: a message as the
    standard library writes it (7bit), or bytes sent base64 as some mail clients do."""
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = CUSTOMER, DESK, "Kimlik belgelerim"
    mail["Message-ID"] = make_msgid(domain="musteri.example")
    mail.set_content("İletilen mesajda kimliğim var.")
    if isinstance(inner, bytes):
        mail.add_attachment(inner, maintype="message", subtype="rfc822", filename=name)
    else:
        mail.add_attachment(inner)
        if name is not None:
            [*_, part] = mail.iter_attachments()
            part.replace_header("Content-Disposition", f'attachment; filename="{name}"')
    return mail.as_bytes()


def _winmail_forward() -> EmailMessage:
    tnef = write_tnef([TnefAttachment(MARKED, long_filename="kimlik.jpg")])
    forward = message_from_bytes(winmail_message(tnef), policy=default)
    assert isinstance(forward, EmailMessage)
    return forward


FORMS = {
    "forwarded as kimlik.eml": lambda: _customer_mail(_forwarded(), "kimlik.eml"),
    "forward sent base64": lambda: _customer_mail(_forwarded().as_bytes(), "kimlik.eml"),
    "three forwards deep": lambda: _customer_mail(_wrapped(_forwarded(), 2)),
    "three deep, sent base64": lambda: _customer_mail(_wrapped(_forwarded(), 2).as_bytes(), "f"),
    "winmail.dat in a forward": lambda: _customer_mail(_winmail_forward()),
    "message/global": lambda: _customer_mail(_forwarded()).replace(
        b"message/rfc822", b"message/global"
    ),
    # The sender names the message/rfc822 part: the export's file is then not an .eml.
    "forward named kimlik.jpg": lambda: _customer_mail(_forwarded(), "kimlik.jpg"),
}


def _files_with_marker(folder: Path) -> list[str]:
    return sorted(
        str(path.relative_to(folder))
        for path in folder.rglob("*")
        if path.is_file() and any(MARKER in part for part in _parts(path.read_bytes()))
    )


def _approved(state: State, raw: bytes) -> None:
    result = deliver(state, raw)
    assert result.state == "done" and "1 stored" in result.detail, result.detail
    ref = result.detail.split()[1].rstrip(":")
    address = agent_reply_address(state.config.desk, ref)
    approved = deliver(state, _agent_mail(state, ref, KYC_AGENT, "#kyc approve"), (address,))
    assert approved.state == "done", approved.detail


@pytest.mark.parametrize("form", list(FORMS))
def test_a_document_in_a_forwarded_message_leaves_no_copy_after_the_purge(
    kyc_state: State, clock: FixedClock, tmp_path: Path, form: str
) -> None:
    _approved(kyc_state, FORMS[form]())
    config = ["--config", str(kyc_state.config.path)]
    before = tmp_path / "export-before"
    assert main([*config, "customer", "export", DENIZ, "--to", str(before)]) == 0
    held = _files_with_marker(before)
    # The forwarded message kept whole as the attachment, the document found in it, the raw
    # mail (base64 inside base64 when the forward was sent so: found all the same).
    assert any(name.startswith("documents/") for name in held), held
    assert any("/attachments/" in name and "-1-" in name for name in held), held
    assert any("/raw/" in name for name in held), held
    assert "outbox" in copies(kyc_state.config, MARKER)  # the identity agent's notification

    at = (clock.now() + timedelta(days=31)).strftime("%Y-%m-%dT%H:%M:%S")
    assert main([*config, "kyc", "purge", "--at", at]) == 0

    assert _files_with_marker(before) == []  # the earlier export's .eml went too
    assert copies(kyc_state.config, MARKER) == []
    after = tmp_path / "export-after"
    assert main([*config, "customer", "export", DENIZ, "--to", str(after)]) == 0
    assert _files_with_marker(after) == []
    [record] = json.loads((after / "documents.json").read_text())
    assert record["file"] is None and record["purged_at"]


def _deep_state(tmp_path: Path, clock: FixedClock) -> State:
    """A desk that reads mail 200 MIME levels deep ([limits] max_mime_depth)."""
    path = write_config(tmp_path, extra=TEAM + "\n[limits]\nmax_mime_depth = 200\n")
    return open_state(load_config(path), clock=clock)


def test_a_document_found_past_the_default_depth_is_purged_too(
    tmp_path: Path, clock: FixedClock
) -> None:
    """30 forwards hold the photo 62 levels down: the documents step of a desk reading 200
    levels stores it, so its purge must read as deep (the default, 50, would not find it and
    the raw message would keep it)."""
    state = _deep_state(tmp_path, clock)
    try:
        _approved(state, _customer_mail(_wrapped(_forwarded(), 30)))
        at = (clock.now() + timedelta(days=31)).strftime("%Y-%m-%dT%H:%M:%S")
        assert main(["--config", str(state.config.path), "kyc", "purge", "--at", at]) == 0
        assert copies(state.config, MARKER) == []
    finally:
        state.close()


def test_raw_days_takes_a_file_past_the_default_depth(tmp_path: Path, clock: FixedClock) -> None:
    """`raw_days` keeps the text and takes the files: a receipt 62 levels down, in a forward
    sent base64, is found as the desk reads it and replaced by a note. Read with the default
    limits it was not found, the copy still held it, and the fallback kept only the headers:
    the customer's text was lost with it."""
    state = _deep_state(tmp_path, clock)
    try:
        raw = _customer_mail(_wrapped(_sent_base64(_forwarded(RECEIPT, "dekont.pdf")), 30))
        result = deliver(state, raw.replace(b"Kimlik belgelerim", b"Para yatirma"))
        assert result.state == "done", result.detail
        _sent_now(state, clock)
        assert copies(state.config, MARKER)
        at = (clock.now() + timedelta(days=31)).strftime("%Y-%m-%dT%H:%M:%S")
        assert main(["--config", str(state.config.path), "retention", "run", "--at", at]) == 0
        assert copies(state.config, MARKER) == []
        with state.db.read() as session:
            entry = session.scalars(select(JournalEntry)).one()
            kept = parse_message(state.blobs.get(entry.blob_key))
        assert kept.text == "İletilen mesajda kimliğim var."
        assert [a.filename for a in kept.attachments][:1] == ["Fwd 29.eml"]
    finally:
        state.close()
