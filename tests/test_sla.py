"""The SLA clock through a ticket's life, moved by a FixedClock, in process on SQLite on disk.

Open, remind, breach and escalate, an agent answers and waits for the customer (the clock
pauses), the customer answers (it restarts), close; business hours with a holiday; a restart
between ticks; the CLI. The PostgreSQL race of two ticks is in test_sla_postgresql.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import pytest
from sqlalchemy import select

from domain.clock import FixedClock
from outbound.addresses import agent_reply_address
from outbound.sla import report, tick
from storage.models import OutboxMail, SlaEvent, Ticket
from tests.helpers import customer_mail, make_config, write_config
from tests.test_threading import deliver
from ticketd.cli import main
from ticketd.state import State, open_state
from ticketd.views import show_ticket

AGENT = "ayse@destek.example.com"
LEAD = "lead@destek.example.com"
CUSTOMER = "Can Demir <can@musteri.com.tr>"
TEAM = f"""
[[queues]]
name = "odeme"
categories = ["payment", "other"]
escalation = ["{LEAD}"]

[[agents]]
email = "{AGENT}"
name = "Ayşe Yılmaz"
queues = ["odeme"]

[agent_replies]
# Not about sender proof (tests/test_agents.py, tests/test_sender_auth.py): mail comes
# with no verdict at all, as through a server nobody verifies at.
require_authentication = false
"""
OFFICE = """
[sla.calendar]
timezone = "Europe/Istanbul"
hours = "09:00-18:00"
days = ["mon", "tue", "wed", "thu", "fri"]
holidays = ["2026-11-30"]
"""


@pytest.fixture
def desk(tmp_path: Path, clock: FixedClock) -> Iterator[State]:
    opened = open_state(make_config(tmp_path, extra=TEAM), clock=clock)
    yield opened
    opened.close()


def open_ticket(state: State) -> str:
    result = deliver(state, customer_mail(sender=CUSTOMER, body="Para çekme talebim bekliyor"))
    assert result.state == "done", result.detail
    return result.detail.split()[1].rstrip(":")


def agent_mail(state: State, ref: str, body: str) -> None:
    address = agent_reply_address(state.config.desk, ref)
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = AGENT, address, f"Re: [#{ref}]"
    mail.set_content(body)
    result = deliver(state, mail.as_bytes(policy=SMTP), envelope_to=(address,))
    assert result.state == "done", result.detail


def ticket_of(state: State, ref: str) -> Ticket:
    with state.db.read() as session:
        ticket = session.scalar(select(Ticket).where(Ticket.ref == ref))
        assert ticket is not None
        session.expunge(ticket)  # readable after the read transaction ends
        return ticket


def sla_mail(state: State) -> list[tuple[str, str]]:
    with state.db.read() as session:
        rows = session.scalars(
            select(OutboxMail).where(OutboxMail.kind.like("sla-%")).order_by(OutboxMail.id)
        ).all()
        return [(row.kind, row.recipient) for row in rows]


def run_tick(state: State) -> list[str]:
    return [
        f"{a.kind} {a.target} {a.outcome}"
        for a in tick(state.db, state.config, state.clock, state.templates)
    ]


def test_a_ticket_through_its_life(desk: State, clock: FixedClock) -> None:
    opened = clock.now()
    ref = open_ticket(desk)
    ticket = ticket_of(desk, ref)
    assert ticket.queue == "odeme"
    assert ticket.sla_first_answer_due == opened + timedelta(hours=48)
    assert ticket.sla_resolution_due == opened + timedelta(days=14)
    shown = show_ticket(desk.db, ref)
    assert shown is not None
    assert shown["sla"]["first_answer_due"] == "2026-11-25T09:00:00+00:00"
    # The agents' notification shows the nearest deadline.
    with desk.db.read() as session:
        notify = session.scalars(select(OutboxMail).where(OutboxMail.kind == "notify")).one()
        assert "SLA: 2026-11-25 12:00 +03" in notify.text  # in the tr desk's zone, Istanbul

    clock.current = opened + timedelta(hours=35)
    assert run_tick(desk) == []
    clock.current = opened + timedelta(hours=36)  # 75% of 48 hours
    assert run_tick(desk) == [f"reminder first_answer sent to {AGENT}"]
    assert run_tick(desk) == []  # once only

    clock.current = opened + timedelta(hours=48, minutes=1)
    assert run_tick(desk) == [f"escalation first_answer sent to {LEAD}"]
    assert sla_mail(desk) == [("sla-reminder", AGENT), ("sla-escalation", LEAD)]
    with desk.db.read() as session:
        escalation = session.scalars(
            select(OutboxMail).where(OutboxMail.kind == "sla-escalation")
        ).one()
        assert escalation.subject.startswith(f"[#{ref}] SLA aşıldı: ilk yanıt")
        assert b"Auto-Submitted: auto-generated" in escalation.raw

    # The agent answers and waits for the customer: first answer done, the clock pauses.
    clock.current = opened + timedelta(hours=50)
    agent_mail(desk, ref, "#pending\n\nDekontu gönderir misiniz?")
    ticket = ticket_of(desk, ref)
    assert ticket.status == "pending"
    assert ticket.sla_first_answer_due is None
    assert ticket.sla_paused_at == clock.now()
    clock.current = opened + timedelta(days=20)  # far past the resolution deadline: paused
    assert run_tick(desk) == []
    with desk.db.read() as session:
        assert session.scalars(select(SlaEvent).where(SlaEvent.sent_at.is_(None))).all() == []

    # The customer answers: the clock restarts, the resolution moves by the pause, and the
    # next answer is due in 48 hours.
    deliver(desk, customer_mail(sender=CUSTOMER, subject=f"Re: [#{ref}] dekont", body="Ekte."))
    ticket = ticket_of(desk, ref)
    assert ticket.status == "open"
    paused = clock.now() - (opened + timedelta(hours=50))
    assert ticket.sla_paused_seconds == paused.total_seconds()
    assert ticket.sla_resolution_due == opened + timedelta(days=14) + paused
    assert ticket.sla_next_answer_due == clock.now() + timedelta(hours=48)
    clock.advance(timedelta(hours=36))
    assert run_tick(desk) == [f"reminder next_answer sent to {AGENT}"]

    # An answer satisfies the next answer; the close stops every clock.
    agent_mail(desk, ref, "#close\n\nTamamlandı.")
    ticket = ticket_of(desk, ref)
    assert (ticket.status, ticket.sla_next_answer_due, ticket.sla_resolution_due) == (
        "closed",
        None,
        None,
    )
    clock.advance(timedelta(days=30))
    # Nothing more for the staff; the customer gets the satisfaction survey (test_survey.py).
    assert run_tick(desk) == ["survey survey sent to can@musteri.com.tr"]
    assert len(sla_mail(desk)) == 3


def test_a_restart_between_ticks_sends_nothing_twice(
    tmp_path: Path, desk: State, clock: FixedClock
) -> None:
    open_ticket(desk)
    clock.advance(timedelta(hours=40))
    assert len(run_tick(desk)) == 1
    desk.close()
    again = open_state(make_config(tmp_path, extra=TEAM), clock=clock)
    try:
        assert run_tick(again) == []
        assert len(sla_mail(again)) == 1
    finally:
        again.close()


def test_catch_up_after_downtime_skips_a_stale_reminder(desk: State, clock: FixedClock) -> None:
    open_ticket(desk)
    clock.advance(timedelta(hours=60))  # the daemon was down over the reminder and the breach
    actions = run_tick(desk)
    assert sorted(actions) == [
        f"escalation first_answer sent to {LEAD}",
        "reminder first_answer skipped: the deadline passed before the reminder "
        "(the escalation tells)",
    ]
    assert sla_mail(desk) == [("sla-escalation", LEAD)]


def test_dry_run_changes_nothing(desk: State, clock: FixedClock) -> None:
    open_ticket(desk)
    clock.advance(timedelta(hours=37))
    actions = tick(desk.db, desk.config, desk.clock, desk.templates, dry_run=True)
    assert [a.outcome for a in actions] == [f"sent to {AGENT}"]
    assert sla_mail(desk) == []
    assert len(run_tick(desk)) == 1


def test_business_hours_and_a_holiday(tmp_path: Path) -> None:
    # Friday 2026-11-27 16:00 in Istanbul (13:00 UTC); Monday 2026-11-30 is a holiday.
    clock = FixedClock(datetime(2026, 11, 27, 13, 0, tzinfo=UTC))
    state = open_state(
        make_config(tmp_path, extra=TEAM + OFFICE + "[sla]\nfirst_answer_hours = 4\n"),
        clock=clock,
    )
    try:
        ref = open_ticket(state)
        ticket = ticket_of(state, ref)
        # Two hours on Friday, the weekend and the holiday skipped, two on Tuesday: 11:00.
        assert ticket.sla_first_answer_due == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
        # The reminder at 3 business hours: Tuesday 10:00 local; nothing at night or before.
        clock.current = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
        assert run_tick(state) == []
        clock.current = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)
        assert run_tick(state) == [f"reminder first_answer sent to {AGENT}"]
        clock.current = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
        assert run_tick(state) == [f"escalation first_answer sent to {LEAD}"]
    finally:
        state.close()


def test_report_and_cli(
    tmp_path: Path, desk: State, clock: FixedClock, capsys: pytest.CaptureFixture[str]
) -> None:
    late = open_ticket(desk)
    clock.advance(timedelta(hours=37))
    risky = open_ticket(desk)
    clock.advance(timedelta(hours=36))
    rows = report(desk.db, desk.config, clock)
    assert rows == [{"queue": "odeme", "open": 2, "at_risk": [risky], "breached": [late]}]
    config = str(write_config(tmp_path, extra=TEAM))
    at = clock.now().isoformat()
    assert main(["--config", config, "sla", "tick", "--at", at, "--dry-run", "--json"]) == 0
    planned = json.loads(capsys.readouterr().out)
    assert {(a["ref"], a["kind"]) for a in planned} == {
        (late, "escalation"),
        (late, "reminder"),
        (risky, "reminder"),
    }
    assert main(["--config", config, "sla", "tick", "--at", at, "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 3
    assert main(["--config", config, "sla", "tick", "--at", at, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["--config", config, "sla", "report", "--json"]) == 0
    [queue] = json.loads(capsys.readouterr().out)
    assert queue["queue"] == "odeme"
    assert main(["--config", config, "sla", "tick", "--at", "yesterday"]) == 64


def test_the_daemon_scheduler_ticks_at_start_and_stops_cleanly(
    desk: State, clock: FixedClock
) -> None:
    import asyncio

    from ticketd.metrics import Metrics
    from ticketd.sla_service import run_sla_clock

    open_ticket(desk)
    clock.advance(timedelta(hours=40))

    class FakeDaemon:
        def __init__(self) -> None:
            self.state = desk
            self.stopping = asyncio.Event()
            self.mail_ready = asyncio.Event()
            self.metrics = Metrics(desk.db, desk.clock)

    async def scenario() -> None:
        daemon = FakeDaemon()
        task = asyncio.create_task(run_sla_clock(daemon))
        await asyncio.wait_for(daemon.mail_ready.wait(), 10)
        daemon.stopping.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(scenario())
    assert sla_mail(desk) == [("sla-reminder", AGENT)]


def test_a_merged_ticket_is_not_reminded(desk: State, clock: FixedClock) -> None:
    from ingest.ticket_ops import merge

    first = open_ticket(desk)
    second = deliver(desk, customer_mail(sender="Ece <ece@example.net>", body="Para çekme"))
    merge(desk.db, clock, first, second.detail.split()[1].rstrip(":"), desk.config.sla)
    with desk.db.read() as session:
        merged = session.scalar(select(Ticket).where(Ticket.ref == first))
        assert merged is not None and merged.status == "merged"
        waiting = session.scalars(
            select(SlaEvent).where(SlaEvent.ticket_id == merged.id, SlaEvent.sent_at.is_(None))
        ).all()
        assert waiting == []  # its clocks stopped with the merge, not at the next tick
    clock.advance(timedelta(hours=40))
    outcomes = sorted(a.outcome for a in tick(desk.db, desk.config, clock, desk.templates))
    assert outcomes == [f"sent to {AGENT}"]  # the survivor's own reminder, once


def test_merging_an_unanswered_ticket_into_an_answered_one_keeps_its_customer_waiting(
    desk: State, clock: FixedClock
) -> None:
    from ingest.ticket_ops import merge

    answered = open_ticket(desk)
    agent_mail(desk, answered, "Kontrol ediyoruz.")
    assert ticket_of(desk, answered).sla_next_answer_due is None  # nobody waits on it
    clock.advance(timedelta(hours=10))
    waiting_since = clock.now()
    other = deliver(desk, customer_mail(sender="Ece <ece@example.net>", body="Para çekme"))
    unanswered = other.detail.split()[1].rstrip(":")
    clock.advance(timedelta(hours=1))
    merge(desk.db, clock, unanswered, answered, desk.config.sla)
    survivor = ticket_of(desk, answered)
    # Ece still waits for an answer: from when she wrote, not from the merge.
    assert survivor.sla_waiting_since == waiting_since
    assert survivor.sla_next_answer_due == waiting_since + timedelta(hours=48)
    clock.current = waiting_since + timedelta(hours=48, minutes=1)
    assert f"escalation next_answer sent to {LEAD}" in run_tick(desk)


def test_split_moves_the_waiting_customer_with_their_message(
    desk: State, clock: FixedClock
) -> None:
    from ingest.ticket_ops import split

    ref = open_ticket(desk)
    agent_mail(desk, ref, "Kontrol ediyoruz.")
    clock.advance(timedelta(hours=2))
    asked_at = clock.now()
    deliver(desk, customer_mail(sender=CUSTOMER, subject=f"Re: [#{ref}]", body="Bonus da yok"))
    assert ticket_of(desk, ref).sla_waiting_since == asked_at
    with desk.db.read() as session:
        ticket = session.scalar(select(Ticket).where(Ticket.ref == ref))
        assert ticket is not None
        position = len(ticket.messages)  # the customer's last message
    clock.advance(timedelta(hours=1))
    new_ref = split(desk.db, clock, ref, [position], desk.config.sla)
    old, new = ticket_of(desk, ref), ticket_of(desk, new_ref)
    assert old.sla_waiting_since is None and old.sla_next_answer_due is None
    assert new.sla_first_answered_at is None  # the answer stayed behind: a new request
    assert new.sla_first_answer_due == clock.now() + timedelta(hours=48)


def test_still_working_on_it_goes_to_the_customer_of_an_opted_in_category(
    tmp_path: Path, clock: FixedClock
) -> None:
    extra = TEAM + '[sla]\nfollowup_hours = 24\nfollowup_categories = ["payment"]\n'
    state = open_state(make_config(tmp_path, extra=extra), clock=clock)
    try:
        ref = open_ticket(state)
        assert ticket_of(state, ref).category == "payment"
        clock.advance(timedelta(hours=24))
        assert run_tick(state) == ["followup first_answer sent to can@musteri.com.tr"]
        with state.db.read() as session:
            [mail] = session.scalars(select(OutboxMail).where(OutboxMail.kind == "followup"))
            assert mail.automatic
            assert "çalışmaya devam ediyoruz" in mail.subject
        clock.advance(timedelta(hours=1))
        assert run_tick(state) == []  # once per waiting period
    finally:
        state.close()


def test_no_followup_without_opting_in(desk: State, clock: FixedClock) -> None:
    open_ticket(desk)
    clock.advance(timedelta(hours=30))
    assert run_tick(desk) == []


def test_a_ticket_left_waiting_for_the_customer_is_reminded_then_closed(
    tmp_path: Path, clock: FixedClock
) -> None:
    state = open_state(
        make_config(tmp_path, extra=TEAM + "[sla]\nauto_close_hours = 96\n"), clock=clock
    )
    try:
        ref = open_ticket(state)
        clock.advance(timedelta(hours=2))
        agent_mail(state, ref, "#pending\n\nDekontu gönderir misiniz?")
        clock.advance(timedelta(hours=47))
        assert run_tick(state) == []
        clock.advance(timedelta(hours=1))  # half of 96 hours
        assert run_tick(state) == ["pending_reminder pending sent to can@musteri.com.tr"]
        clock.advance(timedelta(hours=48))
        assert run_tick(state) == ["auto_close pending closed; sent to can@musteri.com.tr"]
        shown = show_ticket(state.db, ref)
        assert shown is not None
        assert shown["status"] == "closed"
        subjects = [m["subject"] for m in shown["messages"]][-2:]
        assert subjects[0].startswith(f"[#{ref}] Talebiniz kapatıldı")
        assert subjects[1] == "Closed automatically"
        clock.advance(timedelta(days=30))
        assert run_tick(state) == []
    finally:
        state.close()


def test_the_customers_answer_cancels_the_automatic_close(
    tmp_path: Path, clock: FixedClock
) -> None:
    state = open_state(
        make_config(tmp_path, extra=TEAM + "[sla]\nauto_close_hours = 96\n"), clock=clock
    )
    try:
        ref = open_ticket(state)
        agent_mail(state, ref, "#pending\n\nDekontu gönderir misiniz?")
        clock.advance(timedelta(hours=20))
        deliver(state, customer_mail(sender=CUSTOMER, subject=f"Re: [#{ref}]", body="Ekte."))
        clock.advance(timedelta(hours=100))
        actions = run_tick(state)
        assert not [a for a in actions if a.startswith(("pending_reminder", "auto_close"))]
        assert ticket_of(state, ref).status == "open"
    finally:
        state.close()


def test_a_huge_customer_text_is_cut_in_the_agents_notification(desk: State) -> None:
    from outbound.agent_mail import NOTIFY_TEXT_LIMIT

    body = "Para çekme talebim bekliyor. " + "x" * (NOTIFY_TEXT_LIMIT * 3)
    result = deliver(desk, customer_mail(sender=CUSTOMER, body=body))
    assert result.state == "done", result.detail
    ref = result.detail.split()[1].rstrip(":")
    with desk.db.read() as session:
        notify = session.scalars(select(OutboxMail).where(OutboxMail.kind == "notify")).one()
        assert len(notify.raw) < NOTIFY_TEXT_LIMIT * 3  # text and HTML parts, not three copies
        assert "Para çekme talebim bekliyor." in notify.text
        assert f"karakter daha bu bildirime sığmadı: ticketd tickets show {ref}" in notify.text
    shown = show_ticket(desk.db, ref)
    assert shown is not None and len(shown["messages"][0]["text"]) > NOTIFY_TEXT_LIMIT * 3


def test_recompute_brings_open_tickets_in_line_with_a_changed_policy(
    tmp_path: Path, desk: State, clock: FixedClock, capsys: pytest.CaptureFixture[str]
) -> None:
    opened = clock.now()
    ref = open_ticket(desk)
    assert ticket_of(desk, ref).sla_first_answer_due == opened + timedelta(hours=48)
    # The desk promises a first answer within 8 hours from now on.
    config = str(write_config(tmp_path, extra=TEAM + "[sla]\nfirst_answer_hours = 8\n"))
    assert main(["--config", config, "sla", "recompute", "--dry-run", "--json"]) == 0
    [planned] = json.loads(capsys.readouterr().out)
    assert planned["ref"] == ref and planned["target"] == "first_answer"
    assert planned["after"] == (opened + timedelta(hours=8)).isoformat()
    assert ticket_of(desk, ref).sla_first_answer_due == opened + timedelta(hours=48)  # dry run
    assert main(["--config", config, "sla", "recompute"]) == 0
    assert "1 deadline(s) moved" in capsys.readouterr().out
    assert ticket_of(desk, ref).sla_first_answer_due == opened + timedelta(hours=8)
    assert main(["--config", config, "sla", "recompute"]) == 0  # nothing left to move
    assert "0 deadline(s) moved" in capsys.readouterr().out
    at = (opened + timedelta(hours=8, minutes=1)).isoformat()
    assert main(["--config", config, "sla", "tick", "--at", at, "--json"]) == 0
    settled = {(a["kind"], a["target"]) for a in json.loads(capsys.readouterr().out)}
    assert ("escalation", "first_answer") in settled  # the new deadline is watched


def test_a_deadline_escalated_by_a_later_tick_is_reported_breached(
    desk: State, clock: FixedClock
) -> None:
    # `sla tick --at` a later time (or a daemon whose clock runs ahead) escalated the ticket;
    # the report, read at the earlier real time, must not call it merely "running".
    ref = open_ticket(desk)
    opened = clock.now()
    later = FixedClock(opened + timedelta(hours=49))
    assert [a.kind for a in tick(desk.db, desk.config, later, desk.templates)] == [
        "reminder",
        "escalation",
    ]
    clock.current = opened + timedelta(hours=1)
    assert report(desk.db, desk.config, clock) == [
        {"queue": "odeme", "open": 1, "at_risk": [], "breached": [ref]}
    ]
    # A ticket nobody escalated is not breached before its deadline.
    other = open_ticket(desk)
    [row] = report(desk.db, desk.config, clock)
    assert other not in row["breached"]
