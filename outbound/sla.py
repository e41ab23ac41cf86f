"""The SLA clock's tick: send the reminders and escalations that are due, each once.

What is due lives in `sla_events` (written by outbound/sla_deadlines.py with the deadlines).
A tick claims due rows in batches with `FOR UPDATE SKIP LOCKED` on PostgreSQL (SQLite's
`BEGIN IMMEDIATE` serialises writers instead), queues the mail in the outbox and sets `sent_at`
in the same transaction: two daemons ticking together, or a tick repeated after a restart,
never send one twice.

Catch-up after downtime sends what is still useful, once: a reminder whose deadline already
passed is skipped (the escalation says more), and of several reminder points due together for
one deadline only the latest goes out. With business hours, reminders wait for working time.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from domain.clock import Clock
from domain.config import Config
from domain.context import Context
from domain.history import add_note
from domain.labels import local_time
from domain.templating import Templates
from outbound.addresses import agent_reply_address
from outbound.agent_mail import desk_envelope, thread_root
from outbound.automatic import AutomaticMail, queue_automatic
from outbound.outbox_rows import queue_outgoing
from outbound.sla_deadlines import STOPPED, auto_close_at, next_deadline, on_ticket_event
from storage.db import Database
from storage.models import (
    SLA_AUTO_CLOSE,
    SLA_ESCALATION,
    SLA_FOLLOWUP,
    SLA_PENDING_REMINDER,
    SLA_REMINDER,
    SLA_SURVEY,
    SlaEvent,
    Ticket,
)

BATCH = 500
# Events whose mail goes to the customer, through the gate of automatic mail.
CUSTOMER_TEMPLATES = {
    SLA_FOLLOWUP: "sla_followup",
    SLA_PENDING_REMINDER: "sla_pending_reminder",
    SLA_AUTO_CLOSE: "sla_auto_closed",
    SLA_SURVEY: "survey",
}
TARGET_LABELS = {
    "en": {
        "first_answer": "first answer",
        "next_answer": "next answer",
        "resolution": "resolution",
    },
    "tr": {"first_answer": "ilk yanıt", "next_answer": "sonraki yanıt", "resolution": "çözüm"},
}


@dataclass(frozen=True)
class SlaAction:
    ref: str
    kind: str
    target: str
    point: int
    deadline: str
    recipients: tuple[str, ...]
    outcome: str

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "recipients": list(self.recipients)}


def tick(
    db: Database,
    config: Config,
    clock: Clock,
    templates: Templates,
    dry_run: bool = False,
    outbox_clock: Clock | None = None,
) -> list[SlaAction]:
    """Settle what is due at `clock`'s time; mail is queued by `outbox_clock` (default `clock`),
    so a run `--at` a later time sends its reminders now."""
    actions: list[SlaAction] = []
    while True:
        with db.transaction(rehearse=dry_run) as session:
            ctx = Context(session, config, clock, templates, outbox_clock=outbox_clock)
            batch = _one_batch(ctx, limit=None if dry_run else BATCH)
        if dry_run:
            return batch
        actions += batch
        if len(batch) < BATCH:
            return actions


def _one_batch(ctx: Context, limit: int | None) -> list[SlaAction]:
    now = ctx.clock.now()
    query = (
        select(SlaEvent, Ticket)
        .join(Ticket, Ticket.id == SlaEvent.ticket_id)
        .where(SlaEvent.sent_at.is_(None), SlaEvent.due_at <= now)
        .order_by(SlaEvent.due_at, SlaEvent.id)
        .with_for_update(skip_locked=True, of=SlaEvent)
    )
    if not ctx.config.sla.calendar.is_open(now):
        # Nobody is reminded at night; a reminder overtaken by its deadline is settled now.
        query = query.where(or_(SlaEvent.kind != SLA_REMINDER, SlaEvent.deadline <= now))
    rows = ctx.session.execute(query.limit(limit) if limit else query).all()
    latest: dict[tuple[int, str, datetime], int] = {}
    for event, _ticket in rows:
        if event.kind == SLA_REMINDER:
            key = (event.ticket_id, event.target, event.deadline)
            latest[key] = max(latest.get(key, 0), event.point)
    actions = []
    for event, ticket in rows:
        superseded = (
            event.kind == SLA_REMINDER
            and latest[(event.ticket_id, event.target, event.deadline)] > event.point
        )
        actions.append(_settle(ctx, event, ticket, now, superseded))
    ctx.session.flush()
    return actions


def _skip_reason(
    ctx: Context, event: SlaEvent, ticket: Ticket, now: datetime, superseded: bool
) -> str | None:
    if event.target == "pending":
        current = auto_close_at(ticket, ctx.config.sla)
        running = current is not None
    elif event.kind == SLA_SURVEY:
        # Keyed by the opening time (outbound/survey.py); owed while the ticket stays closed.
        current, running = ticket.created_at, ctx.config.sla.survey and ticket.status == "closed"
    else:
        current = getattr(ticket, f"sla_{event.target}_due")
        running = ticket.status not in STOPPED and ticket.sla_paused_at is None
    if not running or current != event.deadline:
        return "skipped: the deadline no longer runs"
    if event.kind in (SLA_REMINDER, SLA_PENDING_REMINDER) and event.deadline <= now:
        return "skipped: the deadline passed before the reminder (the escalation tells)"
    if superseded:
        return "skipped: a later reminder for the same deadline is due too"
    return None


def _recipients(ctx: Context, event: SlaEvent, ticket: Ticket) -> tuple[str, ...]:
    team = ctx.config.team
    if event.kind == SLA_REMINDER:
        if ticket.assignee:
            return (ticket.assignee,)
        return tuple(a.email for a in team.agents_of(ticket.queue))
    contacts = tuple(
        address for q in team.queues if q.name == ticket.queue for address in q.escalation
    )
    return contacts or team.admins


def _settle(
    ctx: Context, event: SlaEvent, ticket: Ticket, now: datetime, superseded: bool
) -> SlaAction:
    calendar = ctx.config.sla.calendar
    deadline = f"{event.deadline.astimezone(ZoneInfo(calendar.timezone)):%Y-%m-%d %H:%M %Z}"
    recipients: tuple[str, ...] = ()
    outcome = _skip_reason(ctx, event, ticket, now, superseded)
    if outcome is None and event.kind in CUSTOMER_TEMPLATES:
        # Customer mail passes the gate of all automatic mail (rate limit, bounces, loops).
        mail = AutomaticMail(event.kind, CUSTOMER_TEMPLATES[event.kind], ticket.customer, None)
        result = queue_automatic(ctx, ticket, mail)
        queued = result.startswith("sent")
        recipients = (ticket.customer,) if queued else ()
        outcome = f"{result.replace('sent', f'sent to {ticket.customer}', 1)}" if queued else result
        if event.kind == SLA_AUTO_CLOSE:
            outcome = f"closed; {outcome}"
    elif outcome is None:
        recipients = _recipients(ctx, event, ticket)
        outcome = f"sent to {', '.join(recipients)}" if recipients else "skipped: nobody to tell"
        for address in recipients:
            _queue_mail(ctx, event, ticket, address, deadline)
    # Settled before the close below recomputes the ticket's rows (unsent ones are dropped).
    event.sent_at = now
    event.outcome = outcome
    if event.kind == SLA_AUTO_CLOSE and outcome.startswith("closed"):
        _auto_close(ctx, ticket, event)
    return SlaAction(
        ticket.ref, event.kind, event.target, event.point, deadline, recipients, outcome
    )


def _auto_close(ctx: Context, ticket: Ticket, event: SlaEvent) -> None:
    paused = ticket.sla_paused_at
    since = local_time(paused, ctx.config.desk.timezone) if paused is not None else "-"
    ticket.status = "closed"
    ticket.updated_at = ctx.clock.now()
    add_note(
        ctx,
        ticket,
        "Closed automatically",
        f"No answer from the customer since {since}; closed "
        f"after {ctx.config.sla.auto_close_hours:g} hours (sla.auto_close_hours).",
        f"note:auto-close:{ticket.id}:{event.id}",
    )
    on_ticket_event(ctx, ticket, "auto_closed")


def _queue_mail(ctx: Context, event: SlaEvent, ticket: Ticket, to: str, deadline: str) -> None:
    language = ctx.config.desk.language
    agent = ctx.config.team.agent(to)
    body = ctx.templates.render(
        f"sla_{event.kind}",
        language,
        ref=ticket.ref,
        subject=ticket.subject,
        customer=ticket.customer,
        target_label=TARGET_LABELS[language][event.target],
        point=event.point,
        deadline=deadline,
        queue=ticket.queue or "",
        assignee=ticket.assignee or "",
        status=ticket.status,
        priority=ticket.priority,
        desk_name=ctx.config.desk.name,
    )
    root = thread_root(ctx, ticket)
    envelope = desk_envelope(
        ctx,
        ticket,
        to,
        agent.name if agent else "",
        "auto-generated",
        in_reply_to=root,
        references=(root,),
        reply_to=agent_reply_address(ctx.config.desk, ticket.ref),
    )
    # Mail to staff, not to customers: the customer rate limit of automatic mail does not apply.
    queue_outgoing(ctx, ticket, f"sla-{event.kind}", envelope, body, None, automatic=False)


def report(db: Database, config: Config, clock: Clock) -> list[dict[str, Any]]:
    """Per queue: running tickets, those past a reminder point (at risk) and those breached."""
    with db.read() as session:
        return queue_report(session, clock.now())


def queue_report(session: Session, now: datetime) -> list[dict[str, Any]]:
    """report() inside a transaction (the daily digest reads it in the tick's)."""
    queues: dict[str, dict[str, Any]] = {}
    reminded = set(
        session.scalars(
            select(SlaEvent.ticket_id).where(
                SlaEvent.kind == SLA_REMINDER, SlaEvent.due_at <= now, SlaEvent.deadline > now
            )
        )
    )
    # A deadline the clock has escalated is breached whatever the time now: a tick run `--at` a
    # later time, or by a daemon whose clock is ahead, has told the escalation contact already.
    escalated = {
        (ticket_id, deadline)
        for ticket_id, deadline in session.execute(
            select(SlaEvent.ticket_id, SlaEvent.deadline).where(
                SlaEvent.kind == SLA_ESCALATION, SlaEvent.sent_at.is_not(None)
            )
        )
    }
    tickets = session.scalars(
        select(Ticket).where(Ticket.status != "closed", Ticket.merged_into_id.is_(None))
    )
    for ticket in tickets:
        row = queues.setdefault(
            ticket.queue or "-",
            {"queue": ticket.queue or "-", "open": 0, "at_risk": [], "breached": []},
        )
        row["open"] += 1
        due = next_deadline(ticket)
        if due is not None and (due <= now or (ticket.id, due) in escalated):
            row["breached"].append(ticket.ref)
        elif due is not None and ticket.id in reminded:
            row["at_risk"].append(ticket.ref)
    return [queues[name] for name in sorted(queues)]
