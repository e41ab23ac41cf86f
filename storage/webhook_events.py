"""Webhook events, written in the transaction of the change that causes them (issue 20).

Like the outbox, an event is a row committed with the change itself, so a crash never loses an
event of a committed change nor sends one of a change rolled back. The changes come from many
places (the pipeline, agents' commands, merges and splits, the SLA tick, the sender, identity
decisions, the HTTP API); instead of a call in each, which the next path would forget, the
database's sessions watch the rows that make an event: after each flush they note what was
added or changed (ORM attribute history), and just before the commit they write one
`webhook_deliveries` row per endpoint that asked for the event, from the rows as committed.
A ticket created and then routed in one transaction is one `ticket.created` with its queue,
not a creation and an update.

| event | when |
|---|---|
| ticket.created | a new ticket (a new mail, a split, one opened on a customer's behalf) |
| message.received | a person's message in a ticket: a customer's or an agent's mail, a note |
| message.sent | a message of a ticket's history (an acknowledgement, an answer) was delivered |
| ticket.updated | status, category, queue, assignee or priority changed |
| kyc.document_received | an identity document was kept |
| kyc.decided | an agent approved or rejected a ticket's identity documents |
| sla.breached | a deadline passed unmet (the SLA clock's escalation point) |

The bodies carry what identifies the change (references, states, addresses, subjects), never
message text or files: those stay behind the audited API.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, event, inspect, select
from sqlalchemy.orm import Session, sessionmaker

from storage.models import (
    DOC_APPROVED,
    DOC_REJECTED,
    OUTBOX_SENT,
    SLA_ESCALATION,
    WEBHOOK_DELIVERED,
    WEBHOOK_FAILED,
    WEBHOOK_QUEUED,
    Document,
    OutboxMail,
    SlaEvent,
    Ticket,
    TicketMessage,
    Verification,
    WebhookDelivery,
)

TICKET_CREATED = "ticket.created"
MESSAGE_RECEIVED = "message.received"
MESSAGE_SENT = "message.sent"
TICKET_UPDATED = "ticket.updated"
KYC_DOCUMENT_RECEIVED = "kyc.document_received"
KYC_DECIDED = "kyc.decided"
SLA_BREACHED = "sla.breached"
EVENT_TYPES = (
    TICKET_CREATED,
    MESSAGE_RECEIVED,
    MESSAGE_SENT,
    TICKET_UPDATED,
    KYC_DOCUMENT_RECEIVED,
    KYC_DECIDED,
    SLA_BREACHED,
)
# A change of one of these is a ticket.updated; updated_at and the SLA columns are not.
WATCHED_FIELDS = ("status", "category", "queue", "assignee", "priority")
# The kinds of incoming history a person wrote (not ticketd's own notes, not auto-replies).
PERSON_KINDS = ("customer", "agent", "note")
DECIDED = (DOC_APPROVED, DOC_REJECTED)
# What the SLA tick writes on an escalation of a deadline that no longer ran (outbound/sla.py).
NOT_A_BREACH = "skipped: the deadline no longer runs"
_FACTS = "ticketd.webhook_facts"


@dataclass(frozen=True)
class Endpoint:
    url: str
    events: frozenset[str]


@dataclass
class _Facts:
    """What the flushes of one transaction added or changed, by primary key."""

    created: dict[int, None] = field(default_factory=dict)
    messages: dict[int, None] = field(default_factory=dict)
    documents: dict[int, None] = field(default_factory=dict)
    decisions: dict[int, None] = field(default_factory=dict)
    breaches: dict[int, None] = field(default_factory=dict)
    sent: dict[int, None] = field(default_factory=dict)
    # Ticket id -> field -> its value before this transaction changed it.
    changes: dict[int, dict[str, Any]] = field(default_factory=dict)


def _changed(obj: object, name: str) -> tuple[bool, Any]:
    """Whether this flush changed the attribute, and its value before."""
    history = inspect(obj).attrs[name].history
    if not history.added:
        return False, None
    return True, history.deleted[0] if history.deleted else None


def _note_new(facts: _Facts, obj: object) -> None:
    if isinstance(obj, Ticket):
        facts.created[obj.id] = None
    elif isinstance(obj, TicketMessage):
        if obj.direction == "in" and obj.kind in PERSON_KINDS:
            facts.messages[obj.id] = None
    elif isinstance(obj, Document):
        facts.documents[obj.id] = None


def note_inserted(session: Session, obj: object) -> None:
    """A row inserted without the unit of work (storage/direct_insert.py): noted as a flush's
    new object is. Noted whether or not any endpoint is configured: the facts are dropped
    with the transaction when none is."""
    _note_new(session.info.setdefault(_FACTS, _Facts()), obj)


def note_updated(session: Session, obj: object) -> None:
    """A row updated without the unit of work (storage/direct_insert.py `write_pending`),
    before its attributes' history is cleared: noted as a flush's changed object is."""
    _note_dirty(session.info.setdefault(_FACTS, _Facts()), obj)


def _note_dirty(facts: _Facts, obj: object) -> None:
    if isinstance(obj, Ticket):
        for name in WATCHED_FIELDS:
            changed, before = _changed(obj, name)
            if changed:
                facts.changes.setdefault(obj.id, {}).setdefault(name, before)
    elif isinstance(obj, OutboxMail):
        if _changed(obj, "state")[0] and obj.state == OUTBOX_SENT:
            facts.sent[obj.id] = None
    elif isinstance(obj, SlaEvent):
        if obj.kind == SLA_ESCALATION and _changed(obj, "sent_at")[0] and obj.sent_at:
            facts.breaches[obj.id] = None
    elif isinstance(obj, Document) and _changed(obj, "state")[0] and obj.state in DECIDED:
        facts.decisions[obj.id] = None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def ticket_summary(ticket: Ticket) -> dict[str, Any]:
    """A ticket as `tickets list --json` shows it, with its queue, assignee and priority."""
    return {
        "ref": ticket.ref,
        "status": ticket.status,
        "category": ticket.category,
        "queue": ticket.queue,
        "assignee": ticket.assignee,
        "priority": ticket.priority,
        "customer": ticket.customer,
        "subject": ticket.subject,
        "created_at": _iso(ticket.created_at),
        "updated_at": _iso(ticket.updated_at),
    }


def message_summary(message: TicketMessage) -> dict[str, Any]:
    """A history message without its text: who, to whom, what kind, which files."""
    return {
        "id": message.id,
        "direction": message.direction,
        "kind": message.kind,
        "from": message.from_addr,
        "to": list(message.to_addrs),
        "subject": message.subject,
        "message_id": message.message_id,
        "attachments": [
            {k: a.get(k) for k in ("filename", "content_type", "size")} for a in message.attachments
        ],
        "created_at": _iso(message.created_at),
    }


Found = tuple[str, Ticket | None, dict[str, Any]]


def _ticket_events(session: Session, facts: _Facts) -> Iterator[Found]:
    for ticket_id in facts.created:
        ticket = session.get(Ticket, ticket_id)
        if ticket is not None:  # gone with a rolled-back savepoint
            yield TICKET_CREATED, ticket, {"ticket": ticket_summary(ticket)}
    for message_id in facts.messages:
        message = session.get(TicketMessage, message_id)
        if message is not None:
            ticket = session.get(Ticket, message.ticket_id)
            data = {"ticket": ticket_summary(ticket) if ticket else None}
            yield MESSAGE_RECEIVED, ticket, data | {"message": message_summary(message)}
    for ticket_id, before in facts.changes.items():
        ticket = session.get(Ticket, ticket_id)
        if ticket is None or ticket_id in facts.created:
            continue
        changes = {
            name: {"from": old, "to": getattr(ticket, name)}
            for name, old in before.items()
            if old != getattr(ticket, name)
        }
        if changes:
            yield TICKET_UPDATED, ticket, {"ticket": ticket_summary(ticket), "changes": changes}


def _sent_events(session: Session, facts: _Facts) -> Iterator[Found]:
    for outbox_id in facts.sent:
        mail = session.get(OutboxMail, outbox_id)
        if mail is None or mail.ticket_id is None:
            continue
        # Only mail that is part of the ticket's history (not notifications to agents).
        message = session.scalar(
            select(TicketMessage).where(
                TicketMessage.message_id == mail.message_id, TicketMessage.direction == "out"
            )
        )
        ticket = session.get(Ticket, mail.ticket_id)
        if message is not None and ticket is not None:
            summary = message_summary(message) | {"to": list(mail.recipients)}
            yield MESSAGE_SENT, ticket, {"ticket": ticket_summary(ticket), "message": summary}


def _decision_events(session: Session, facts: _Facts) -> Iterator[Found]:
    """One kyc.decided per ticket and decision: an agent decides a ticket's waiting documents
    together. `verification` is where the customer's identity check stands after it (a
    decision on documents the verification did not wait for leaves it as it was)."""
    decided: dict[tuple[int, str], list[Document]] = {}
    for document_id in facts.decisions:
        document = session.get(Document, document_id)
        if document is not None and document.state in DECIDED:
            decided.setdefault((document.ticket_id, document.state), []).append(document)
    for (ticket_id, state), documents in decided.items():
        ticket = session.get(Ticket, ticket_id)
        first = documents[0]
        verification = session.scalar(
            select(Verification.state).where(Verification.customer == first.customer.lower())
        )
        record = {
            "state": state,
            "customer": first.customer,
            "reason": first.reason,
            "decided_by": first.decided_by,
            "decided_at": _iso(first.decided_at),
            "documents": [{"id": d.id, "filename": d.filename} for d in documents],
            "verification": verification,
        }
        yield (
            KYC_DECIDED,
            ticket,
            {"ticket": ticket_summary(ticket) if ticket else None} | {"decision": record},
        )


def _kyc_sla_events(session: Session, facts: _Facts) -> Iterator[Found]:
    for document_id in facts.documents:
        document = session.get(Document, document_id)
        if document is None:
            continue
        ticket = session.get(Ticket, document.ticket_id)
        record = {
            "id": document.id,
            "customer": document.customer,
            "filename": document.filename,
            "type": document.detected_type,
            "size": document.size,
        }
        data = {"ticket": ticket_summary(ticket) if ticket else None, "document": record}
        yield KYC_DOCUMENT_RECEIVED, ticket, data
    yield from _decision_events(session, facts)
    for sla_id in facts.breaches:
        sla = session.get(SlaEvent, sla_id)
        if sla is None or (sla.outcome or "").startswith(NOT_A_BREACH):
            continue
        ticket = session.get(Ticket, sla.ticket_id)
        if ticket is not None:
            record = {"target": sla.target, "deadline": _iso(sla.deadline)}
            yield SLA_BREACHED, ticket, {"ticket": ticket_summary(ticket), "sla": record}


class EventRecorder:
    """Watches one database's sessions; `endpoints` (from `[[webhooks]]`) may be replaced at
    any time (SIGHUP): each commit reads the current value."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        now: Callable[[], datetime],
        new_id: Callable[[], str] = lambda: f"msg_{uuid.uuid4().hex}",
    ) -> None:
        self.endpoints: tuple[Endpoint, ...] = ()
        self.now = now
        self.new_id = new_id
        event.listen(sessions, "after_flush", self._after_flush)
        event.listen(sessions, "before_commit", self._before_commit)
        event.listen(sessions, "after_transaction_end", self._after_transaction_end)

    def _after_flush(self, session: Session, _context: Any) -> None:
        if not self.endpoints:
            return
        facts = session.info.setdefault(_FACTS, _Facts())
        for obj in session.new:
            _note_new(facts, obj)
        for obj in session.dirty:
            _note_dirty(facts, obj)

    def _before_commit(self, session: Session) -> None:
        if not self.endpoints:
            return
        session.flush()  # the commit's own flush comes after this hook: its facts first
        facts: _Facts | None = session.info.pop(_FACTS, None)
        if facts is None:
            return
        now = self.now()
        for found in (
            *_ticket_events(session, facts),
            *_kyc_sla_events(session, facts),
            *_sent_events(session, facts),
        ):
            self._write(session, found, now)

    def _write(self, session: Session, found: Found, now: datetime) -> None:
        kind, ticket, data = found
        urls = [e.url for e in self.endpoints if kind in e.events]
        if not urls:
            return
        webhook_id = self.new_id()
        body = {"type": kind, "timestamp": _iso(now), "data": data}
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        for url in urls:
            session.add(
                WebhookDelivery(
                    webhook_id=webhook_id,
                    event=kind,
                    url=url,
                    ticket_id=ticket.id if ticket is not None else None,
                    body=text,
                    state=WEBHOOK_QUEUED,
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                )
            )

    def _after_transaction_end(self, session: Session, transaction: Any) -> None:
        if transaction.parent is None:  # the outermost: a rollback leaves nothing to write
            session.info.pop(_FACTS, None)


def forget_deliveries(
    session: Session, ticket_ids: list[int] | None = None, finished_before: datetime | None = None
) -> int:
    """Remove webhook deliveries whose bodies name a customer: every one of these tickets (an
    erasure, a ticket past `[retention] ticket_days`), or, with `finished_before`, those
    delivered or given up before then (`[retention] raw_days`). Returns how many."""
    query = delete(WebhookDelivery)
    if ticket_ids is not None:
        query = query.where(WebhookDelivery.ticket_id.in_(ticket_ids))
    if finished_before is not None:
        query = query.where(
            WebhookDelivery.state.in_((WEBHOOK_DELIVERED, WEBHOOK_FAILED)),
            WebhookDelivery.created_at < finished_before,
        )
    result = session.execute(query.execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)
