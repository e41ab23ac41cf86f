"""Merging and splitting tickets, as an agent does it from the command line.

A merge moves the messages and participants of one ticket into another and leaves the merged
ticket behind as a pointer (`status = merged`, `merged_into_id`), so its reference keeps
working: replies to it, and `tickets show` of it, lead to the survivor. A split moves chosen
messages into a new ticket with a new reference; the participants who came only with those
messages go with them.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from domain.clock import Clock
from domain.config_sla import SlaConfig
from domain.config_team import AgentConfig
from domain.context import Context
from domain.errors import Permanent
from domain.history import add_note, system_note
from domain.refs import new_reference, normalise
from outbound.agent_mail import notify_handover
from outbound.sla_deadlines import after_merge, after_split, on_ticket_event
from storage.db import Database
from storage.models import Participant, Ticket, TicketMessage

STATUSES = ("open", "pending", "closed")
PRIORITIES = ("high", "normal", "low")


class TicketOperationError(Permanent):
    """The operation cannot be done; the message says why. Nothing was changed."""


def _load(session: Session, ref: str) -> Ticket:
    canonical = normalise(ref.strip().lstrip("#")) or ref.strip().upper()
    ticket = session.scalar(select(Ticket).where(Ticket.ref == canonical))
    if ticket is None:
        raise TicketOperationError(f"no ticket {ref}")
    return ticket


def _note(ticket: Ticket, text: str, key: str, clock: Clock) -> TicketMessage:
    return system_note(ticket.id, text.split(":")[0], text, f"note:{key}", clock.now())


def merge(db: Database, clock: Clock, source_ref: str, target_ref: str, sla: SlaConfig) -> str:
    with db.transaction() as session:
        source, target = _load(session, source_ref), _load(session, target_ref)
        return merge_tickets(session, clock, source, target, sla)


def merge_tickets(
    session: Session, clock: Clock, source: Ticket, target: Ticket, sla: SlaConfig
) -> str:
    """Merge inside the caller's transaction (an agent's #merge commits with its mail)."""
    if source.merged_into_id is not None:
        raise TicketOperationError(f"{source.ref} is already merged")
    if target.merged_into_id is not None:
        raise TicketOperationError(f"{target.ref} is merged into another ticket: use that")
    if source.id == target.id:
        raise TicketOperationError("a ticket cannot be merged into itself")
    for message in list(source.messages):
        message.ticket_id = target.id
    known = {p.email for p in target.participants}
    for participant in list(source.participants):
        if participant.email not in known:
            target.participants.append(Participant(email=participant.email, role=participant.role))
            known.add(participant.email)
    session.flush()
    stamp = clock.now().isoformat()
    session.add(
        _note(
            target,
            f"Merged: {source.ref} was merged into this ticket; answers go to {target.customer}"
            + (f" (not to {source.customer})" if source.customer != target.customer else ""),
            f"merge:{source.ref}:{stamp}",
            clock,
        )
    )
    session.add(
        _note(
            source,
            f"Merged: this ticket continues as {target.ref}; answers go to {target.customer}",
            f"merged:{source.ref}:{stamp}",
            clock,
        )
    )
    source.status, source.merged_into_id = "merged", target.id
    source.updated_at = target.updated_at = clock.now()
    after_merge(session, source, target, sla)
    return target.ref


def _addresses(messages: list[TicketMessage]) -> set[str]:
    """Everyone received mail named (From, To, Cc): who came with these messages."""
    found: set[str] = set()
    for message in messages:
        if message.direction == "in" and message.kind != "system":
            found.update((message.from_addr, *message.to_addrs, *message.cc_addrs))
    return found


def _move_participants(
    session: Session,
    old: Ticket,
    new: Ticket,
    moving: list[TicketMessage],
    staying: list[TicketMessage],
) -> None:
    """Those who came only with the moved messages leave the old ticket for the new one: a
    stranger split out of a conversation must not keep writing into it."""
    came_with = _addresses(moving) - _addresses(staying) - {old.customer}
    known = {p.email for p in new.participants}
    for participant in list(old.participants):
        if participant.role == "agent" or participant.email not in came_with:
            continue
        old.participants.remove(participant)
        session.delete(participant)
        if participant.email not in known:
            new.participants.append(Participant(email=participant.email, role="cc"))
            known.add(participant.email)


def split(db: Database, clock: Clock, ref: str, positions: list[int], sla: SlaConfig) -> str:
    """Move the messages at these 1-based positions of the history into a new ticket."""
    with db.transaction() as session:
        ticket = _load(session, ref)
        if ticket.merged_into_id is not None:
            raise TicketOperationError(f"{ticket.ref} is merged: split its survivor")
        history = list(ticket.messages)
        bad = [p for p in positions if not 1 <= p <= len(history)]
        if bad or not positions:
            raise TicketOperationError(
                f"positions must be from 1 to {len(history)}; got {positions}"
            )
        moving = [history[p - 1] for p in sorted(set(positions))]
        if len(moving) == len(history):
            raise TicketOperationError("a split must leave at least one message behind")
        first = next((m for m in moving if m.direction == "in"), moving[0])
        now = clock.now()
        while session.scalar(select(Ticket.id).where(Ticket.ref == (new_ref := new_reference()))):
            pass
        new = Ticket(
            ref=new_ref,
            status="open",
            category=ticket.category,
            customer=first.from_addr if first.direction == "in" else ticket.customer,
            customer_name=first.from_name,
            language=ticket.language,
            subject=first.subject or ticket.subject,
            created_at=now,
            updated_at=now,
        )
        session.add(new)
        session.flush()
        for message in moving:
            message.ticket_id = new.id
        new.participants.append(Participant(email=new.customer, role="customer"))
        _move_participants(session, ticket, new, moving, [m for m in history if m not in moving])
        session.flush()
        session.add(
            _note(
                new, f"Split: these messages came from {ticket.ref}", f"split-from:{new_ref}", clock
            )
        )
        session.add(
            _note(
                ticket,
                f"Split: {len(moving)} messages moved to {new_ref}",
                f"split-to:{new_ref}",
                clock,
            )
        )
        ticket.updated_at = now
        session.flush()
        after_split(session, ticket, new, moving, sla)
        return new_ref


