"""The outbox's stored bytes are encrypted at rest (promise 6, storage/sealed_rows.py): the
identity agent's notification attaches the customer's ID photo, and `outbox.raw` held it in
clear in SQLite (its file and its -wal), base64 as mail carries it. Sealed now with the
journal's keys: the sender still delivers the photo, a key rotation re-encrypts the rows, a
retirement waits for them, and rows composed before sealing are sealed by the retention pass.

"At rest" is tests/test_retention.py's `at_rest`: every file under the state folder and every
row as SQL reads it, each part decoded and base64 inside base64 too, nothing opened.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import StatementError

from domain.clock import FixedClock
from outbound.addresses import agent_reply_address
from storage.db import Database
from storage.documents import DocumentStore
from storage.models import OutboxMail
from storage.rotation import outbox_not_under, retire, rotate
from storage.sealed_blobs import SealedBlobStore
from storage.sealed_rows import MAGIC, key_id
from tests.daemon import DaemonProcess, Relay, daemon_config
from tests.test_key_rotation import LATER
from tests.test_kyc import KYC_AGENT, TEAM, _agent_mail
from tests.test_retention import (
    MARKED,
    MARKER,
    _customer_documents,
    _parts,
    _send,
    at_rest,
    copies,
)
from tests.test_threading import deliver
from ticketd.cli import main
from ticketd.state import State


def _stored(state: State) -> list[bytes]:
    """The outbox's bytes as the database holds them (not through the column's type)."""
    with state.db.read() as session:
        return [bytes(raw) for raw in session.execute(text("SELECT raw FROM outbox")).scalars()]


def test_the_notification_with_the_document_is_sealed_in_the_database_and_delivered(
    tmp_path: Path, relay: Relay
) -> None:
    daemon = DaemonProcess(daemon_config(tmp_path, relay.port, extra=TEAM))
    daemon.start()
    try:
        _send(daemon, _customer_documents(), "deniz@musteri.example")
        # The document receipt to the customer, the notification to the identity agent.
        delivered = relay.wait_for(2)
        attached = [
            part.get_payload(decode=True)
            for mail in delivered
            for part in mail.walk()
            if part.get_filename()
        ]
        assert MARKED in attached  # the sender opened what it delivers
        assert daemon.cli("outbox", "list", "--json")  # a read-only command still lists it
        assert "outbox" in copies(daemon.config, MARKER)  # held, opened with the key ...
        # ... and nowhere in clear: not the database's file, its -wal, a row, any file.
        assert at_rest(daemon.config, MARKER) == []
    finally:
        assert daemon.stop() == 0, daemon.log()


def _sealed(state: State) -> SealedBlobStore:
    assert isinstance(state.blobs, SealedBlobStore)
    return state.blobs


def test_outbox_rows_follow_the_key_rotation(kyc_state: State, clock: FixedClock) -> None:
    result = deliver(kyc_state, _customer_documents().as_bytes())
    assert result.state == "done", result.detail
    blobs = _sealed(kyc_state)
    old = blobs.keyring.data.write
    assert {key_id(raw) for raw in _stored(kyc_state)} == {old}
    with kyc_state.db.read() as session:  # read through the column: opened
        opened = list(session.scalars(select(OutboxMail.raw)))
    assert any(MARKER in part for raw in opened for part in _parts(raw))

    documents = DocumentStore.open(blobs, kyc_state.config.kyc.key_file)
    report = rotate(kyc_state.db, blobs, documents, clock.now())
    new = blobs.keyring.data.write
    assert report.mails == len(_stored(kyc_state)) and report.finished
    assert new != old and {key_id(raw) for raw in _stored(kyc_state)} == {new}
    assert outbox_not_under(kyc_state.db, new) == []
    assert retire(kyc_state.db, blobs, documents, clock.now() + LATER).retired == [old]
    assert at_rest(kyc_state.config, MARKER) == []
    assert copies(kyc_state.config, MARKER)  # still read with the one key left


def test_a_retirement_waits_for_an_outbox_row_under_the_old_key(
    kyc_state: State, clock: FixedClock
) -> None:
    assert deliver(kyc_state, _customer_documents().as_bytes()).state == "done"
    blobs = _sealed(kyc_state)
    before = _stored(kyc_state)
    documents = DocumentStore.open(blobs, kyc_state.config.kyc.key_file)
    rotate(kyc_state.db, blobs, documents, clock.now())
    # A row still under the old key (a daemon that composed it while the rotation ran).
    with kyc_state.db.transaction() as session:
        session.execute(text("UPDATE outbox SET raw = :raw WHERE id = 1"), {"raw": before[0]})
    assert outbox_not_under(kyc_state.db, blobs.keyring.data.write) == [1]
    report = retire(kyc_state.db, blobs, documents, clock.now() + LATER)  # re-encrypts it first
    assert report.mails == 1 and report.retired
    assert outbox_not_under(kyc_state.db, blobs.keyring.data.write) == []


def test_rows_composed_before_sealing_are_read_then_sealed_by_the_retention_pass(
    kyc_state: State,
) -> None:
    assert deliver(kyc_state, _customer_documents().as_bytes()).state == "done"
    with kyc_state.db.read() as session:
        plain = {row.id: row.raw for row in session.scalars(select(OutboxMail))}
    with kyc_state.db.transaction() as session:  # as an older ticketd stored them
        for outbox_id, raw in plain.items():
            session.execute(
                text("UPDATE outbox SET raw = :raw WHERE id = :id"), {"raw": raw, "id": outbox_id}
            )
    assert at_rest(kyc_state.config, MARKER)
    with kyc_state.db.read() as session:
        assert {row.id: row.raw for row in session.scalars(select(OutboxMail))} == plain
    assert main(["--config", str(kyc_state.config.path), "retention", "run"]) == 0
    assert all(raw.startswith(MAGIC) for raw in _stored(kyc_state))
    assert at_rest(kyc_state.config, MARKER) == []
    with kyc_state.db.read() as session:
        assert {row.id: row.raw for row in session.scalars(select(OutboxMail))} == plain


def test_a_process_without_the_key_file_writes_no_outbox_bytes(kyc_state: State) -> None:
    assert deliver(kyc_state, _customer_documents().as_bytes()).state == "done"
    keyless = Database(kyc_state.config.storage.database)
    try:
        with pytest.raises(StatementError, match="key file"), keyless.transaction() as session:
            row = session.scalars(select(OutboxMail)).first()
            assert row is not None and row.raw.startswith(MAGIC)  # read as stored, unopened
            row.raw = b"Subject: clear\r\n\r\nclear\r\n"
    finally:
        keyless.dispose()
    assert all(raw.startswith(MAGIC) for raw in _stored(kyc_state))


def test_the_purge_still_redacts_the_sealed_notification(kyc_state: State) -> None:
    """The purge finds the document in the sealed outbox, and its copy is sealed too."""
    result = deliver(kyc_state, _customer_documents().as_bytes())
    ref = result.detail.split()[1].rstrip(":")
    address = agent_reply_address(kyc_state.config.desk, ref)
    deliver(kyc_state, _agent_mail(kyc_state, ref, KYC_AGENT, "#kyc approve"), (address,))
    assert "outbox" in copies(kyc_state.config, MARKER)
    config = ["--config", str(kyc_state.config.path)]
    assert main([*config, "kyc", "purge", "--at", "2099-01-01T00:00:00"]) == 0
    assert copies(kyc_state.config, MARKER) == []
    assert all(raw.startswith(MAGIC) for raw in _stored(kyc_state))
