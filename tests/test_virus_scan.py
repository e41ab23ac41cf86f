"""Virus scanning with a real clamd (issue 6): the client, the worker's policy, the customer told.

clamd is started by the `clamd` fixture (tests/clamd.py) with one signature the test writes, for
the EICAR test string. Mail goes through the journal and the worker as in the daemon, with a
clock the test moves; the daemon test at the end sends over SMTP to `ticketd run`.
"""

from __future__ import annotations

import json
import re
import smtplib
import socket
import urllib.request
from datetime import timedelta
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import select

from domain.clock import FixedClock
from domain.config_kyc import ClamdAddress
from ingest.journal import Arrival
from ingest.virus_scan import ScannerUnavailable, ping, scan
from outbound.addresses import agent_reply_address
from storage.db import Database
from storage.models import Document, JournalEntry, OutboxMail, Ticket
from tests.clamd import FOUND_AS, STREAM_MAX, Clamd, eicar
from tests.daemon import DaemonProcess, daemon_config
from tests.helpers import DESK, free_port, make_config
from tests.test_kyc import JPEG, KYC_AGENT, PDF, TEAM, kyc_mail
from ticketd.health import check
from ticketd.state import State, open_state

# A file with the test string inside, as a document would carry it (clamd finds it anywhere).
INFECTED_PDF = PDF.replace(b"% FATURA", b"% " + eicar() + b"\n% FATURA")


Row = TypeVar("Row")


def _state(
    tmp_path: Path, clock: FixedClock, clamd: Clamd, address: ClamdAddress | None = None
) -> State:
    extra = TEAM + clamd.kyc_section(address)
    return open_state(make_config(tmp_path, extra=extra), clock=clock)


def _rows(state: State, model: type[Row], *where: Any) -> list[Row]:
    with state.db.read() as session:
        rows = list(session.scalars(select(model).where(*where)))
        session.expunge_all()  # read after the transaction ends
        return rows


def _receive(state: State, raw: bytes) -> int:
    return state.journal.accept(Arrival(raw=raw, source="test", envelope_to=(DESK,)))


# The client against the real clamd.


def test_clean_infected_and_refused_streams(clamd: Clamd) -> None:
    for address in (clamd.unix, clamd.tcp):
        assert scan(address, JPEG) is None
        assert scan(address, eicar()) == FOUND_AS
        assert scan(address, INFECTED_PDF) == FOUND_AS
        ping(address)
    # Over clamd's StreamMaxLength clamd stops reading and answers ERROR: unavailable, never
    # clean, and marked as an answer (not an outage).
    with pytest.raises(ScannerUnavailable, match="size limit exceeded") as refused:
        scan(clamd.unix, b"\0" * (STREAM_MAX + 1))
    assert refused.value.reachable


def test_a_stopped_or_silent_clamd_is_unavailable(clamd: Clamd) -> None:
    clamd.stop()
    for address in (clamd.unix, clamd.tcp):
        with pytest.raises(ScannerUnavailable, match=re.escape(str(address))) as down:
            scan(address, JPEG)
        assert not down.value.reachable
    # A peer that accepts and never answers: the timeout ends the wait.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        address = ClamdAddress(host="127.0.0.1", port=silent.getsockname()[1])
        with pytest.raises(ScannerUnavailable, match=r"no answer within 0\.3 s") as quiet:
            scan(address, JPEG, timeout=0.3)
        assert not quiet.value.reachable


# The worker and the pipeline.


