"""A reply or note sent with an `Idempotency-Key` (or a console form's nonce) looks for an
earlier request of its key among the messages of its own ticket, by the ticket's index: the
look-up was a prefix LIKE over every message ever recorded (SQLite uses no index for a LIKE with
ESCAPE), run inside the writers' turn for every keyed request, so it grew with the desk's whole
history (issue 19).

The statement is the one web/ticket_routes.py runs, caught on its way to the database, and its
plan is SQLite's own (EXPLAIN QUERY PLAN)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Connection, event

from domain.clock import FixedClock
from storage.models import Ticket, TicketMessage
from ticketd.state import State
from web.errors import ApiError
from web.ticket_routes import earlier_request, keyed


def _message(ticket_id: int, dedupe_key: str, text: str, clock: FixedClock) -> TicketMessage:
    return TicketMessage(
        ticket_id=ticket_id,
        direction="out",
        kind="agent",
        dedupe_key=dedupe_key,
        from_addr="destek@desk.example",
        subject="Re: Para çekme",
        text=text,
        created_at=clock.now(),
    )


def _ticket(state: State, clock: FixedClock, ref: str, dedupe_keys: list[str]) -> int:
    with state.db.transaction() as session:
        ticket = Ticket(
            ref=ref,
            customer="ali@musteri.example",
            language="tr",
            subject="Para çekme",
            created_at=clock.now(),
            updated_at=clock.now(),
        )
        session.add(ticket)
        session.flush()
        session.add_all(_message(ticket.id, key, "Birinci", clock) for key in dedupe_keys)
        return ticket.id


def _earlier(state: State, ticket_id: int, text: str, strict: bool) -> bool:
    dedupe, prefix = keyed(f"api:reply:{ticket_id}:7", "k-1", text)
    with state.db.transaction() as session:
        return earlier_request(session, ticket_id, dedupe, prefix, strict)


def test_the_same_key_is_found_on_its_ticket_only(state: State, clock: FixedClock) -> None:
    first_id = _ticket(state, clock, "7KQM-X3P9", [])
    answered, _ = keyed(f"api:reply:{first_id}:7", "k-1", "Birinci")
    with state.db.transaction() as session:
        session.add(_message(first_id, answered, "Birinci", clock))
    second_id = _ticket(state, clock, "8KQM-X3P9", [])
    assert _earlier(state, first_id, "Birinci", strict=True)  # answered already
    with pytest.raises(ApiError) as refused:  # the key again with another text
        _earlier(state, first_id, "Başka", strict=True)
    assert refused.value.status == 422
    assert not _earlier(state, first_id, "Başka", strict=False)  # the console: a new answer
    assert not _earlier(state, second_id, "İkinci", strict=True)  # another ticket's request


def test_the_look_up_reads_the_tickets_index(state: State, clock: FixedClock) -> None:
    # Other tickets' keyed messages: what a scan would have read.
    _ticket(state, clock, "9KQM-X3P9", [f"api:reply:1:7:{n:032x}:{n:032x}" for n in range(50)])
    ticket_id = _ticket(state, clock, "AKQM-X3P9", ["mail:one"])
    dedupe, prefix = keyed(f"api:reply:{ticket_id}:7", "k-1", "Birinci")
    assert prefix is not None
    seen: list[tuple[str, Any]] = []

    def caught(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if " LIKE " in statement.upper():
            seen.append((statement, parameters))

    event.listen(state.db.engine, "before_cursor_execute", caught)
    try:
        with state.db.transaction() as session, pytest.raises(ApiError):
            other, _ = keyed(f"api:reply:{ticket_id}:7", "k-1", "Başka")
            session.add(_message(ticket_id, other, "Başka", clock))
            session.flush()
            earlier_request(session, ticket_id, dedupe, prefix, strict=True)
    finally:
        event.remove(state.db.engine, "before_cursor_execute", caught)
    [(statement, parameters)] = seen
    with state.db.engine.connect() as connection:
        plan = _plan(connection, statement, parameters)
    assert "ix_messages_ticket" in plan, plan
    assert "SCAN messages" not in plan, plan


def _plan(connection: Connection, statement: str, parameters: Any) -> str:
    rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
    return "\n".join(" ".join(str(column) for column in row) for row in rows)
