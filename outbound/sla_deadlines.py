"""A ticket's SLA deadlines, recomputed whenever it changes, and the events they make due.

Called from the pipeline and the agent-mail step in the transaction that changes the ticket,
so the deadlines and the rows the tick will send commit together with the change. Everything
is recomputed from the ticket's own columns (opening time, first answer, waiting since, time
paused), so a changed category or priority simply moves the deadlines.

Events (the `event` argument): "opened" (a new ticket), "customer" (the customer wrote: a
paused clock restarts, the next-answer clock starts), "answered" (an agent's answer reached
the customer: satisfies the first and the next answer), "changed" (status, category,
priority, assignee), "auto_closed" (the tick closed it: like "changed", but no survey).
Waiting for the customer (status pending) pauses every clock; a close owes the customer the
satisfaction survey (outbound/survey.py).
"""

from __future__ import annotations

from collections.abc import Sequence, Set
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, bindparam, insert, select
from sqlalchemy.orm import Session

from domain.config_sla import SlaConfig
from domain.context import Context
from domain.labels import local_time
from outbound.survey import schedule_survey
from storage.models import (
    SLA_AUTO_CLOSE,
    SLA_ESCALATION,
    SLA_FOLLOWUP,
    SLA_PENDING_REMINDER,
    SLA_REMINDER,
    SLA_SURVEY,
    SlaEvent,
    Ticket,
    TicketMessage,
)

TARGETS = ("first_answer", "next_answer", "resolution")
# No clock runs for these; a merged ticket lives on in the ticket that absorbed it.
STOPPED = ("closed", "merged")
EventKey = tuple[str, str, int, datetime]  # kind, target, point (percent), deadline


def on_ticket_event(ctx: Context, ticket: Ticket, event: str) -> None:
    sla = ctx.config.sla
    if not sla.enabled:
        return
    now = ctx.clock.now()
    if event == "answered":
        ticket.sla_first_answered_at = ticket.sla_first_answered_at or now
        ticket.sla_waiting_since = None
    elif event == "customer":
        if ticket.sla_paused_at is not None:
            paused = sla.calendar.elapsed(ticket.sla_paused_at, now)
            ticket.sla_paused_seconds = (ticket.sla_paused_seconds or 0) + int(
                paused.total_seconds()
            )
            ticket.sla_paused_at = None
        if ticket.sla_first_answered_at is not None and ticket.sla_waiting_since is None:
            ticket.sla_waiting_since = now  # the clock runs from the first unanswered message
    if ticket.status == "pending" and ticket.sla_paused_at is None:
        ticket.sla_paused_at = now
    # A ticket this message opened has no event rows yet: none to read back (issue 19).
    refresh(ctx.session, ticket, sla, opened=event == "opened")
    if event != "auto_closed":
        # Not after an automatic close: that customer stopped answering and was just told.
        schedule_survey(ctx.session, ticket, sla, now)


def refresh(session: Session, ticket: Ticket, sla: SlaConfig, opened: bool = False) -> None:
    """Deadlines and events recomputed from the ticket as it is now (a stopped ticket runs no
    clock): the end of every event, and all a change outside the pipeline needs. `opened`:
    the ticket was opened in this transaction, so it has no event rows yet."""
    if sla.enabled:
        if ticket.status in STOPPED:
            ticket.sla_paused_at = None
            ticket.sla_waiting_since = None
        _recompute(ticket, sla)
        reconcile_events(session, ticket, sla, opened)


def after_merge(session: Session, source: Ticket, target: Ticket, sla: SlaConfig) -> None:
    """The survivor owes the merged ticket's customer what they were owed: if the survivor was
    answered already, its next-answer clock runs from the earliest wait of either ticket (a
    source never answered at all has waited since it was opened). The source's clocks stop."""
    if not sla.enabled:
        return
    waits = [t for t in (target.sla_waiting_since, source.sla_waiting_since) if t is not None]
    if source.sla_first_answered_at is None:
        waits.append(source.created_at)
    if target.sla_first_answered_at is not None and waits and target.status not in STOPPED:
        target.sla_waiting_since = min(waits)
    refresh(session, source, sla)
    refresh(session, target, sla)


