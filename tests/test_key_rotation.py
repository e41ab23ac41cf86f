"""Key rotation (issue 6): a new key seals, everything is re-encrypted, old keys are retired,
and the processes that share the key file keep working throughout.

The journal and the documents are made by the real journal and worker (SQLite on disk); "another
process" is a second `open_state` on the same configuration, with its own view of the key file,
and in the last test a real `ticketd run` beside real `ticketd kyc rotate-key` and `ticketd
ingest` processes.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import smtplib
import stat
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select

from domain.clock import FixedClock
from domain.config import load_config
from ingest.journal import Arrival
from storage.documents import DocumentStore
from storage.keyring import NONCE_SIZE, KeyFileError, Keyring, read_keyring
from storage.models import JOURNAL_DONE, Document, JournalEntry
from storage.rotation import RotationError, begin, retire, rotate, stale
from storage.sealed_blobs import MAGIC, SealedBlobError, SealedBlobStore
from tests.daemon import DaemonProcess
from tests.helpers import DESK, customer_mail, write_config
from tests.test_kyc import JPEG, PDF, PNG, TEAM, kyc_mail
from tests.test_sealed_journal import MARKER
from tests.test_threading import deliver
from ticketd.state import State, open_state

LATER = timedelta(hours=2)  # past the retirement grace


def _sealed(state: State) -> SealedBlobStore:
    assert isinstance(state.blobs, SealedBlobStore)
    return state.blobs


def _documents(state: State) -> DocumentStore:
    return DocumentStore.open(state.blobs, state.config.kyc.key_file)


def _blob_files(state: State) -> list[Path]:
    return [p for p in state.config.storage.blobs.rglob("*") if p.is_file()]


def _no_clear_bytes(state: State) -> None:
    """The scan of tests/test_sealed_journal.py, and the documents' own bytes."""
    for path in _blob_files(state):
        content = path.read_bytes()
        assert MARKER not in content
        for payload in (JPEG, PNG, PDF):
            assert payload[:16] not in content and payload[-32:] not in content
        assert b"KIMLIK-ON-YUZ" not in content and b"FATURA ADRES" not in content


def _every_blob_reads(state: State) -> None:
    documents = _documents(state)
    with state.db.read() as session:
        journal = list(session.execute(select(JournalEntry.blob_key)).scalars())
        docs = [(k, s) for k, s in session.execute(select(Document.blob_key, Document.sha256))]
    for key in journal:
        state.blobs.get(key)
    for blob_key, sha256 in docs:
        assert blob_key is not None
        assert documents.get(blob_key, sha256) in (JPEG, PNG, PDF)


def _fill(state: State) -> None:
    """A journal of plain mail and identity documents, some sealed in the old formats."""
    for number in range(3):
        deliver(state, customer_mail(subject=f"Talep {number}", body=f"{MARKER.decode()} {number}"))
    deliver(
        state,
        kyc_mail([("kimlik.jpg", "image/jpeg", JPEG), ("fatura.pdf", "application/pdf", PDF)]),
    )
    deliver(state, kyc_mail([("kimlik.png", "image/png", PNG)], subject="Kimlik arka yüz"))
    # A blob from before the journal was sealed, and one from the first sealed format.
    legacy = customer_mail(subject="eski", body=MARKER.decode() + " eski")
    deliver(state, legacy)
    path = state.blobs.path_for(_journal_key(state, legacy))
    path.write_bytes(legacy)
    v1 = customer_mail(subject="TKDSEAL1", body=MARKER.decode() + " v1")
    deliver(state, v1)
    key = state.config.kyc.key_file.read_bytes()
    address = _journal_key(state, v1)
    nonce = os.urandom(NONCE_SIZE)
    state.blobs.path_for(address).write_bytes(
        MAGIC + nonce + AESGCM(key).encrypt(nonce, v1, address.encode())
    )


