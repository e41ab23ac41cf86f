"""The pipeline is data (issue 18): each step of STEPS runs alone on a parsed message and a
session, and the runner records the step that decided what became of a message."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from domain.context import Context
from domain.errors import Ignored, Permanent
from domain.message import SpamVerdict
from ingest.classify import Kind
from ingest.journal import Arrival
from ingest.parsing import parse_message
from ingest.pipeline import IGNORE, STEPS, TICKET, Decision, Step, Work, step_named
from ingest.runner import walk
from ingest.text_readings import read_texts
from ingest.thread_finder import Threading
from storage.models import JOURNAL_QUARANTINED, JournalEntry, Ticket
from tests.helpers import DESK, customer_mail, forged_agent_reply
from ticketd.cli import main
from ticketd.state import State
from ticketd.views import show_ticket


@contextmanager
def one_message(state: State, raw: bytes) -> Iterator[tuple[Context, Work]]:
    """A journaled `raw`, parsed, and a session on it, as the runner gives a step."""
    journal_id = state.journal.accept(Arrival(raw=raw, source="ingest"))
    with state.db.transaction() as session:
        entry = session.get(JournalEntry, journal_id)
        assert entry is not None
        ctx = Context(session, state.config, state.clock, state.templates)
        message = parse_message(raw)
        yield ctx, Work(entry, message, read_texts(state.config, message))


def _messages(state: State, ref: str) -> list[dict[str, Any]]:
    shown = show_ticket(state.db, ref)
    assert shown is not None
    messages: list[dict[str, Any]] = shown["messages"]
    return messages


def test_the_step_names_are_unique_and_every_step_is_reachable_by_name() -> None:
    names = [step.name for step in STEPS]
    assert len(set(names)) == len(names)
    assert [step_named(name) for name in names] == list(STEPS)


def test_classify_ends_our_own_mail_and_hands_on_a_customers_verdict(state: State) -> None:
    looped = customer_mail(headers={"X-Loop": DESK})
    with one_message(state, looped) as (ctx, work):
        decided = step_named("classify").run(ctx, work)
    assert decided == Decision.ignore(f"loop: X-Loop names our address {DESK}")
    with one_message(state, customer_mail()) as (ctx, work):
        classified = step_named("classify").run(ctx, work)
    assert isinstance(classified, Work) and classified.classified.kind is Kind.CUSTOMER


def test_deduplicate_ignores_an_exact_copy_of_a_recorded_message(state: State) -> None:
    raw = customer_mail(message_id="<bir@musteri.com.tr>")
    state.journal.accept(Arrival(raw=raw, source="ingest"))
    [first] = state.worker.drain()
    assert first.state == "done"
    with one_message(state, raw) as (ctx, work):
        decided = step_named("deduplicate").run(ctx, work)
    assert isinstance(decided, Decision) and decided.kind == IGNORE
    assert decided.note.startswith("duplicate: an exact copy of message ")


def test_alerts_without_the_empty_line_each_reach_a_ticket_and_only_a_copy_is_ignored(
    state: State,
) -> None:
    # Found over SMTP: two cron alerts without the empty line after their header, differing
    # only in their text, were one hash; the second was ignored as a copy and its text lost.
    head = b"From: cron@example.net\r\nTo: destek@example.com\r\nSubject: disk alert\r\n"
    first, second = head + b"Disk full on host1\r\n", head + b"Disk full on host2\r\n"
    landed = []
    for raw in (first, second):
        state.journal.accept(Arrival(raw=raw, source="ingest"))
        [result] = state.worker.drain()
        assert result.state == "done" and result.ticket_ref is not None, result.detail
        landed.append(result.ticket_ref)
    texts = [m["text"] for ref in set(landed) for m in _messages(state, ref)]
    assert any("host1" in text for text in texts) and any("host2" in text for text in texts)
    # A retry of the second (a hop's trace header added) is still an exact copy.
    state.journal.accept(Arrival(raw=b"Received: from mx1 by mx2\r\n" + second, source="ingest"))
    [again] = state.worker.drain()
    assert again.state == "ignored", again.detail
    assert again.detail.startswith("duplicate: an exact copy of message "), again.detail


def test_record_opens_a_ticket_and_hold_spam_keeps_it_out_of_the_queues(state: State) -> None:
    with one_message(state, customer_mail(subject="Bonus kazandınız")) as (ctx, work):
        new_thread = Threading(ticket=None, claimed_ref=None, how="new ticket")
        recorded = step_named("record").run(ctx, replace(work, threading=new_thread))
        assert isinstance(recorded, Work) and recorded.new
        ticket = recorded.recorded
        assert ctx.session.scalars(select(Ticket.ref)).all() == [ticket.ref]
        # Clean mail goes on to the next step unchanged.
        assert step_named("hold spam").run(ctx, recorded) is recorded
        spam = SpamVerdict(checked=True, spam=True, score=15.0, action="reject")
        as_spam = replace(recorded, message=replace(recorded.message, spam=spam))
        decided = step_named("hold spam").run(ctx, as_spam)
        assert decided == Decision.ticket(
            ticket.ref, "spam: a new ticket in the spam status, not answered, no agent told", True
        )
        assert (ticket.status, ticket.queue) == ("spam", None)


def _stop(decision: Decision | Exception) -> Step:
    def run(ctx: Context, work: Work) -> Work | Decision:
        if isinstance(decision, Exception):
            raise decision
        return decision

    return Step("stop here", run)


def test_the_walk_ends_at_the_step_that_decides_and_names_it(state: State) -> None:
    passing = Step("pass", lambda ctx, work: work)
    with one_message(state, customer_mail()) as (ctx, work):
        decided = walk(ctx, work, (passing, _stop(Decision.ticket("R", "n")), passing))
        assert (decided.step, decided.decision) == ("stop here", Decision.ticket("R", "n"))
        assert decided.decision is not None and decided.decision.kind == TICKET
        ignored = walk(ctx, work, (passing, _stop(Ignored("machine mail"))))
        assert (ignored.step, ignored.decision) == ("stop here", Decision.ignore("machine mail"))
        failed = walk(ctx, work, (_stop(Permanent("cannot")),))
        assert failed.step == "stop here" and isinstance(failed.error, Permanent)
        endless = walk(ctx, work, (passing,))
        assert endless.step == "pass" and isinstance(endless.error, RuntimeError)


def test_a_quarantine_names_its_step_in_the_journal_and_the_listings(
    tmp_path: Path, state: State, capsys: pytest.CaptureFixture[str]
) -> None:
    state.journal.accept(Arrival(raw=customer_mail(), source="ingest"))
    [landed] = state.worker.drain()
    assert landed.ticket_ref is not None and landed.step == "notify agents"
    forged = forged_agent_reply(state.config.desk, landed.ticket_ref, "Re: Para çekme talebim")
    state.journal.accept(Arrival(raw=forged, source="ingest"))
    [held] = state.worker.drain()
    assert (held.state, held.step) == (JOURNAL_QUARANTINED, "agent mail"), held
    config = str(tmp_path / "ticketd.toml")
    assert main(["--config", config, "quarantine", "list", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["step"] == "agent mail" and row["reason"].startswith(f"ticket {landed.ticket_ref}")
    assert main(["--config", config, "journal", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    steps = [(r["state"], r["step"]) for r in rows]
    assert steps == [("done", "notify agents"), (JOURNAL_QUARANTINED, "agent mail")]
    # The quarantined entry added no message, yet its row names the ticket it concerns.
    assert [r["ticket"] for r in rows] == [landed.ticket_ref, landed.ticket_ref]