def _clocks_of(messages: list[TicketMessage]) -> tuple[datetime | None, datetime | None]:
    """(first answered, waiting since) as a ticket holding only these messages has them."""
    answers = [m.created_at for m in messages if m.direction == "out" and m.kind == "agent"]
    if not answers:
        return None, None
    last_answer = max(answers)
    after = [
        m.created_at
        for m in messages
        if m.direction == "in" and m.kind == "customer" and m.created_at > last_answer
    ]
    return min(answers), (min(after) if after else None)


def after_split(
    session: Session, old: Ticket, new: Ticket, moved: list[TicketMessage], sla: SlaConfig
) -> None:
    """Each side's clocks follow the messages it now holds: the split-off ticket is answered
    if an answer moved with it, and waits from the first customer message after the last
    answer; the old ticket no longer waits on a customer message that left it."""
    if not sla.enabled:
        return
    moved_ids = {m.id for m in moved}
    kept = [m for m in old.messages if m.id not in moved_ids]
    new.sla_first_answered_at, new.sla_waiting_since = _clocks_of(moved)
    if old.sla_first_answered_at is not None:
        old.sla_waiting_since = _clocks_of(kept)[1]
    refresh(session, new, sla)
    refresh(session, old, sla)


def _recompute(ticket: Ticket, sla: SlaConfig) -> None:
    policy = sla.policy_for(ticket.category, ticket.priority)
    calendar = sla.calendar
    open_ = ticket.status not in STOPPED
    paused = timedelta(seconds=ticket.sla_paused_seconds or 0)
    first = policy.span("first_answer")
    ticket.sla_first_answer_due = (
        calendar.add(ticket.created_at, first + paused)
        if open_ and first is not None and ticket.sla_first_answered_at is None
        else None
    )
    following = policy.span("next_answer")
    ticket.sla_next_answer_due = (
        calendar.add(ticket.sla_waiting_since, following)
        if open_ and following is not None and ticket.sla_waiting_since is not None
        else None
    )
    resolution = policy.span("resolution")
    ticket.sla_resolution_due = (
        calendar.add(ticket.created_at, resolution + paused)
        if open_ and resolution is not None
        else None
    )


def wanted_events(ticket: Ticket, sla: SlaConfig) -> dict[EventKey, datetime]:
    """Every reminder and escalation the current deadlines call for, with its due time."""
    if ticket.status == "pending" and ticket.sla_paused_at is not None:
        return _waiting_for_customer(ticket, sla)
    if ticket.status in STOPPED or ticket.sla_paused_at is not None:
        return {}
    policy = sla.policy_for(ticket.category, ticket.priority)
    paused = timedelta(seconds=ticket.sla_paused_seconds or 0)
    wanted: dict[EventKey, datetime] = {}
    for target in TARGETS:
        deadline: datetime | None = getattr(ticket, f"sla_{target}_due")
        span = policy.span(target)
        if deadline is None or span is None:
            continue
        start, shift = (
            (ticket.sla_waiting_since, timedelta(0))
            if target == "next_answer" and ticket.sla_waiting_since is not None
            else (ticket.created_at, paused)
        )
        for point in sla.reminders:
            due = sla.calendar.add(start, span * point + shift)
            wanted[(SLA_REMINDER, target, round(point * 100), deadline)] = due
        wanted[(SLA_ESCALATION, target, 100, deadline)] = deadline
        if target != "resolution" and ticket.category in sla.followup_categories:
            due = sla.calendar.add(start, timedelta(hours=sla.followup_hours) + shift)
            wanted[(SLA_FOLLOWUP, target, 0, deadline)] = due
    return wanted


def auto_close_at(ticket: Ticket, sla: SlaConfig) -> datetime | None:
    if ticket.status != "pending" or ticket.sla_paused_at is None or not sla.auto_close_hours:
        return None
    return ticket.sla_paused_at + timedelta(hours=sla.auto_close_hours)


