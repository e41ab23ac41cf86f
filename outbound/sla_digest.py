"""The daily digest: once a day each queue's agents get the list of at-risk and late tickets.

Due from `sla.digest_hour` local time (the SLA calendar's zone) on the calendar's working days;
a daemon that starts later that day still sends it (catch-up), never the day before's. Each
(queue, day) is claimed by inserting an `sla_digests` row in the transaction that queues the
mail: a second daemon's insert hits the unique key (inside a savepoint, so only that queue is
given up) and a tick after a restart finds the row, so a digest goes out once.

A quiet queue (nothing at risk, nothing late) gets no mail: a digest saying "nothing" every
morning teaches people to ignore digests. The row is written anyway, with that outcome, so the
report is computed once per day, not on every tick until midnight.
"""

from __future__ import annotations

from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from domain.clock import Clock
from domain.config import Config
from domain.context import Context
from domain.templating import Templates
from outbound.compose import Envelope, new_message_id
from outbound.outbox_rows import queue_outgoing
from outbound.sla import SlaAction, queue_report
from outbound.sla_deadlines import next_deadline_text
from storage.db import Database
from storage.models import SlaDigest, Ticket

DIGEST = "digest"


def digest_day(config: Config, clock: Clock) -> date | None:
    """Today's local date when the digest is due now, else None."""
    sla = config.sla
    local = clock.now().astimezone(ZoneInfo(sla.calendar.timezone))
    day = local.date()
    if not sla.enabled or local.hour < sla.digest_hour:
        return None
    if day.weekday() not in sla.calendar.days or day in sla.calendar.holidays:
        return None  # nobody reads a digest on a day off; Monday's lists what is late then
    return day


def send_digests(
    db: Database,
    config: Config,
    clock: Clock,
    templates: Templates,
    dry_run: bool = False,
    outbox_clock: Clock | None = None,
) -> list[SlaAction]:
    day = digest_day(config, clock)
    queues = [q.name for q in config.team.queues]
    if day is None or not queues:
        return []
    with db.transaction(rehearse=dry_run) as session:
        done = set(session.scalars(select(SlaDigest.queue).where(SlaDigest.day == day)))
        due = [name for name in queues if name not in done]
        if not due:  # the usual case after the first tick of the day: one cheap query
            return []
        ctx = Context(session, config, clock, templates, outbox_clock=outbox_clock)
        report = {row["queue"]: row for row in queue_report(session, clock.now())}
        return [
            action
            for name in due
            if (action := _one_queue(ctx, name, report.get(name), day)) is not None
        ]


def _one_queue(ctx: Context, name: str, row: dict[str, Any] | None, day: date) -> SlaAction | None:
    now = ctx.clock.now()
    at_risk: list[str] = row["at_risk"] if row else []
    breached: list[str] = row["breached"] if row else []
    agents = ctx.config.team.agents_of(name)
    if not at_risk and not breached:
        outcome = "skipped: nothing at risk or late"
    elif not agents:
        outcome = "skipped: nobody to tell"
    else:
        outcome = f"sent to {', '.join(a.email for a in agents)}"
    try:
        with ctx.session.begin_nested():
            ctx.session.add(SlaDigest(queue=name, day=day, sent_at=now, outcome=outcome))
    except IntegrityError:
        return None  # another daemon claimed this queue's digest for today
    recipients: tuple[str, ...] = ()
    if outcome.startswith("sent"):
        lists = {"at_risk": _lines(ctx, at_risk), "breached": _lines(ctx, breached)}
        for agent in agents:
            _queue_digest(ctx, name, day, agent.email, agent.name, lists)
        recipients = tuple(a.email for a in agents)
    return SlaAction("-", DIGEST, name, 0, day.isoformat(), recipients, outcome)


def _lines(ctx: Context, refs: list[str]) -> list[dict[str, str]]:
    if not refs:
        return []
    tickets = ctx.session.scalars(select(Ticket).where(Ticket.ref.in_(refs)).order_by(Ticket.id))
    return [
        {
            "ref": t.ref,
            "subject": t.subject,
            "assignee": t.assignee or "-",
            "deadline": next_deadline_text(t, ctx.config.desk.timezone),
        }
        for t in tickets
    ]


def _queue_digest(
    ctx: Context, queue: str, day: date, to: str, to_name: str, lists: dict[str, Any]
) -> None:
    desk = ctx.config.desk
    body = ctx.templates.render(
        "sla_digest", desk.language, queue=queue, day=day.isoformat(), desk_name=desk.name, **lists
    )
    envelope = Envelope(
        sender_name=desk.name,
        sender=desk.address,
        to_name=to_name,
        to=to,
        message_id=new_message_id(desk.secret, "-", desk.domain),
        in_reply_to=None,
        references=(),
        date=ctx.clock.now(),
        auto_submitted="auto-generated",
        ref="-",  # about a queue, not one ticket
        loop_marker=desk.address,
    )
    # Staff mail without a ticket: no history entry, no customer rate limit.
    queue_outgoing(ctx, None, "sla-digest", envelope, body, None, automatic=False)