def _journal_key(state: State, raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def test_rotation_re_encrypts_everything_and_retire_leaves_only_the_new_key(
    kyc_state: State, clock: FixedClock
) -> None:
    _fill(kyc_state)
    key_file = kyc_state.config.kyc.key_file
    old_key = key_file.read_bytes()
    assert len(old_key) == 32  # the key file as it was before rotation existed
    blobs, documents = _sealed(kyc_state), _documents(kyc_state)
    old_id = blobs.keyring.data.write

    report = rotate(kyc_state.db, blobs, documents, clock.now())
    assert report.finished and not report.resumed and not report.failed
    assert report.documents == 3 and report.blobs == 7  # 7 journal blobs, all in old formats
    new_id = report.key
    assert new_id != old_id
    data, _ = read_keyring(key_file)
    assert data.write == new_id and data.rotating is None
    assert {k.id for k in data.keys} == {old_id, new_id}
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stale(kyc_state.db, blobs, documents) == []
    _every_blob_reads(kyc_state)
    _no_clear_bytes(kyc_state)  # the blob that was in clear is sealed now

    # Retiring right away is refused: a message being processed may still hold the old key.
    with pytest.raises(RotationError, match=f"{key_file}: key {old_id} stopped sealing"):
        retire(kyc_state.db, blobs, documents, clock.now())
    report = retire(kyc_state.db, blobs, documents, clock.now() + LATER)
    assert report.retired == [old_id]
    data, _ = read_keyring(key_file)
    assert [k.id for k in data.keys] == [new_id]
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    _every_blob_reads(kyc_state)

    # Nothing opens with the old key any more, not the outer seal and not a document.
    with_old_key = SealedBlobStore(kyc_state.config.storage.blobs, old_key)
    for path in _blob_files(kyc_state):
        with pytest.raises(SealedBlobError):
            with_old_key.get(path.name)


def test_an_interrupted_rotation_runs_again_and_completes(
    kyc_state: State, clock: FixedClock
) -> None:
    _fill(kyc_state)
    blobs, documents = _sealed(kyc_state), _documents(kyc_state)
    rewritten: list[str] = []

    def crash_after_four(name: str) -> None:
        rewritten.append(name)
        if len(rewritten) == 4:
            raise KeyboardInterrupt  # the admin's Ctrl-C, or a crash

    with pytest.raises(KeyboardInterrupt):
        rotate(kyc_state.db, blobs, documents, clock.now(), on_rewritten=crash_after_four)
    data, _ = read_keyring(kyc_state.config.kyc.key_file)
    assert data.rotating == data.write  # marked unfinished
    assert len(stale(kyc_state.db, blobs, documents)) == 10 - 4
    _every_blob_reads(kyc_state)  # half old key, half new: all readable meanwhile
    with pytest.raises(RotationError, match="not finished: run `ticketd kyc rotate-key`"):
        retire(kyc_state.db, blobs, documents, clock.now() + LATER)

    report = rotate(kyc_state.db, blobs, documents, clock.now())
    assert report.resumed and report.key == data.write  # no third key
    assert report.documents + report.blobs == 6 and report.already == 4
    assert report.finished and stale(kyc_state.db, blobs, documents) == []
    assert len(read_keyring(kyc_state.config.kyc.key_file)[0].keys) == 2
    assert retire(kyc_state.db, blobs, documents, clock.now() + LATER).finished
    _every_blob_reads(kyc_state)
    _no_clear_bytes(kyc_state)


def test_a_process_with_the_old_keyring_reads_and_writes_under_the_new_key(
    kyc_config: Path, kyc_state: State, clock: FixedClock
) -> None:
    deliver(kyc_state, customer_mail(subject="önce"))
    # A second process (a daemon): its own view of the key file, loaded before the rotation.
    other = open_state(load_config(kyc_config), clock=clock)
    try:
        old_id = _sealed(other).keyring.data.write
        report = rotate(kyc_state.db, _sealed(kyc_state), _documents(kyc_state), clock.now())
        # The admin's side journals a message and documents under the new key...
        kyc_state.journal.accept(Arrival(raw=customer_mail(subject="sonra"), source="test"))
        kyc_state.journal.accept(
            Arrival(raw=kyc_mail([("kimlik.jpg", "image/jpeg", JPEG)]), source="test")
        )
        # ...and the other process, meeting key ids it does not know, re-reads the key file.
        assert _sealed(other).keyring.data.write == old_id
        results = other.worker.drain()
        assert [r.state for r in results] == [JOURNAL_DONE] * 2, results
        # What it writes now is sealed with the new key (it checks the file before sealing).
        raw = customer_mail(subject="yine")
        other.journal.accept(Arrival(raw=raw, source="test"))
        assert _sealed(other).sealed_with(_journal_key(other, raw)) == report.key
        assert [r.state for r in other.worker.drain()] == [JOURNAL_DONE]
        [document] = _documents_rows(other)
        assert _documents(other).sealed_with(document[0]) == report.key
        # After retiring, a process still holding the old key drops it when it next writes.
        retire(kyc_state.db, _sealed(kyc_state), _documents(kyc_state), clock.now() + LATER)
        assert deliver(other, customer_mail(subject="en son")).state == JOURNAL_DONE
        assert [k.id for k in _sealed(other).keyring.data.keys] == [report.key]
    finally:
        other.close()


def _documents_rows(state: State) -> list[tuple[str, str]]:
    with state.db.read() as session:
        rows = session.execute(select(Document.blob_key, Document.sha256))
        return [(k, s) for k, s in rows if k is not None]


def test_a_blob_sealed_while_the_rotation_begins_is_sealed_again(
    kyc_state: State, clock: FixedClock
) -> None:
    """The writer checked the key file, then a rotation began before its blob was on disk: the
    rotation's pass may already be past that folder, so the writer seals it again itself."""
    blobs = _sealed(kyc_state)
    keyring = blobs.keyring
    original = keyring.writer
    rotated: list[str] = []

    def writer_then_rotation() -> tuple[str, AESGCM]:
        sealing = original()
        if not rotated:
            other = Keyring.open(kyc_state.config.kyc.key_file)
            rotated.append(begin(other, clock.now())[0].write)
        return sealing

    keyring.writer = writer_then_rotation  # type: ignore[method-assign]
    raw = customer_mail(subject="tam o anda")
    key = blobs.put(raw)
    assert blobs.sealed_with(key) == rotated[0]
    assert blobs.get(key) == raw


def test_key_file_errors_name_the_file_and_the_reason(tmp_path: Path, clock: FixedClock) -> None:
    key_file = tmp_path / "kyc.key"
    Keyring.open(key_file)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key_file.chmod(0o644)
    with pytest.raises(KeyFileError, match=rf"{key_file}: .*owner only \(0600\), it is 0644"):
        Keyring.open(key_file)
    key_file.chmod(0o600)
    key_file.write_bytes(b"short")
    with pytest.raises(KeyFileError, match=rf"{key_file}: a key file holds exactly 32 bytes"):
        Keyring.open(key_file)
    key_file.write_text('{"format": "ticketd-keyring", "version": 1, "write": "00", "keys": []}')
    with pytest.raises(KeyFileError, match=rf"{key_file}: the write key 00 is not in"):
        Keyring.open(key_file)

    # The command line says the same, without a traceback; the key itself never appears.
    (tmp_path / "desk").mkdir()
    config = write_config(tmp_path / "desk", extra=f'[kyc]\nkey_file = "{key_file}"\n')
    result = _cli(config, "kyc", "keys")
    assert result.returncode == 1 and f"{key_file}: the write key 00" in result.stderr


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ticketd.cli", "--config", str(config), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )


def _desk_configs(tmp_path: Path, count: int, database: str | None = None) -> list[Path]:
    """Configurations of `count` daemons sharing a database, a blob folder and a key file."""
    shared = tmp_path / "shared"
    shared.mkdir()
    paths = []
    for number in range(count):
        folder = tmp_path / f"desk{number}"
        folder.mkdir()
        extra = '[smtp_out]\nmaildir = "var/outbox"\n\n' + TEAM
        extra += f'\n[kyc]\nkey_file = "{shared / "kyc.key"}"\n'
        path = write_config(folder, database=database, extra=extra)
        text = path.read_text().replace('blobs = "var/blobs"', f'blobs = "{shared / "blobs"}"')
        path.write_text(text)
        paths.append(path)
    return paths


def _through_a_rotation(configs: list[Path]) -> None:
    """The daemons receive mail over SMTP all through `ticketd kyc rotate-key` (another
    process), then read a message `ticketd ingest` sealed under the new key, keep working after
    the old key is retired, and every message becomes a ticket."""
    daemons = [DaemonProcess(path) for path in configs]
    for daemon in daemons:
        daemon.start()
    sent: list[int] = []

    def send(numbers: range) -> None:
        clients = [smtplib.SMTP("127.0.0.1", d.port, timeout=30) for d in daemons]
        try:
            for number in numbers:
                if number % 5 == 0:
                    raw = kyc_mail(
                        [("kimlik.jpg", "image/jpeg", JPEG)], subject=f"Kimlik belgelerim {number}"
                    )
                else:
                    raw = customer_mail(
                        sender=f"musteri{number}@example.net",
                        subject=f"Talep {number}",
                        body=f"{MARKER.decode()} {number}",
                    )
                clients[number % len(clients)].sendmail("musteri@example.net", [DESK], raw)
                sent.append(number)
        finally:
            for client in clients:
                client.quit()

    config_path = configs[0]
    try:
        send(range(10))
        during = threading.Thread(target=send, args=(range(10, 40),))
        during.start()
        rotation = _cli(config_path, "kyc", "rotate-key", "--json")
        during.join(timeout=120)
        assert rotation.returncode == 0, rotation.stderr
        report = json.loads(rotation.stdout)
        assert report["finished"] and not report["failed"]
        new_id = report["key"]
        # A message journaled by another process under the new key, read by a daemon.
        message = config_path.parent / "ingest.eml"
        message.write_bytes(customer_mail(subject="ingest sonrası", body=MARKER.decode()))
        ingest = _cli(config_path, "ingest", str(message))
        assert ingest.returncode == 0, ingest.stderr
        # SIGHUP re-reads the key file at once (it is re-read anyway when it changes).
        assert daemons[-1].process is not None
        daemons[-1].process.send_signal(signal.SIGHUP)
        daemons[-1].wait_until(
            lambda: f"sealing with key {new_id}" in daemons[-1].log(), what="the SIGHUP reload"
        )

        state = open_state(load_config(config_path))
        try:
            daemons[0].wait_until(lambda: _all_done(state, 41), timeout=120, what="41 done")
            # Two hours on (the retirement grace), from this process: retire the old key.
            state.clock = FixedClock(state.clock.now() + LATER)
            retire(state.db, _sealed(state), _documents(state), state.clock.now())
            send(range(40, 45))
            daemons[0].wait_until(lambda: _all_done(state, 46), timeout=60, what="46 done")
            with state.db.read() as session:
                keys = session.scalars(select(JournalEntry.blob_key)).all()
                assert len(session.scalars(select(Document.id)).all()) == 9  # every fifth mail
            for key in keys:
                assert _sealed(state).sealed_with(key) == new_id
            assert stale(state.db, _sealed(state), _documents(state)) == []
            _every_blob_reads(state)
            _no_clear_bytes(state)
        finally:
            state.close()
        keys_listed = _cli(config_path, "kyc", "keys", "--json")
        assert [k["id"] for k in json.loads(keys_listed.stdout)] == [new_id]
        for daemon in daemons:
            assert "Traceback" not in daemon.log()
    finally:
        codes = [daemon.stop() for daemon in daemons if daemon.process is not None]
    assert codes == [0] * len(daemons), [d.log() for d in daemons]
    assert len(sent) == 45


@pytest.mark.slow
def test_a_running_daemon_keeps_taking_mail_through_a_rotation(tmp_path: Path) -> None:
    _through_a_rotation(_desk_configs(tmp_path, 1))


@pytest.mark.slow
@pytest.mark.postgresql
def test_two_daemons_on_postgresql_keep_taking_mail_through_a_rotation(
    tmp_path: Path, pg_database: str
) -> None:
    _through_a_rotation(_desk_configs(tmp_path, 2, database=pg_database))


def _all_done(state: State, count: int) -> bool:
    with state.db.read() as session:
        states = session.scalars(select(JournalEntry.state)).all()
    assert "quarantined" not in states, states
    return len(states) == count and all(s == JOURNAL_DONE for s in states)