@dataclass(frozen=True)
class TicketChange:
    """What `PATCH /api/v1/tickets/{ref}` changes; None leaves a field as it is. `assignee`
    "" takes the ticket from whoever has it."""

    status: str | None = None
    assignee: str | None = None
    queue: str | None = None
    priority: str | None = None


def _change_problems(ctx: Context, change: TicketChange) -> list[str]:
    team = ctx.config.team
    problems = []
    if change.status is not None and change.status not in STATUSES:
        problems.append(f"status: {change.status!r} is not one of {', '.join(STATUSES)}")
    if change.priority is not None and change.priority not in PRIORITIES:
        problems.append(f"priority: {change.priority!r} is not one of {', '.join(PRIORITIES)}")
    if change.assignee and team.agent(change.assignee.strip()) is None:
        problems.append(f"assignee: {change.assignee} is not a configured agent")
    if change.queue is not None and change.queue not in {q.name for q in team.queues}:
        problems.append(f"queue: no queue {change.queue!r}")
    return problems


def _assignee(ctx: Context, given: str | None) -> str | None:
    """The configured agent's address as it is kept (`MEHMET@Example.com` is mehmet@example.com:
    the spelling given would lock the agent out of a ticket assigned to them), None for ""."""
    if not given:
        return None
    agent = ctx.config.team.agent(given.strip())
    assert agent is not None  # checked by _change_problems
    return agent.email


def change_ticket(
    ctx: Context, ticket: Ticket, change: TicketChange, actor: str, actor_name: str
) -> list[str]:
    """Apply `change` as the mail commands #close, #pending, #assign and #priority do (and a
    move to another queue): a note in the history, the SLA clock told, the new assignee or the
    agents of the new queue notified. What changed, as `field value` texts; raises
    TicketOperationError (nothing changed) for a value that is not allowed."""
    problems = _change_problems(ctx, change)
    if ticket.merged_into_id is not None:
        problems.append(f"{ticket.ref} is merged: change its survivor")
    if problems:
        raise TicketOperationError("; ".join(problems))
    before = (ticket.assignee, ticket.queue)
    wanted = {
        "status": change.status,
        "assignee": _assignee(ctx, change.assignee),
        "queue": change.queue,
        "priority": change.priority,
    }
    done = []
    for field, value in wanted.items():
        if (value is not None or (field == "assignee" and change.assignee == "")) and getattr(
            ticket, field
        ) != value:
            setattr(ticket, field, value)
            done.append(f"{field} {value or '(none)'}")
    if not done:
        return []
    summary = ", ".join(done)
    stamp = ctx.clock.now().isoformat()
    add_note(
        ctx, ticket, f"{actor_name}: {summary}", f"{actor}: {summary}", f"note:{stamp}:{actor}"
    )
    on_ticket_event(ctx, ticket, "changed")
    ticket.updated_at = ctx.clock.now()
    tell_new_owners(ctx, ticket, actor, actor_name, before)
    ctx.session.flush()
    return done


def last_customer_message(ctx: Context, ticket: Ticket) -> TicketMessage | None:
    return ctx.session.scalar(
        select(TicketMessage)
        .where(
            TicketMessage.ticket_id == ticket.id,
            TicketMessage.direction == "in",
            TicketMessage.kind == "customer",
        )
        .order_by(TicketMessage.id.desc())
        .limit(1)
    )


def tell_new_owners(
    ctx: Context,
    ticket: Ticket,
    actor: str,
    actor_name: str,
    before: tuple[str | None, str | None],
) -> int:
    """A ticket given to someone or moved to another queue: the new assignee, or the agents of
    the new queue, get its notification and so its reply address. The one who moved it knows
    already."""
    team = ctx.config.team
    owners: dict[str, tuple[AgentConfig, dict[str, str]]] = {}
    if ticket.queue != before[1]:
        moved = {"kind": "queue", "by": actor_name, "queue": ticket.queue or ""}
        owners.update({a.email: (a, moved) for a in team.agents_of(ticket.queue)})
    changed = ticket.assignee is not None and ticket.assignee != before[0]
    new_assignee = team.agent(ticket.assignee) if changed and ticket.assignee else None
    if new_assignee is not None:
        owners[new_assignee.email] = (new_assignee, {"kind": "assigned", "by": actor_name})
    owners.pop(actor, None)
    for person, why in owners.values():
        notify_handover(ctx, ticket, person, why, last_customer_message(ctx, ticket))
    return len(owners)
