"""Customers' verification states and the scheduled purge (issue 6).

Mail goes through the journal and the worker as in the daemon; the clock is a FixedClock the
tests move, and the scheduled job is the function APScheduler calls in the daemon. One test
runs the real daemon and sees its first housekeeping run mail a customer whose request expired.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import select

from domain.clock import FixedClock
from domain.config import ConfigError, load_config
from outbound.addresses import agent_reply_address, reply_address
from storage.models import Document, OutboxMail, TicketMessage, Verification
from tests.daemon import DaemonProcess, Relay, daemon_config
from tests.helpers import make_config
from tests.test_kyc import JPEG, KYC_AGENT, OTHER_AGENT, PDF, PNG, TEAM, _agent_mail, _ref, kyc_mail
from tests.test_threading import deliver
from ticketd.cli import main
from ticketd.documents_admin import audit
from ticketd.kyc_service import (
    JOB_ID,
    SCHEDULED_ACTOR,
    add_housekeeping_job,
    housekeeping,
    run_housekeeping,
)
from ticketd.state import State, open_state
from ticketd.verification_admin import request_from_command_line, verification_states

CUSTOMER = "ayse@musteri.com.tr"
SETTINGS = "\n[kyc]\nrequest_expiry_days = 10\napproval_valid_days = 90\n"


@pytest.fixture
def kyc_state(tmp_path: Path, clock: FixedClock) -> Iterator[State]:
    opened = open_state(make_config(tmp_path, extra=TEAM + SETTINGS), clock=clock)
    yield opened
    opened.close()


def _outbox(state: State, kind: str) -> list[OutboxMail]:
    with state.db.read() as session:
        rows = list(session.scalars(select(OutboxMail).where(OutboxMail.kind == kind)))
        session.expunge_all()
        return rows


def _status(state: State, customer: str = CUSTOMER) -> dict[str, object]:
    [row] = verification_states(state.db, customer)
    return row


def _open_kyc_ticket(state: State, clock: FixedClock) -> str:
    """A customer asking about verification, with nothing attached yet."""
    result = deliver(
        state,
        kyc_mail([], subject="Kimlik doğrulaması", body="Kimlik doğrulaması nasıl yapılıyor?"),
    )
    assert result.state == "done", result.detail
    clock.advance(timedelta(hours=1))  # past the automatic-mail interval after the ack
    return _ref(result.detail)


def _answer_with_documents(
    state: State, ref: str, files: list[tuple[str, str, bytes]], subject: str = "Ynt: Belgeler"
) -> str:
    """The customer answers our mail (to its signed Reply-To) with documents: proven."""
    address = reply_address(state.config.desk, ref)
    return deliver(state, kyc_mail(files, subject=subject, to=address), (address,)).detail


def _proven_documents(
    state: State, clock: FixedClock, files: list[tuple[str, str, bytes]], customer: str = CUSTOMER
) -> str:
    """A customer opens a ticket, then sends documents in answer to our acknowledgement."""
    opening = kyc_mail([], subject="Kimlik doğrulaması", body="Kimlik doğrulaması nasıl yapılıyor?")
    ref = _ref(deliver(state, opening.replace(CUSTOMER.encode(), customer.encode())).detail)
    clock.advance(timedelta(minutes=30))
    address = reply_address(state.config.desk, ref)
    answer = kyc_mail(files, subject="Ynt: Belgeler", to=address)
    deliver(state, answer.replace(CUSTOMER.encode(), customer.encode()), (address,))
    return ref


def _agent(state: State, ref: str, sender: str, body: str) -> str:
    address = agent_reply_address(state.config.desk, ref)
    result = deliver(state, _agent_mail(state, ref, sender, body), (address,))
    return result.detail


def test_a_request_then_documents_then_a_decision(kyc_state: State, clock: FixedClock) -> None:
    ref = _open_kyc_ticket(kyc_state, clock)
    refused = _agent(kyc_state, ref, OTHER_AGENT, "#kyc request")
    assert "refused" in refused and verification_states(kyc_state.db) == []

    detail = _agent(kyc_state, ref, KYC_AGENT, "#kyc iste")
    assert "#kyc request" in detail, detail
    requested = _status(kyc_state)
    assert requested["state"] == "requested" and requested["requested_by"] == KYC_AGENT
    assert requested["expires_at"] == clock.now() + timedelta(days=10)
    [mail] = _outbox(kyc_state, "kyc_request")
    assert ref in mail.subject and "kimlik belgelerinizi gönderin" in mail.subject
    for wanted in ("pasaport", "adres belgesi", "özçekim", "JPEG, PNG, HEIC", "10 MB", "10 gün"):
        assert wanted in mail.text, wanted

    clock.advance(timedelta(days=2))
    files = [("kimlik.jpg", "image/jpeg", JPEG), ("fatura.pdf", "application/pdf", PDF)]
    _answer_with_documents(kyc_state, ref, files, f"RE: [#{ref}] Kimlik doğrulaması")
    received = _status(kyc_state)
    assert received["state"] == "received" and received["ticket"] == ref
    assert received["received_at"] == clock.now()

    clock.advance(timedelta(hours=3))
    _agent(kyc_state, ref, KYC_AGENT, "#kyc reddet Adres belgesi üç aydan eski")
    rejected = _status(kyc_state)
    assert rejected["state"] == "rejected" and rejected["decided_by"] == KYC_AGENT
    assert rejected["reason"] == "Adres belgesi üç aydan eski"
    assert rejected["expires_at"] is None
    [mail] = _outbox(kyc_state, "kyc_rejected")
    assert "Adres belgesi üç aydan eski" in mail.text

    clock.advance(timedelta(hours=3))
    _answer_with_documents(kyc_state, ref, files[1:], f"RE: [#{ref}] Yeni adres belgesi")
    assert _status(kyc_state)["state"] == "received"
    clock.advance(timedelta(hours=3))
    _agent(kyc_state, ref, KYC_AGENT, "#kyc approve")
    approved = _status(kyc_state)
    assert approved["state"] == "approved" and approved["reason"] is None
    assert approved["expires_at"] == clock.now() + timedelta(days=90)


def test_an_unanswered_request_expires_and_the_customer_is_told_once(
    kyc_state: State, clock: FixedClock
) -> None:
    ref = _open_kyc_ticket(kyc_state, clock)
    assert "customer mail sent" in request_from_command_line(kyc_state, ref, KYC_AGENT)
    with pytest.raises(Exception, match="not an agent of the identity"):
        request_from_command_line(kyc_state, ref, OTHER_AGENT)
    args = (kyc_state.db, kyc_state.config, clock, kyc_state.templates, kyc_state.blobs)

    clock.advance(timedelta(days=9, hours=23))
    assert housekeeping(*args).expired == []
    clock.advance(timedelta(hours=2))
    [expired] = housekeeping(*args).expired
    assert (expired.ticket, expired.expired_from, expired.mail) == (ref, "requested", "sent")
    row = _status(kyc_state)
    assert row["state"] == "expired" and row["expired_from"] == "requested"
    [mail] = _outbox(kyc_state, "kyc_expired")
    assert "talebinizin süresi doldu" in mail.subject and "belgeler bize ulaşmadı" in mail.text
    with kyc_state.db.read() as session:
        notes = session.scalars(select(TicketMessage.text).where(TicketMessage.kind == "system"))
        assert any("kyc.request_expiry_days" in text for text in notes)

    clock.advance(timedelta(days=1))
    assert housekeeping(*args).expired == []
    assert len(_outbox(kyc_state, "kyc_expired")) == 1


def test_the_scheduled_job_purges_expires_and_mails_once(
    kyc_state: State, clock: FixedClock
) -> None:
    """Three customers: approved (content kept 30 days, approval valid 90), abandoned (never
    decided, purged after 14 days) and rejected (content gone after 7 days)."""
    files = [("kimlik.jpg", "image/jpeg", JPEG), ("fatura.pdf", "application/pdf", PDF)]
    approved_ref = _proven_documents(kyc_state, clock, files)
    abandoned_ref = _proven_documents(kyc_state, clock, files[:1], "can@example.net")
    rejected_ref = _proven_documents(kyc_state, clock, files[1:], "ece@example.org")
    clock.advance(timedelta(hours=1))
    _agent(kyc_state, approved_ref, KYC_AGENT, "#kyc approve")
    _agent(kyc_state, rejected_ref, KYC_AGENT, "#kyc reject Belge okunmuyor")
    with kyc_state.db.read() as session:
        blob_keys = {d.id: d.blob_key for d in session.scalars(select(Document))}

    class Daemon:  # what the job needs of ticketd.daemon.Daemon
        def __init__(self) -> None:
            self.state = kyc_state
            self.stopping = asyncio.Event()
            self.mail_ready = asyncio.Event()

    def run_job() -> Daemon:
        daemon = Daemon()
        asyncio.run(run_housekeeping(daemon))
        return daemon

    def stored() -> dict[str, list[str]]:
        with kyc_state.db.read() as session:
            rows = session.execute(select(Document.customer, Document.state, Document.blob_key))
            found: dict[str, list[str]] = {}
            for customer, state, key in rows:
                found.setdefault(customer, []).append(state if key else f"{state}, purged")
            return found

    clock.advance(timedelta(days=8))
    assert not run_job().mail_ready.is_set()
    assert stored()["ece@example.org"] == ["rejected, purged"]
    assert stored()[CUSTOMER] == ["approved", "approved"]
    assert stored()["can@example.net"] == ["received"]

    clock.advance(timedelta(days=7))
    assert run_job().mail_ready.is_set()  # the abandoned customer was told
    assert stored()["can@example.net"] == ["expired, purged"]
    can = _status(kyc_state, "can@example.net")
    assert can["state"] == "expired" and can["expired_from"] == "received"
    [told] = _outbox(kyc_state, "kyc_expired")
    assert told.recipient == "can@example.net" and "inceleyemedik" in told.text
    assert abandoned_ref in told.subject

    clock.advance(timedelta(days=20))  # 35 days: the approved content goes, the record stays
    run_job()
    assert stored()[CUSTOMER] == ["approved, purged", "approved, purged"]
    assert _status(kyc_state)["state"] == "approved"

    clock.advance(timedelta(days=56))  # 91 days: the approval itself has ended
    assert run_job().mail_ready.is_set()
    assert _status(kyc_state)["expired_from"] == "approved"
    assert _status(kyc_state, "ece@example.org")["state"] == "rejected"  # nothing expires it
    assert [m.recipient for m in _outbox(kyc_state, "kyc_expired")] == [
        "can@example.net",
        CUSTOMER,
    ]
    # A second run, and a later one: nothing is mailed or purged again.
    assert not run_job().mail_ready.is_set()
    clock.advance(timedelta(days=30))
    assert not run_job().mail_ready.is_set()
    assert len(_outbox(kyc_state, "kyc_expired")) == 2

    # Content gone from disk; every record kept; each purge in the audit, with its rule.
    assert not any(kyc_state.blobs.path_for(key).exists() for key in blob_keys.values() if key)
    with kyc_state.db.read() as session:
        documents = list(session.scalars(select(Document)))
        assert len(documents) == 4 and all(len(d.sha256) == 64 and d.size for d in documents)
    purges = [r for r in audit(kyc_state.db) if r["action"] == "purge"]
    assert len(purges) == 4 and {r["actor"] for r in purges} == {SCHEDULED_ACTOR}
    assert {r["detail"] for r in purges} == {
        "kyc.retention_days = 30",
        "kyc.rejected_retention_days = 7",
        "kyc.abandoned_retention_days = 14",
    }


def test_the_daemon_registers_the_daily_job(kyc_state: State) -> None:
    class Daemon:
        state = kyc_state
        stopping = asyncio.Event()
        mail_ready = asyncio.Event()

    async def scenario() -> None:
        scheduler = AsyncIOScheduler(event_loop=asyncio.get_running_loop(), timezone=UTC)
        add_housekeeping_job(scheduler, Daemon())
        job = scheduler.get_job(JOB_ID)
        assert isinstance(job.trigger, IntervalTrigger)
        assert job.trigger.interval == timedelta(hours=24)
        assert job.func is run_housekeeping

    asyncio.run(scenario())


def test_the_running_daemon_expires_a_request_at_start(tmp_path: Path, relay: Relay) -> None:
    """A real `ticketd run`: its first housekeeping run, at start, finds a request that ran
    out while it was down and mails the customer."""
    config_path = daemon_config(tmp_path, relay.port, extra=TEAM)
    month_ago = FixedClock(datetime.now(UTC) - timedelta(days=30))
    state = open_state(load_config(config_path), clock=month_ago)
    try:
        ref = _open_kyc_ticket(state, month_ago)
        request_from_command_line(state, ref, KYC_AGENT)
    finally:
        state.close()
    process = DaemonProcess(config_path)
    process.start()
    try:
        expired = process.wait_until(
            lambda: [m for m in relay.handler.messages() if "süresi doldu" in str(m["Subject"])],
            what="the expiry mail",
        )
        assert CUSTOMER in str(expired[0]["To"])
        rows = process.cli("kyc", "status", "--json")
        assert [(r["customer"], r["state"]) for r in rows] == [(CUSTOMER, "expired")]
    finally:
        assert process.stop() == 0, process.log()


def test_kyc_status_and_request_commands(
    kyc_state: State,
    clock: FixedClock,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # the table's width: no address cut short
    ref = _open_kyc_ticket(kyc_state, clock)
    config = ["--config", str(kyc_state.config.path)]
    assert main([*config, "kyc", "request", ref, "--agent", OTHER_AGENT]) == 1
    assert main([*config, "kyc", "request", "7KQM-X3P9", "--agent", KYC_AGENT]) == 1
    capsys.readouterr()
    assert main([*config, "kyc", "request", ref, "--agent", KYC_AGENT]) == 0
    assert "customer mail sent" in capsys.readouterr().out
    with kyc_state.db.read() as session:
        notes = session.scalars(select(TicketMessage.text).where(TicketMessage.kind == "system"))
        assert any(f"{KYC_AGENT} asked {CUSTOMER}" in text for text in notes)
    assert main([*config, "kyc", "status", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["customer"], row["state"], row["ticket"]) == (CUSTOMER, "requested", ref)
    assert set(row) == {
        "customer", "state", "reason", "ticket", "requested_at", "requested_by", "received_at",
        "decided_at", "decided_by", "expires_at", "expired_at", "expired_from",
    }  # fmt: skip
    assert main([*config, "kyc", "status", "AYSE@musteri.com.tr"]) == 0
    assert CUSTOMER in capsys.readouterr().out
    assert main([*config, "kyc", "status", "nobody@example.com"]) == 1


@pytest.mark.parametrize(
    ("setting", "key", "reason"),
    [
        ("request_expiry_days = 0", "kyc.request_expiry_days", "at least 1"),
        ("abandoned_retention_days = 2.5", "kyc.abandoned_retention_days", "at least 1"),
        ("approval_valid_days = -1", "kyc.approval_valid_days", "at least 0"),
        ('housekeeping_hours = "daily"', "kyc.housekeeping_hours", "at least 1"),
    ],
)
def test_bad_state_settings_name_the_key(
    tmp_path: Path, setting: str, key: str, reason: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        make_config(tmp_path, extra=f"[kyc]\n{setting}\n")
    [(found_key, found_reason)] = raised.value.problems
    assert found_key == key and reason in found_reason


def test_state_settings_defaults(tmp_path: Path) -> None:
    kyc = make_config(tmp_path).kyc
    assert (kyc.request_expiry_days, kyc.abandoned_retention_days) == (14, 14)
    assert (kyc.approval_valid_days, kyc.housekeeping_hours) == (0, 24)
    with_keys = make_config(tmp_path, extra="[kyc]\nhousekeeping_hours = 6\n").kyc
    assert with_keys.housekeeping_hours == 6


def test_one_row_per_customer_address(kyc_state: State, clock: FixedClock) -> None:
    ref = _open_kyc_ticket(kyc_state, clock)
    request_from_command_line(kyc_state, ref, KYC_AGENT)
    clock.advance(timedelta(hours=1))
    address = reply_address(kyc_state.config.desk, ref)
    upper = kyc_mail([("kimlik.jpg", "image/jpeg", JPEG)], to=address).replace(
        b"ayse@musteri.com.tr", b"AYSE@Musteri.com.tr"
    )
    deliver(kyc_state, upper, (address,))
    with kyc_state.db.read() as session:
        rows = session.execute(select(Verification.customer, Verification.state)).all()
    assert [tuple(r) for r in rows] == [(CUSTOMER, "received")]


def test_a_forged_from_never_touches_an_approved_verification(
    kyc_state: State, clock: FixedClock
) -> None:
    """Issue 22 (4): her address in From, the attacker's Reply-To and a photo: the documents stay
    on a ticket of their own, unbound; her approval, and the ticket it points at, stand."""
    ref = _proven_documents(kyc_state, clock, [("kimlik.jpg", "image/jpeg", JPEG)])
    clock.advance(timedelta(hours=1))
    _agent(kyc_state, ref, KYC_AGENT, "#kyc approve")
    assert _status(kyc_state)["state"] == "approved"
    clock.advance(timedelta(hours=1))

    forged = kyc_mail([("kimlik.jpg", "image/jpeg", PNG)], subject="Kimlik belgem yenilendi")
    forged = forged.replace(b"Subject:", b"Reply-To: attacker@evil.example\r\nSubject:", 1)
    result = deliver(kyc_state, forged)
    new_ref = _ref(result.detail)
    assert new_ref != ref and "1 stored" in result.detail
    approved = _status(kyc_state)
    assert approved["state"] == "approved" and approved["ticket"] == ref
    assert not [m for m in _outbox(kyc_state, "kyc_received") if "evil.example" in m.recipient]
    with kyc_state.db.read() as session:
        notes = session.scalars(select(TicketMessage.text).where(TicketMessage.kind == "system"))
        assert any("do not change the verification" in text for text in notes)
    # An agent deciding on the unproven documents does not bind them to her either.
    clock.advance(timedelta(hours=1))
    _agent(kyc_state, new_ref, KYC_AGENT, "#kyc reject Belge okunmuyor")
    with kyc_state.db.read() as session:
        subjects = session.scalars(
            select(TicketMessage.subject).where(TicketMessage.kind == "system")
        )
        assert "Verification unchanged" in list(subjects)
    assert _status(kyc_state)["state"] == "approved" and _status(kyc_state)["ticket"] == ref
    # Nor is she told of a decision that changed nothing of hers.
    assert _outbox(kyc_state, "kyc_rejected") == []

    # Her own new documents, proven, wait on her ticket; mail never lowers the approval.
    clock.advance(timedelta(hours=1))
    _answer_with_documents(kyc_state, ref, [("pasaport.png", "image/png", PNG)])
    assert _status(kyc_state)["state"] == "approved"


def test_a_first_verification_starts_from_unproven_documents_but_a_pending_one_is_not_moved(
    kyc_state: State, clock: FixedClock
) -> None:
    """A customer with no verification yet sends her documents in her first mail (no DKIM, not
    an answer to us): there is nothing a forged From could lower, so they start it, and the
    agent is told to compare them with the account holder; the decision binds. A second
    unproven mail, while those documents wait, neither re-points nor resets it."""
    files = [("kimlik.jpg", "image/jpeg", JPEG)]
    first = deliver(kyc_state, kyc_mail(files, subject="Kimlik belgem"))
    ref = _ref(first.detail)
    started = _status(kyc_state)
    assert started["state"] == "received" and started["ticket"] == ref
    with kyc_state.db.read() as session:
        notes = list(
            session.scalars(select(TicketMessage.text).where(TicketMessage.kind == "system"))
        )
        assert any("start the first verification" in text for text in notes)

    clock.advance(timedelta(hours=1))
    other = kyc_mail([("kimlik.jpg", "image/jpeg", PNG)], subject="Başka bir kimlik")
    other = other.replace(b"Subject:", b"Reply-To: attacker@evil.example\r\nSubject:", 1)
    second_ref = _ref(deliver(kyc_state, other).detail)
    assert second_ref != ref and _status(kyc_state)["ticket"] == ref

    clock.advance(timedelta(hours=1))
    _agent(kyc_state, ref, KYC_AGENT, "#kyc approve")
    approved = _status(kyc_state)
    assert approved["state"] == "approved" and approved["ticket"] == ref