def test_an_infected_document_is_quarantined_never_stored_and_the_customer_told(
    tmp_path: Path, clock: FixedClock, clamd: Clamd, capsys: pytest.CaptureFixture[str]
) -> None:
    state = _state(tmp_path, clock, clamd)
    try:
        raw = kyc_mail(
            [("kimlik.jpg", "image/jpeg", JPEG), ("fatura.pdf", "application/pdf", INFECTED_PDF)]
        )
        journal_id = _receive(state, raw)
        [result] = state.worker.drain()
        assert result.state == "quarantined"
        assert f"fatura.pdf carries {FOUND_AS}" in result.detail
        assert "the sender was told" in result.detail
        # Nothing of the message is kept: no document (not even the clean JPEG), no ticket.
        assert _rows(state, Document) == [] and _rows(state, Ticket) == []
        [notice] = _rows(state, OutboxMail, OutboxMail.kind == "virus_found")
        assert notice.recipient == "ayse@musteri.com.tr" and notice.ticket_id is None
        assert "fatura.pdf" in notice.text and "zararlı içerik" in notice.text  # Turkish
        assert "virüs içeriyor" in notice.subject
        raw_notice = notice.raw.decode()
        assert "Auto-Submitted: auto-replied" in raw_notice and f"X-Loop: {DESK}" in raw_notice

        # The admin sees it in the quarantine, with the file and the signature.
        from ticketd.cli import main

        config = ["--config", str(state.config.path)]
        assert main([*config, "quarantine", "list", "--json"]) == 0
        [row] = json.loads(capsys.readouterr().out)
        assert row["id"] == journal_id and "fatura.pdf" in row["reason"]
        assert FOUND_AS in row["reason"]

        # Retried, it is scanned again: still infected, still held, the customer not told twice.
        clock.advance(timedelta(hours=2))
        assert main([*config, "quarantine", "retry", str(journal_id), "--now"]) == 0
        assert f"fatura.pdf carries {FOUND_AS}" in capsys.readouterr().out
        [entry] = _rows(state, JournalEntry)
        assert entry.state == "quarantined" and entry.attempts == 2
        assert len(_rows(state, OutboxMail, OutboxMail.kind == "virus_found")) == 1
        assert _rows(state, Document) == []

        # No blob on disk holds the test string in clear (the journal's copy is sealed).
        for path in (tmp_path / "var" / "blobs").rglob("*"):
            if path.is_file():
                assert eicar() not in path.read_bytes()
                assert eicar()[:20] not in path.read_bytes()
    finally:
        state.close()


def test_automatic_mail_and_repeats_are_held_without_more_notices(
    tmp_path: Path, clock: FixedClock, clamd: Clamd
) -> None:
    """The no-loop rules hold for the notice: an auto-reply is never answered, and a second
    infected mail within the interval gets no second notice."""
    state = _state(tmp_path, clock, clamd)
    try:
        files = [("fatura.pdf", "application/pdf", INFECTED_PDF)]
        auto = kyc_mail(files, subject="Otomatik yanıt: Kimlik belgelerim").replace(
            b"Subject:", b"Auto-Submitted: auto-replied\r\nSubject:", 1
        )
        _receive(state, auto)
        [held_auto] = state.worker.drain()
        assert held_auto.state == "quarantined" and FOUND_AS in held_auto.detail
        assert "automatic mail: sender not told" in held_auto.detail
        assert _rows(state, OutboxMail) == []

        _receive(state, kyc_mail(files))
        _receive(state, kyc_mail(files, body="Belgelerimi tekrar gönderiyorum."))
        first, second = state.worker.drain()
        assert "the sender was told" in first.detail
        assert second.state == "quarantined" and "sender not told: rate limit" in second.detail
        assert len(_rows(state, OutboxMail, OutboxMail.kind == "virus_found")) == 1
        assert _rows(state, Document) == []
    finally:
        state.close()


def test_a_follow_up_with_a_virus_is_noted_on_its_ticket_in_its_language(
    tmp_path: Path, clock: FixedClock, clamd: Clamd
) -> None:
    state = _state(tmp_path, clock, clamd)
    try:
        first = kyc_mail(
            [("passport.jpg", "image/jpeg", JPEG)],
            subject="Identity documents for KYC",
            body="Please find my identity documents attached for the verification.",
        )
        _receive(state, first)
        [opened] = state.worker.drain()
        assert opened.state == "done" and "documents: 1 stored" in opened.detail, opened.detail
        ref = opened.ticket_ref
        assert ref is not None
        clock.advance(timedelta(hours=1))
        follow_up = kyc_mail(
            [("statement.pdf", "application/pdf", INFECTED_PDF)],
            subject=f"Re: [#{ref}] Identity documents for KYC",
            body="Here is my proof of address as well.",
        )
        _receive(state, follow_up)
        [held] = state.worker.drain()
        assert held.state == "quarantined" and held.ticket_ref == ref
        assert f"statement.pdf carries {FOUND_AS}" in held.detail
        assert [d.filename for d in _rows(state, Document)] == ["passport.jpg"]
        [notice] = _rows(state, OutboxMail, OutboxMail.kind == "virus_found")
        assert notice.subject.startswith(f"[#{ref}]") and "harmful content" in notice.text
        from ticketd.views import show_ticket

        ticket = show_ticket(state.db, ref)
        assert ticket is not None
        notes = [str(m["text"]) for m in ticket["messages"] if m["kind"] == "system"]
        assert any("statement.pdf" in n and FOUND_AS in n for n in notes)
        # The held message itself is not part of the ticket.
        assert [m["subject"] for m in ticket["messages"] if m["kind"] == "customer"] == [
            "Identity documents for KYC"
        ]
        # The same mail again (sent to a second address, fetched by IMAP too), an hour later:
        # held again, but the sender was told once.
        clock.advance(timedelta(hours=1))
        _receive(state, follow_up)
        [again] = state.worker.drain()
        assert again.state == "quarantined" and "sender not told again" in again.detail
        assert len(_rows(state, OutboxMail, OutboxMail.kind == "virus_found")) == 1
    finally:
        state.close()


