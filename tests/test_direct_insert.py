"""Rows inserted with Core and attached to the session (storage/direct_insert.py, issue 19):
the objects behave as flushed ones do, a rolled-back savepoint takes them back, and a pending
object, which the next flush would insert a second time, is refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, event, func, select
from sqlalchemy.orm.exc import StaleDataError

import ingest.runner
from domain.clock import FixedClock
from domain.config import load_config
from domain.context import Context
from ingest.pipeline import Work
from ingest.runner import Ending
from storage.direct_insert import attach, insert_row, write_pending
from storage.models import JOURNAL_QUARANTINED, Participant, Ticket, TicketMessage
from tests.helpers import write_config
from tests.journal_rows import accept_requests
from tests.test_webhooks import deliveries, hooks
from ticketd.state import State, open_state

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def _ticket(ref: str) -> Ticket:
    return Ticket(
        ref=ref,
        status="open",
        category="other",
        customer="ayse@example.com.tr",
        language="tr",
        subject="Çekim talebi",
        created_at=NOW,
        updated_at=NOW,
    )


def _message(ticket_id: int, key: str) -> TicketMessage:
    return TicketMessage(
        ticket_id=ticket_id,
        direction="in",
        kind="customer",
        dedupe_key=key,
        from_addr="ayse@example.com.tr",
        subject="Çekim talebi",
        text="Merhaba",
        created_at=NOW,
    )


def _statements(state: State) -> list[str]:
    seen: list[str] = []
    event.listen(state.db.engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
    return seen


def test_inserted_objects_are_persistent_loaded_and_read_back_without_queries(
    state: State,
) -> None:
    with state.db.transaction() as session:
        ticket = _ticket("TR-AAAA-0001")
        participant = Participant(email="ayse@example.com.tr", role="customer")
        insert_row(session, ticket)
        participant.ticket_id = ticket.id
        insert_row(session, participant)
        record = _message(ticket.id, "k1")
        insert_row(session, record)
        attach(
            session,
            [ticket, participant, record],
            [
                (ticket, "participants", [participant]),
                (ticket, "messages", [record]),
                (record, "ticket", ticket),
                (participant, "ticket", ticket),
            ],
        )
        seen = _statements(state)
        # Defaults the caller left unset are loaded, not expired; relationships are loaded.
        assert (ticket.priority, ticket.sla_paused_seconds, ticket.queue) == ("normal", 0, None)
        assert record.to_addrs == [] and record.attachments == []
        assert [p.email for p in ticket.participants] == ["ayse@example.com.tr"]
        assert ticket.messages == [record] and record.ticket is ticket
        assert session.get(Ticket, ticket.id) is ticket
        assert not session.new and not session.dirty
        session.flush()
        assert seen == []  # nothing was waiting to be written, nothing was read back
        ticket.status = "pending"  # a change after the insert is an update as usual
        session.flush()
        assert len(seen) == 1 and seen[0].startswith("UPDATE tickets")
    with state.db.transaction() as session:
        assert session.scalar(select(func.count(TicketMessage.id))) == 1
        assert session.scalar(select(func.count(Participant.id))) == 1
        assert session.scalar(select(Ticket.status)) == "pending"


def test_a_rolled_back_savepoint_takes_the_rows_back(state: State) -> None:
    with state.db.transaction() as session:
        savepoint = session.begin_nested()
        ticket = _ticket("TR-AAAA-0002")
        insert_row(session, ticket)
        attach(session, [ticket], [])
        ticket_id = ticket.id
        savepoint.rollback()
        assert session.get(Ticket, ticket_id) is None
    with state.db.transaction() as session:
        assert session.scalar(select(func.count(Ticket.id))) == 0


def test_an_object_already_in_the_session_is_refused(state: State) -> None:
    with state.db.transaction() as session:
        ticket = _ticket("TR-AAAA-0003")
        session.add(ticket)
        with pytest.raises(ValueError, match="not transient"):
            insert_row(session, ticket)


def test_a_quarantined_message_in_a_run_announces_nothing(
    tmp_path: Path, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The run's other messages are announced; the one whose savepoint was rolled back after
    # its ticket was inserted is not (its objects left the session with the savepoint).
    state = open_state(
        load_config(write_config(tmp_path, extra=hooks("http://127.0.0.1:9/hook"))), clock=clock
    )
    try:
        victim = accept_requests(state, 3)[1]
        walk = ingest.runner.walk

        def fails_after_writing(ctx: Context, work: Work, *args: Any) -> Ending:
            ending = walk(ctx, work, *args)
            if work.entry.id == victim:
                return Ending("record", error=RuntimeError("a defect after the ticket was written"))
            return ending

        monkeypatch.setattr(ingest.runner, "walk", fails_after_writing)
        done = state.worker.process_run()
        assert {r.journal_id: r.state for r in done}[victim] == JOURNAL_QUARANTINED
        with state.db.read() as session:
            refs = set(session.scalars(select(Ticket.ref)))
        created = [d for d in deliveries(state) if d.event == "ticket.created"]
        received = [d for d in deliveries(state) if d.event == "message.received"]
        assert len(refs) == 2 and len(created) == 2 and len(received) == 2
        assert {json.loads(d.body)["data"]["ticket"]["ref"] for d in created} == refs
    finally:
        state.close()


def _stored_ticket(state: State, ref: str) -> int:
    with state.db.transaction() as session:
        ticket = _ticket(ref)
        session.add(ticket)
        session.flush()
        return ticket.id


def test_pending_column_changes_are_one_update_each_and_leave_the_object_clean(
    state: State,
) -> None:
    ticket_id = _stored_ticket(state, "TR-AAAA-0004")
    with state.db.transaction() as session:
        ticket = session.get(Ticket, ticket_id)
        assert ticket is not None
        ticket.status, ticket.queue = "pending", "kyc"
        ticket.category = "other"  # set to the value it had: no change to write
        seen = _statements(state)
        write_pending(session)
        assert len(seen) == 1 and seen[0].startswith("UPDATE tickets SET status=?, queue=?")
        assert not session.dirty
        session.flush()
        assert len(seen) == 1  # the flush found nothing left to write
        assert (ticket.status, ticket.queue) == ("pending", "kyc")  # still loaded, no query
        assert len(seen) == 1
    with state.db.read() as session:
        assert session.execute(select(Ticket.status, Ticket.queue)).one() == ("pending", "kyc")


def test_anything_but_column_changes_goes_to_the_flush(state: State) -> None:
    ticket_id = _stored_ticket(state, "TR-AAAA-0005")
    with state.db.transaction() as session:
        ticket = session.get(Ticket, ticket_id)
        assert ticket is not None
        ticket.status = "pending"
        ticket.participants.append(Participant(email="can@example.com.tr", role="cc"))
        write_pending(session)
        assert not session.new and not session.dirty
    with state.db.read() as session:
        assert session.scalar(select(Ticket.status)) == "pending"
        assert session.scalar(select(func.count(Participant.id))) == 1


def test_a_rolled_back_savepoint_expires_what_write_pending_updated(state: State) -> None:
    ticket_id = _stored_ticket(state, "TR-AAAA-0006")
    with state.db.transaction() as session:
        ticket = session.get(Ticket, ticket_id)
        assert ticket is not None
        savepoint = session.begin_nested()
        ticket.status = "closed"
        write_pending(session)
        savepoint.rollback()
        assert ticket.status == "open"  # read back: the row is as it was
        session.flush()
    with state.db.read() as session:
        assert session.scalar(select(Ticket.status)) == "open"


def test_a_row_gone_is_an_error_not_a_silent_no_op(state: State) -> None:
    ticket_id = _stored_ticket(state, "TR-AAAA-0007")
    with state.db.transaction() as session:
        ticket = session.get(Ticket, ticket_id)
        assert ticket is not None
        session.connection().execute(delete(Ticket))
        ticket.status = "pending"
        with pytest.raises(StaleDataError):
            write_pending(session)
        session.rollback()


def test_a_status_changed_by_write_pending_is_announced(tmp_path: Path, clock: FixedClock) -> None:
    state = open_state(
        load_config(write_config(tmp_path, extra=hooks("http://127.0.0.1:9/hook"))), clock=clock
    )
    try:
        ticket_id = _stored_ticket(state, "TR-AAAA-0008")
        with state.db.transaction() as session:
            ticket = session.get(Ticket, ticket_id)
            assert ticket is not None
            ticket.status = "pending"
            write_pending(session)
        updated = [d for d in deliveries(state) if d.event == "ticket.updated"]
        assert len(updated) == 1
        assert json.loads(updated[0].body)["data"]["changes"]["status"] == {
            "from": "open",
            "to": "pending",
        }
    finally:
        state.close()
