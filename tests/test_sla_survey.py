"""The satisfaction survey and the daily digest, moved by a FixedClock on SQLite on disk.

Close, the survey goes out once, the customer's score is stored without reopening the ticket
and the report averages it; a reply that is no score is an ordinary message. The digest goes
out at its hour once per queue and day, also across a restart, and not for a quiet queue.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from domain.clock import FixedClock
from outbound.sla import tick
from outbound.sla_digest import send_digests
from outbound.survey import parse_score, survey_report
from storage.models import OutboxMail
from tests.helpers import customer_mail, make_config, write_config
from tests.test_sla import AGENT, CUSTOMER, agent_mail, open_ticket, ticket_of
from tests.test_threading import deliver
from ticketd.cli import main
from ticketd.state import State, open_state
from ticketd.views import show_ticket

KYC_AGENT = "mehmet@destek.example.com"
TEAM = f"""
[[queues]]
name = "odeme"
categories = ["payment", "other"]

[[queues]]
name = "kimlik"
categories = ["kyc"]

[[agents]]
email = "{AGENT}"
name = "Ayşe Yılmaz"
queues = ["odeme"]

[[agents]]
email = "{KYC_AGENT}"
name = "Mehmet Kaya"
queues = ["kimlik"]

[agent_replies]
# Not about sender proof (tests/test_agents.py, tests/test_sender_auth.py): mail comes
# with no verdict at all, as through a server nobody verifies at.
require_authentication = false
"""


@pytest.fixture
def desk(tmp_path: Path, clock: FixedClock) -> Iterator[State]:
    opened = open_state(make_config(tmp_path, extra=TEAM), clock=clock)
    yield opened
    opened.close()


def outbox(state: State, kind: str) -> list[OutboxMail]:
    with state.db.read() as session:
        rows = list(session.scalars(select(OutboxMail).where(OutboxMail.kind == kind)))
        session.expunge_all()  # readable after the read transaction ends
        return rows


def run_tick(state: State) -> list[str]:
    return [
        f"{a.kind} {a.outcome}" for a in tick(state.db, state.config, state.clock, state.templates)
    ]


def closed_and_surveyed(state: State, clock: FixedClock) -> tuple[str, str]:
    """A ticket answered and closed by the agent, its survey sent: (ref, survey Message-ID)."""
    ref = open_ticket(state)
    clock.advance(timedelta(hours=2))
    agent_mail(state, ref, "#close\n\nTamamlandı.")
    assert run_tick(state) == ["survey sent to can@musteri.com.tr"]
    [survey] = [m for m in outbox(state, "survey") if ref in m.subject]
    return ref, survey.message_id


def answer(state: State, ref: str, survey_id: str, body: str) -> str:
    mail = customer_mail(
        sender=CUSTOMER,
        subject=f"Re: [#{ref}] Memnun kaldınız mı?",
        body=body,
        headers={"In-Reply-To": f"<{survey_id}>", "References": f"<{survey_id}>"},
    )
    result = deliver(state, mail)
    assert result.state == "done", result.detail
    return result.detail


def test_close_survey_once_then_the_score_is_stored_without_reopening(
    tmp_path: Path, desk: State, clock: FixedClock, capsys: pytest.CaptureFixture[str]
) -> None:
    ref, survey_id = closed_and_surveyed(desk, clock)
    [survey] = outbox(desk, "survey")
    assert survey.automatic  # through the gate of automatic mail
    assert "1-5" in survey.subject
    clock.advance(timedelta(days=3))
    assert run_tick(desk) == []  # once

    detail = answer(desk, ref, survey_id, "5 - çok memnunum\nÇok hızlıydınız.")
    assert "score 5 recorded" in detail
    ticket = ticket_of(desk, ref)
    assert ticket.status == "closed"
    shown = show_ticket(desk.db, ref)
    assert shown is not None
    assert shown["satisfaction"]["score"] == 5
    assert shown["satisfaction"]["comment"] == "çok memnunum\nÇok hızlıydınız."
    assert shown["messages"][-1]["text"].startswith("5 - çok memnunum")
    assert run_tick(desk) == []  # a closed ticket stays quiet; no second survey

    # A second ticket by another agent scores 3: the report averages per queue and agent.
    other, other_survey = closed_and_surveyed(desk, clock)
    answer(desk, other, other_survey, "Score: 3 out of 5, it took a while")
    assert ticket_of(desk, other).satisfaction_comment == "it took a while"
    report = survey_report(desk.db)
    assert report["per_queue"] == [{"queue": "odeme", "average": 4.0, "count": 2}]
    assert report["per_agent"] == [{"agent": "-", "average": 4.0, "count": 2}]
    config = str(write_config(tmp_path, extra=TEAM))
    assert main(["--config", config, "survey", "report", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == report
    assert main(["--config", config, "survey", "report"]) == 0
    assert "queue odeme: 4.00 average of 2 answer(s)" in capsys.readouterr().out


def test_a_reply_without_a_score_after_the_survey_is_an_ordinary_message(
    desk: State, clock: FixedClock
) -> None:
    ref, survey_id = closed_and_surveyed(desk, clock)
    detail = answer(desk, ref, survey_id, "Param hâlâ gelmedi, 10 gündür bekliyorum.")
    assert "score" not in detail
    ticket = ticket_of(desk, ref)
    assert (ticket.status, ticket.satisfaction_score) == ("open", None)
    # Closed again later: no second survey for the same ticket.
    agent_mail(desk, ref, "#close\n\nŞimdi tamam.")
    clock.advance(timedelta(hours=1))
    assert run_tick(desk) == []
    assert len(outbox(desk, "survey")) == 1


def test_no_score_before_the_survey_went_out(desk: State, clock: FixedClock) -> None:
    ref = open_ticket(desk)
    agent_mail(desk, ref, "#close\n\nTamamlandı.")
    # Before the tick sent the survey, a "5" is just the customer writing again.
    deliver(desk, customer_mail(sender=CUSTOMER, subject=f"Re: [#{ref}]", body="5"))
    assert ticket_of(desk, ref).status == "open"
    clock.advance(timedelta(hours=1))
    assert run_tick(desk) == []  # reopened: the owed survey was dropped


def test_survey_delay_and_switch(tmp_path: Path, clock: FixedClock) -> None:
    extra = TEAM + "[sla]\nsurvey_delay_hours = 24\n"
    state = open_state(make_config(tmp_path, extra=extra), clock=clock)
    try:
        ref = open_ticket(state)
        agent_mail(state, ref, "#close\n\nTamamlandı.")
        clock.advance(timedelta(hours=23))
        assert run_tick(state) == []
        clock.advance(timedelta(hours=1))
        assert run_tick(state) == ["survey sent to can@musteri.com.tr"]
    finally:
        state.close()
    off = tmp_path / "off"
    off.mkdir()
    state = open_state(make_config(off, extra=TEAM + "[sla]\nsurvey = false\n"), clock=clock)
    try:
        ref = open_ticket(state)
        agent_mail(state, ref, "#close\n\nTamamlandı.")
        clock.advance(timedelta(days=2))
        assert run_tick(state) == []
    finally:
        state.close()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5", (5, "")),
        ("5 - çok memnunum", (5, "çok memnunum")),
        ("\n\n  4/5 iyiydi\nteşekkürler", (4, "iyiydi\nteşekkürler")),
        ("Puanım: 2", (2, "")),
        ("3 puan, biraz yavaştı", (3, "biraz yavaştı")),
        ("Score: 1 out of 5. Never again", (1, "Never again")),
        ("10 gündür bekliyorum", None),
        ("2 gündür bekliyorum, hâlâ cevap yok", None),
        ("3'te aradım kimse açmadı", None),
        ("Sipariş 3 kere iptal oldu", None),
        ("4 TL eksik yatmış", None),
        ("2.5 saat bekledim", None),
        ("5 çok memnunum", (5, "çok memnunum")),
        ("Değerlendirmem: 4", (4, "")),
        ("0", None),
        ("Teşekkürler\n5", None),
        ("", None),
    ],
)
def test_parse_score(text: str, expected: tuple[int, str] | None) -> None:
    assert parse_score(text) == expected


def digests(state: State) -> list[str]:
    return [
        f"{a.target} {a.outcome}"
        for a in send_digests(state.db, state.config, state.clock, state.templates)
    ]


def test_the_digest_goes_out_at_its_hour_once_per_queue(
    tmp_path: Path, desk: State, clock: FixedClock
) -> None:
    late = open_ticket(desk)  # Monday 09:00 UTC: breached Wednesday 09:00
    clock.current = datetime(2026, 11, 24, 22, 0, tzinfo=UTC)
    risky = open_ticket(desk)  # reminded at 36 hours: Thursday 10:00
    clock.current = datetime(2026, 11, 26, 7, 59, tzinfo=UTC)
    run_tick(desk)
    assert digests(desk) == []  # before the hour (calendar UTC, digest_hour 8)
    assert outbox(desk, "sla-digest") == []

    clock.current = datetime(2026, 11, 26, 10, 30, tzinfo=UTC)
    run_tick(desk)
    assert digests(desk) == [
        f"odeme sent to {AGENT}",
        "kimlik skipped: nothing at risk or late",  # a quiet queue gets no mail
    ]
    [mail] = outbox(desk, "sla-digest")
    assert (mail.recipient, mail.automatic, mail.ticket_id) == (AGENT, False, None)
    assert mail.subject == "odeme kuyruğu 2026-11-26: 1 talep risk altında, 1 talep gecikmiş"
    assert late in mail.text.split("Risk altında")[0] and risky in mail.text.split("Risk")[1]
    assert b"Auto-Submitted: auto-generated" in mail.raw

    clock.advance(timedelta(minutes=1))
    assert digests(desk) == []  # a second tick that day
    desk.close()
    again = open_state(make_config(tmp_path, extra=TEAM), clock=clock)
    try:
        assert digests(again) == []  # a restart
        clock.current = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
        assert digests(again)[0] == f"odeme sent to {AGENT}"  # the next day's
        assert len(outbox(again, "sla-digest")) == 2
    finally:
        again.close()


def test_digest_hour_is_local_and_the_cli_dry_run_changes_nothing(
    tmp_path: Path, clock: FixedClock, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = TEAM + '[sla]\ndigest_hour = 9\n[sla.calendar]\ntimezone = "Europe/Istanbul"\n'
    config = str(write_config(tmp_path, extra=extra))
    state = open_state(make_config(tmp_path, extra=extra), clock=clock)
    try:
        open_ticket(state)
    finally:
        state.close()
    # 09:00 in Istanbul is 06:00 UTC; the ticket opened Monday 09:00 UTC breaches Wednesday.
    for at, expected in (("2026-11-25T05:59", 0), ("2026-11-25T06:00", 2)):
        argv = ["--config", config, "sla", "digest", "--at", at, "--dry-run", "--json"]
        assert main(argv) == 0
        assert len(json.loads(capsys.readouterr().out)) == expected
    argv = ["--config", config, "sla", "digest", "--at", "2026-11-25T06:00"]
    assert main(argv) == 0
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.count(f"digest odeme (2026-11-25): sent to {AGENT}") == 1
    assert main(["--config", config, "sla", "digest", "--at", "soon"]) == 64