def test_an_agent_answer_with_a_virus_is_not_relayed(
    tmp_path: Path, clock: FixedClock, clamd: Clamd
) -> None:
    state = _state(tmp_path, clock, clamd)
    try:
        _receive(state, kyc_mail([("kimlik.jpg", "image/jpeg", JPEG)]))
        [opened] = state.worker.drain()
        assert opened.ticket_ref is not None
        address = agent_reply_address(state.config.desk, opened.ticket_ref)
        answer = EmailMessage()
        answer["From"] = KYC_AGENT
        answer["To"] = address
        answer["Subject"] = f"RE: [#{opened.ticket_ref}] Kimlik belgelerim"
        answer.set_content("Doldurmanız gereken form ekte.")
        answer.add_attachment(
            INFECTED_PDF, maintype="application", subtype="pdf", filename="form.pdf"
        )
        before = len(_rows(state, OutboxMail))
        state.journal.accept(
            Arrival(raw=answer.as_bytes(policy=SMTP), source="test", envelope_to=(address,))
        )
        [held] = state.worker.drain()
        assert held.state == "quarantined" and "nothing relayed" in held.detail
        assert f"form.pdf carries {FOUND_AS}" in held.detail
        assert len(_rows(state, OutboxMail)) == before  # nothing went to the customer
    finally:
        state.close()


def test_clean_documents_pass_and_are_stored(
    tmp_path: Path, clock: FixedClock, clamd: Clamd
) -> None:
    state = _state(tmp_path, clock, clamd, clamd.tcp)
    try:
        files = [("kimlik.jpg", "image/jpeg", JPEG), ("fatura.pdf", "application/pdf", PDF)]
        _receive(state, kyc_mail(files))
        [result] = state.worker.drain()
        assert result.state == "done", result.detail
        assert "documents: 2 stored" in result.detail
        assert [d.detected_type for d in _rows(state, Document)] == ["jpeg", "pdf"]
    finally:
        state.close()


def test_documents_wait_while_clamd_is_down_and_go_through_when_it_is_back(
    tmp_path: Path, clock: FixedClock, clamd: Clamd, caplog: pytest.LogCaptureFixture
) -> None:
    state = _state(tmp_path, clock, clamd)
    try:
        clamd.stop()
        journal_id = _receive(state, kyc_mail([("kimlik.jpg", "image/jpeg", JPEG)]))
        with caplog.at_level("WARNING", logger="ticketd.worker"):
            [waiting] = state.worker.drain()
        assert waiting.state == "pending" and waiting.journal_id == journal_id
        assert str(clamd.unix) in waiting.detail
        assert any(str(clamd.unix) in r.getMessage() for r in caplog.records)
        [entry] = _rows(state, JournalEntry)
        assert entry.state == "pending" and entry.attempts == 0
        assert entry.reason is not None and entry.reason.startswith("waiting for the virus")
        assert _rows(state, Document) == [] and _rows(state, Ticket) == []
        assert _rows(state, OutboxMail) == []
        # `ticketd health` (the database only) says why the journal does not move.
        report = check(state.db, clock)
        [problem] = [p for p in report.problems if p.check == "virus_scanner"]
        assert str(clamd.unix) in problem.reason

        clamd.start()
        [result] = state.worker.drain()
        assert result.state == "done", result.detail
        assert [d.filename for d in _rows(state, Document)] == ["kimlik.jpg"]
        assert not [p for p in check(state.db, clock).problems if p.check == "virus_scanner"]
    finally:
        state.close()


def test_a_file_clamd_refuses_to_scan_is_quarantined_not_stored(
    tmp_path: Path, clock: FixedClock, clamd: Clamd
) -> None:
    state = _state(tmp_path, clock, clamd)
    try:
        big = JPEG[:-2] + b"\0" * (STREAM_MAX + 1) + b"\xff\xd9"  # under [kyc] max_file_size
        _receive(state, kyc_mail([("kimlik.jpg", "image/jpeg", big)]))
        [result] = state.worker.drain()
        assert result.state == "quarantined"
        assert "not scanned" in result.detail and "size limit exceeded" in result.detail
        assert _rows(state, Document) == [] and _rows(state, Ticket) == []
    finally:
        state.close()


