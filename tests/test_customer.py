"""A customer's right of access and right to erasure (issue 16): `ticketd customer export` writes
everything held about them in clear, audited; `ticketd customer erase` leaves nothing of them in
any file, blob or row (tests/test_retention.py's `copies`), a pseudonym in the statistics, no
automatic mail to them afterwards, and resumes after a crash.
"""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path

import pytest
from sqlalchemy import select

from domain.clock import FixedClock
from outbound.addresses import agent_reply_address
from outbound.sender import Sender
from outbound.transports import make_transport
from storage.db import Database
from storage.models import AccessAudit, Erasure, JournalEntry, OutboxMail
from tests.daemon import Relay
from tests.helpers import customer_mail
from tests.test_kyc import KYC_AGENT, OTHER_AGENT
from tests.test_retention import (
    MARKER,
    _approved_with_copies,
    _cli,
    copies,
)
from tests.test_sla import CUSTOMER
from tests.test_sla_survey import answer, closed_and_surveyed
from tests.test_sla_survey import desk as desk  # a fixture
from tests.test_threading import deliver
from ticketd import erasure
from ticketd.cli import main
from ticketd.state import State

DENIZ = "deniz@musteri.example"
CAN = "can@musteri.com.tr"


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _state_copies(state_root: Path, config: object, needle: bytes) -> list[str]:
    # The daemon's own log is standard error (journald in production), not ticketd's state.
    return [w for w in copies(config, needle) if w != "daemon.log"]  # type: ignore[arg-type]


def test_the_export_holds_everything_in_clear_then_the_record_without_the_purged_file(
    tmp_path: Path, relay: Relay
) -> None:
    daemon, ref = _approved_with_copies(tmp_path, relay)
    path = daemon.config_path
    try:
        out = tmp_path / "export"
        done = _cli(path, "customer", "export", DENIZ.upper(), "--to", str(out))
        assert done.returncode == 0, done.stderr
        files = _files(out)
        assert stat.S_IMODE(out.stat().st_mode) == 0o700
        assert all(stat.S_IMODE((out / f).stat().st_mode) == 0o600 for f in files)
        manifest = json.loads(files["manifest.json"])
        assert {f["path"] for f in manifest["files"]} == set(files) - {"manifest.json"}
        assert manifest["tickets"] == [ref] and manifest["customer"] == DENIZ
        [document] = manifest["documents"]
        assert files[document["file"]].startswith(MARKED_START)
        assert any(f.startswith(f"tickets/{ref}/raw/") for f in files)
        assert any(MARKER in data for name, data in files.items() if name.endswith(".jpg"))
        messages = json.loads(files[f"tickets/{ref}/messages.json"])
        assert "Kimliğimin fotoğrafı ekte." in [m["text"] for m in messages]
        status = _cli(path, "kyc", "status", DENIZ, "--json")
        states = (
            [row["state"] for row in json.loads(status.stdout)] if status.returncode == 0 else []
        )
        verification = json.loads(files["verification.json"])
        assert [verification["state"]] == states if verification else states == []
        assert "decide" in {row["action"] for row in json.loads(files["audit.json"])}
        assert any(f.startswith(f"tickets/{ref}/sent/") for f in files)  # what we sent them
        # An existing non-empty folder, and a symbolic link, are refused.
        assert _cli(path, "customer", "export", DENIZ, "--to", str(out)).returncode == 1
        (tmp_path / "link").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
        refused = _cli(path, "customer", "export", DENIZ, "--to", str(tmp_path / "link"))
        assert refused.returncode == 1 and "symbolic link" in refused.stderr
        assert not (tmp_path / "elsewhere").exists()

        at = "2099-01-01T00:00:00"
        assert _cli(path, "kyc", "purge", "--at", at).returncode == 0
        assert not any(MARKER in data for data in _files(out).values())  # its copies went
        after = tmp_path / "after"
        assert _cli(path, "customer", "export", DENIZ, "--to", str(after)).returncode == 0
        again = _files(after)
        assert not any(MARKER in data for data in again.values())
        [record] = json.loads(again["manifest.json"])["documents"]
        assert record["file"] is None and record["purged_at"] and record["state"] == "approved"
        assert record["sha256"] == document["sha256"]
    finally:
        assert daemon.stop() == 0, daemon.log()
    db = Database(daemon.config.storage.database)
    try:
        with db.read() as session:
            actions = [a.action for a in session.scalars(select(AccessAudit))]
    finally:
        db.dispose()
    # The document mailed with the identity agent's notification, then the two exports.
    assert actions == ["document mailed to agent", "customer export", "customer export"]


