"""The raw journal is encrypted at rest: it holds identity documents inside the messages."""

from __future__ import annotations

import base64
import os
import pickle
from pathlib import Path

import pytest
from sqlalchemy import select

from ingest.journal import Arrival
from storage.blobs import BlobStore
from storage.models import JournalEntry
from storage.sealed_blobs import SealedBlobError, SealedBlobStore
from tests.helpers import customer_mail
from ticketd.state import State

MARKER = b"TC-KIMLIK-12345678901-GIZLI"


def every_blob_file(root: Path) -> list[bytes]:
    return [path.read_bytes() for path in root.rglob("*") if path.is_file()]


def test_no_message_is_on_disk_in_clear(state: State) -> None:
    raw = customer_mail(body="Kimlik numaram " + MARKER.decode())
    journal_id = state.journal.accept(Arrival(raw=raw, source="test"))
    files = every_blob_file(state.config.storage.blobs)
    assert files
    for content in files:
        assert MARKER not in content
        assert base64.b64encode(MARKER)[:20] not in content
    with state.db.read() as session:
        entry = session.get(JournalEntry, journal_id)
        assert entry is not None
        key = entry.blob_key
    assert state.blobs.get(key) == raw  # the worker reads it back exactly
    [result] = state.worker.drain()
    assert result.state == "done"
    assert state.config.kyc.key_file.stat().st_mode & 0o077 == 0


def test_a_tampered_journal_blob_is_quarantined_not_misread(state: State) -> None:
    journal_id = state.journal.accept(Arrival(raw=customer_mail(), source="test"))
    with state.db.read() as session:
        key = session.scalar(select(JournalEntry.blob_key).where(JournalEntry.id == journal_id))
    assert key is not None
    path = state.blobs.path_for(key)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(SealedBlobError):
        state.blobs.get(key)
    [result] = state.worker.drain()
    assert result.state == "quarantined" and "SealedBlobError" in result.detail


def _tamper(state: State, journal_id: int) -> None:
    with state.db.read() as session:
        key = session.scalar(select(JournalEntry.blob_key).where(JournalEntry.id == journal_id))
    assert key is not None
    path = state.blobs.path_for(key)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))


def test_the_parsing_process_reads_the_blobs_itself_and_is_sent_no_key(state: State) -> None:
    """The daemon's parsing process reads each message from the blob store (issue 19: the
    daemon no longer reads, decrypts and pickles a message for it). The store reaches it as
    its folder and its key file's path, never as the keys."""
    assert isinstance(state.blobs, SealedBlobStore)
    sent = pickle.dumps(state.blobs)
    keys = state.blobs.keyring.data.keys
    assert keys and all(entry.key not in sent for entry in keys)
    with pytest.raises(TypeError, match="held in memory only"):
        pickle.dumps(SealedBlobStore(state.config.storage.blobs, os.urandom(32)))
    state.isolate()
    first = state.journal.accept(Arrival(raw=customer_mail(subject="bir"), source="test"))
    second = state.journal.accept(Arrival(raw=customer_mail(subject="iki"), source="test"))
    _tamper(state, second)
    results = {result.journal_id: result for result in state.worker.drain()}
    assert results[first].state == "done", results[first].detail
    assert results[second].state == "quarantined" and "SealedBlobError" in results[second].detail
    assert "failed authentication" in results[second].detail


def test_blobs_written_before_sealing_are_still_read(state: State) -> None:
    raw = customer_mail(subject="eski")
    key = BlobStore(state.config.storage.blobs).put(raw)
    assert isinstance(state.blobs, SealedBlobStore)
    assert state.blobs.get(key) == raw