def test_check_and_health_connect_ask_clamd(
    tmp_path: Path, clamd: Clamd, capsys: pytest.CaptureFixture[str]
) -> None:
    from ticketd.cli import EX_UNAVAILABLE, main

    open_state(make_config(tmp_path, extra=clamd.kyc_section())).close()  # a migrated database
    config = ["--config", str(tmp_path / "ticketd.toml")]
    assert main([*config, "check", "--connect"]) == 0
    assert f"clamd at {clamd.unix}: PONG" in capsys.readouterr().out
    assert main([*config, "health", "--connect"]) == 0
    clamd.stop()
    assert main([*config, "check", "--connect"]) == EX_UNAVAILABLE
    assert main([*config, "health", "--connect"]) == 1
    assert f"virus_scanner: clamd at {clamd.unix}" in capsys.readouterr().out


def test_without_a_scanner_nothing_is_scanned(tmp_path: Path, clock: FixedClock) -> None:
    """No `[kyc] clamd`: no scan, as before (the EICAR file is only a refused type here)."""
    state = open_state(make_config(tmp_path, extra=TEAM), clock=clock)
    try:
        _receive(state, kyc_mail([("kimlik.jpg", "image/jpeg", JPEG)]))
        [result] = state.worker.drain()
        assert result.state == "done" and "documents: 1 stored" in result.detail
    finally:
        state.close()


@pytest.mark.slow
def test_the_daemon_waits_for_clamd_and_logs_its_address(tmp_path: Path, clamd: Clamd) -> None:
    metrics = free_port()
    extra = TEAM + clamd.kyc_section() + f'\n[metrics]\nlisten = "127.0.0.1:{metrics}"\n'
    daemon = DaemonProcess(daemon_config(tmp_path, None, extra))
    gauge = f'ticketd_virus_scanner_up{{clamd="{clamd.unix}"}}'

    def scraped() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=10) as page:
            text: str = page.read().decode()
            return text

    db = Database(daemon.config.storage.database)
    clamd.stop()
    daemon.start()
    try:
        with smtplib.SMTP("127.0.0.1", daemon.port, timeout=30) as client:
            client.sendmail(
                "ayse@musteri.com.tr", [DESK], kyc_mail([("kimlik.jpg", "image/jpeg", JPEG)])
            )
        daemon.wait_until(
            lambda: "virus scanner unreachable" in daemon.log(), what="the clamd log line"
        )
        line = next(x for x in daemon.log().splitlines() if "virus scanner unreachable" in x)
        assert str(clamd.unix) in line
        with db.read() as session:
            assert session.scalar(select(JournalEntry.state)) == "pending"
            assert session.scalar(select(Document.id)) is None
        assert f"{gauge} 0.0" in scraped()

        clamd.start()
        # The worker backs off (2 s, 4 s, ... at most 60 s) and then finds clamd again.
        daemon.wait_until(
            lambda: "virus scanner reachable again" in daemon.log(), 90, "clamd found again"
        )

        def stored() -> bool:
            with db.read() as session:
                return session.scalar(select(Document.filename)) == "kimlik.jpg"

        daemon.wait_until(stored, what="the document stored")
        assert f"{gauge} 1.0" in scraped()
    finally:
        db.dispose()
        assert daemon.stop() == 0, daemon.log()


@pytest.mark.postgresql
def test_on_postgresql_too(
    tmp_path: Path, clock: FixedClock, clamd: Clamd, pg_database: str
) -> None:
    """The claim there happens before the scan (SKIP LOCKED, inside the transaction)."""
    extra = TEAM + clamd.kyc_section()
    state = open_state(make_config(tmp_path, database=pg_database, extra=extra), clock=clock)
    try:
        clamd.stop()
        _receive(state, kyc_mail([("kimlik.jpg", "image/jpeg", JPEG)]))
        [waiting] = state.worker.drain()
        assert waiting.state == "pending" and str(clamd.unix) in waiting.detail
        clamd.start()
        _receive(state, kyc_mail([("fatura.pdf", "application/pdf", INFECTED_PDF)]))
        clean, infected = state.worker.drain()
        assert clean.state == "done" and infected.state == "quarantined", infected.detail
        assert FOUND_AS in infected.detail
        assert [d.filename for d in _rows(state, Document)] == ["kimlik.jpg"]
    finally:
        state.close()