def test_an_agent_outside_the_tickets_queue_is_refused_by_each_content_command(
    kyc_state: State, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.test_kyc import JPEG, _agent_mail, kyc_mail

    result = deliver(kyc_state, kyc_mail([("kimlik.jpg", "image/jpeg", JPEG)]))
    ref = result.detail.split()[1].rstrip(":")
    config = ["--config", str(kyc_state.config.path)]
    customer = "ayse@musteri.com.tr"
    out = kyc_state.config.path.parent / "out"
    show = [*config, "tickets", "show", ref, "--json"]
    export = [*config, "customer", "export", customer, "--to", str(out)]
    kyc = [*config, "kyc", "export", ref, "--to", str(out / "kyc")]
    assert main([*show, "--agent", OTHER_AGENT]) == 1
    assert main([*export, "--agent", OTHER_AGENT]) == 1 and not out.exists()
    assert main([*kyc, "--agent", OTHER_AGENT]) == 1
    assert main([*export, "--agent", "x@y.z"]) == 1
    assert "not a configured agent" in capsys.readouterr().err
    assert main([*show, "--agent", KYC_AGENT]) == 0
    assert main(show) == 0  # the admin, audited too
    assert main([*export, "--agent", KYC_AGENT]) == 0
    # Moved to the other queue, the ticket is out of the identity agent's area, documents and all.
    address = agent_reply_address(kyc_state.config.desk, ref)
    moved = deliver(
        kyc_state, _agent_mail(kyc_state, ref, KYC_AGENT, "#kategori payment"), (address,)
    )
    assert "#category payment" in moved.detail, moved.detail
    assert main([*show, "--agent", KYC_AGENT]) == 1
    assert main([*kyc, "--agent", KYC_AGENT]) == 1 and not (out / "kyc").exists()
    with kyc_state.db.read() as session:
        rows = [(a.actor, a.action) for a in session.scalars(select(AccessAudit))]
    assert rows == [
        (KYC_AGENT, "document mailed to agent"),  # with the notification of the documents
        (OTHER_AGENT, "tickets show refused"),
        (OTHER_AGENT, "customer export refused"),
        (KYC_AGENT, "tickets show"),
        ("admin (command line)", "tickets show"),
        (KYC_AGENT, "customer export"),
        (KYC_AGENT, "tickets show refused"),
        (KYC_AGENT, "kyc export refused"),
    ]


MARKED_START = b"\xff\xd8\xff\xfe"  # SOI, then the comment segment with the marker


def _erasable(state: State, clock: FixedClock) -> str:
    """Can's ticket, answered, closed and scored, and a second message ignored as a copy."""
    ref, survey_id = closed_and_surveyed(state, clock)
    answer(state, ref, survey_id, "4 - iyiydi, Can Demir")
    first = customer_mail(sender=CUSTOMER, body="Bir daha yazıyorum", message_id="<again@musteri>")
    deliver(state, first)
    assert deliver(state, first).state == "ignored"  # the same message again: a copy
    return ref


def test_erase_leaves_nothing_of_the_customer_and_a_pseudonym_in_the_statistics(
    desk: State, clock: FixedClock, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = _erasable(desk, clock)
    config = ["--config", str(desk.config.path)]
    for needle in (CAN.encode(), b"Can Demir"):
        assert copies(desk.config, needle)
    assert main([*config, "customer", "erase", CAN, "--dry-run"]) == 0
    assert "2 ticket(s)" in capsys.readouterr().out
    assert copies(desk.config, CAN.encode())  # a dry run changes nothing

    assert main([*config, "customer", "erase", CAN.upper()]) == 0
    for needle in (CAN.encode(), b"Can Demir", b"Para \xc3\xa7ekme talebim bekliyor"):
        assert copies(desk.config, needle) == [], needle
    capsys.readouterr()
    assert main([*config, "tickets", "list", "--json"]) == 0
    listing = capsys.readouterr().out
    assert CAN not in listing and "Can" not in listing
    rows = json.loads(listing)
    [pseudonym] = {row["customer"] for row in rows}
    assert pseudonym.startswith("erased-") and ref in {row["ref"] for row in rows}
    assert main([*config, "survey", "report", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["per_queue"] == [{"queue": "odeme", "average": 4.0, "count": 1}]
    with desk.db.read() as session:
        [row] = session.scalars(select(Erasure)).all()
        assert (row.state, row.address, row.pseudonym) == ("done", None, pseudonym)
        assert [a.action for a in session.scalars(select(AccessAudit))] == ["customer erase"]
        assert {e.raw_state for e in session.scalars(select(JournalEntry))} == {"removed"}

    # They write again: a ticket (a person's mail always gets one), but no automatic answer.
    result = deliver(desk, customer_mail(sender=CUSTOMER, body="Yeni bir sorum var"))
    assert result.state == "done"
    with desk.db.read() as session:
        acks = session.scalars(select(OutboxMail).where(OutboxMail.recipient == CAN)).all()
    assert acks == []
    assert main([*config, "customer", "erase", CAN]) == 0  # and that goes the same way
    assert copies(desk.config, CAN.encode()) == []


def test_an_erasure_cut_short_is_finished_by_the_next_pass(
    desk: State, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    _erasable(desk, clock)
    config = ["--config", str(desk.config.path)]

    def crash(*args: object) -> None:
        raise KeyboardInterrupt  # the process dies after step 1 (the started row)

    monkeypatch.setattr(erasure, "_erase_rows", crash)
    with pytest.raises(KeyboardInterrupt):
        erasure.erase_customer(desk.db, desk.config, desk.blobs, clock.now(), CAN)
    monkeypatch.undo()
    with desk.db.read() as session:
        [row] = session.scalars(select(Erasure)).all()
        pseudonym = row.pseudonym
        assert (row.state, row.address) == ("started", CAN)
    assert copies(desk.config, CAN.encode())
    assert main([*config, "retention", "run"]) == 0  # the daemon's daily pass does the same
    assert copies(desk.config, CAN.encode()) == []
    with desk.db.read() as session:
        assert session.scalars(select(Erasure.pseudonym)).all() == [pseudonym]


def test_blobs_left_by_a_crash_after_the_erasure_committed_go_at_the_next_pass(
    desk: State, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    _erasable(desk, clock)
    with desk.db.read() as session:
        keys = set(session.scalars(select(JournalEntry.blob_key)))
    monkeypatch.setattr(erasure, "finish", lambda *args: 0)  # died before deleting the files
    erasure.erase_customer(desk.db, desk.config, desk.blobs, clock.now(), CAN)
    monkeypatch.undo()
    assert any(desk.blobs.exists(key) for key in keys)
    assert main(["--config", str(desk.config.path), "retention", "run"]) == 0
    assert not any(desk.blobs.exists(key) for key in keys)


def _database_files(state: State) -> bytes:
    """The SQLite database as it is on disk, its write-ahead log with it."""
    path = state.config.path.parent / "var"
    return b"".join(p.read_bytes() for p in sorted(path.glob("ticketd.sqlite3*")))


def test_erase_leaves_no_word_of_theirs_in_the_search_index(
    desk: State, capsys: pytest.CaptureFixture[str]
) -> None:
    """The full-text index (FTS5, external content) keeps the words of a changed row in its
    segments until they are merged: the erasure must leave none of them in the file."""
    mail = customer_mail(
        sender=CUSTOMER,
        subject="Kurbağacık çekim talebi",
        body="Parolam zqvebercetxy, hesabım 4417123456789113",
    )
    assert deliver(desk, mail).state == "done"
    # Words as the index holds them: folded, and without a first letter another term could
    # share (a term is written after the prefix it shares with the one before it).
    words = (b"qvebercetxy", b"urbagacik", b"417123456789113")
    assert all(word in _database_files(desk) for word in words)
    capsys.readouterr()
    assert main(["--config", str(desk.config.path), "customer", "erase", CAN]) == 0
    held = _database_files(desk)
    assert [word for word in words if word in held] == []


def test_erase_rewrites_the_mail_ticketd_left_in_its_maildir(
    desk: State, clock: FixedClock, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without a relay the acknowledgement to them and the notification about them are files in
    `smtp_out.maildir`: the erasure leaves nothing of them there, files and modes kept."""
    mail = customer_mail(sender=CUSTOMER, body="Hesabım kilitlendi, IBAN TR3300061005196")
    assert deliver(desk, mail).state == "done"
    sender = Sender(desk.db, make_transport(desk.config.smtp_out), clock)
    assert {r.state for r in asyncio.run(sender.send_due())} == {"sent"}
    maildir = desk.config.smtp_out.maildir
    read = sorted((maildir / "new").iterdir())[0]
    read.rename(maildir / "cur" / f"{read.name}:2,S")  # the reader took one
    before = sorted(p.name for p in maildir.rglob("ticketd-*"))
    needles = (CAN.encode(), b"Can Demir", b"TR3300061005196")
    for needle in needles:
        assert [w for w in copies(desk.config, needle) if w.startswith("var/outbox/")], needle
    capsys.readouterr()
    erase = ["--config", str(desk.config.path), "customer", "erase", CAN]
    kept = {p: p.read_bytes() for p in maildir.rglob("ticketd-*")}
    assert main([*erase, "--dry-run"]) == 0
    assert "2 file(s) in the Maildir would be rewritten" in capsys.readouterr().out
    assert {p: p.read_bytes() for p in maildir.rglob("ticketd-*")} == kept
    assert main(erase) == 0
    assert "2 file(s) in the Maildir rewritten" in capsys.readouterr().out
    for needle in needles:
        assert copies(desk.config, needle) == [], needle
    files = [p for p in maildir.rglob("*") if p.is_file()]
    assert sorted(p.name for p in files if p.name.startswith("ticketd-")) == before
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {"0o640"}
    assert list((maildir / "tmp").iterdir()) == []


def test_erase_of_an_address_nothing_is_held_about_says_so_and_exits_1(
    desk: State, clock: FixedClock, capsys: pytest.CaptureFixture[str]
) -> None:
    """As `tickets show` of an unknown reference: a message on standard error, exit 1; and
    nothing is recorded (no erasure row, so no mail to a mistyped address is suppressed)."""
    deliver(desk, customer_mail(sender=CUSTOMER))  # somebody else's data
    config = ["--config", str(desk.config.path)]
    unknown = "unknown@nowhere.example"
    for extra in ([], ["--dry-run"], ["--json"]):
        assert main([*config, "customer", "erase", unknown, *extra]) == 1, extra
        out, err = capsys.readouterr()
        assert out == "" and f"no data found for {unknown}: nothing erased" in err, extra
    with desk.db.read() as session:
        assert session.scalars(select(Erasure)).all() == []
        assert session.scalars(select(AccessAudit)).all() == []
    # A customer erased before, with nothing new since: done already, not an error.
    assert main([*config, "customer", "erase", CAN]) == 0
    capsys.readouterr()
    assert main([*config, "customer", "erase", CAN]) == 0
    out, err = capsys.readouterr()
    assert "nothing more held" in out and err == ""