def _waiting_for_customer(ticket: Ticket, sla: SlaConfig) -> dict[EventKey, datetime]:
    """While we wait for the customer: a reminder to them half-way, then the automatic close."""
    close_at = auto_close_at(ticket, sla)
    if close_at is None or ticket.sla_paused_at is None:
        return {}
    half = ticket.sla_paused_at + (close_at - ticket.sla_paused_at) / 2
    return {
        (SLA_PENDING_REMINDER, "pending", 50, close_at): half,
        (SLA_AUTO_CLOSE, "pending", 100, close_at): close_at,
    }


def event_rows(
    ticket_id: int, wanted: dict[EventKey, datetime], have: Set[EventKey] = frozenset()
) -> list[dict[str, object]]:
    """The rows of `SlaEvent` for the wanted events not in `have`, for one bulk insert."""
    return [
        {
            "ticket_id": ticket_id,
            "kind": kind,
            "target": target,
            "point": point,
            "deadline": deadline,
            "due_at": due,
        }
        for (kind, target, point, deadline), due in wanted.items()
        if (kind, target, point, deadline) not in have
    ]


# Built once: building the statement per call cost more than running it.
_EVENTS_OF = select(SlaEvent).where(SlaEvent.ticket_id == bindparam("ticket_id"))
# Core, not the ORM's bulk insert: nothing reads the rows back as objects in the transaction
# that adds them (the tick reads them in its own).
_INSERT_EVENTS = insert(cast(Table, SlaEvent.__table__))


def reconcile_events(
    session: Session, ticket: Ticket, sla: SlaConfig, opened: bool = False
) -> None:
    """Unsent rows no longer wanted go; wanted rows not yet written (sent or not) are added.
    A sent row stays: its key keeps the same reminder from being written, and sent, again.
    `opened`: a ticket opened in this transaction, which has none yet."""
    wanted = wanted_events(ticket, sla)
    # No autoflush: the ticket's new deadlines would be a flush of their own; they go with the
    # events' flush below. Every writer of SlaEvent rows flushes them, so none is pending here.
    existing: Sequence[SlaEvent] = ()
    if not opened:
        with session.no_autoflush:
            existing = session.scalars(_EVENTS_OF, {"ticket_id": ticket.id}).all()
    have: set[EventKey] = set()
    deleted = False
    for row in existing:
        key = (row.kind, row.target, row.point, row.deadline)
        # The survey is not a deadline: it stays owed while the ticket stays closed.
        kept = row.kind == SLA_SURVEY and ticket.status == "closed"
        if row.sent_at is None and key not in wanted and not kept:
            session.delete(row)
            deleted = True
        else:
            have.add(key)
    added = event_rows(ticket.id, wanted, have)
    if added:
        # One executemany: as objects, each row was an INSERT of its own (RETURNING its id,
        # which nothing here reads) and unit-of-work state. Not after an autoflush: the
        # ticket's new deadlines wait for the next flush (the rows need only its id).
        with session.no_autoflush:
            session.execute(_INSERT_EVENTS, added)
    if deleted:
        session.flush()  # no SlaEvent row is left pending (above)


def next_deadline(ticket: Ticket) -> datetime | None:
    """The nearest running deadline (None while paused or closed)."""
    if ticket.sla_paused_at is not None:
        return None
    due = [d for t in TARGETS if (d := getattr(ticket, f"sla_{t}_due")) is not None]
    return min(due, default=None)


def next_deadline_text(ticket: Ticket, zone: str = "UTC") -> str:
    """The nearest deadline as people read it: in the desk's zone (domain/labels.py)."""
    due = next_deadline(ticket)
    return "" if due is None else local_time(due, zone)


def sla_summary(ticket: Ticket) -> dict[str, str | None]:
    """The deadlines as `tickets show` gives them (ISO 8601 UTC, None when none runs)."""
    summary = {
        f"{target}_due": due.isoformat() if (due := getattr(ticket, f"sla_{target}_due")) else None
        for target in TARGETS
    }
    paused = ticket.sla_paused_at
    return summary | {"paused_since": paused.isoformat() if paused else None}
