"""The pipeline: the named steps a journaled message goes through, in order.

Each step is a small function with one job. They exchange frozen records; a step that decides
the message needs no ticket raises `Ignore` with the reason, which the worker records. Any other
exception quarantines the message with its error (the worker owns that policy). Everything a step
writes goes into the one transaction the worker opened, together with the outbox rows: the
ticket change and the mail it causes commit or vanish together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ingest.classify import Classification, Kind, classify, suppresses_auto_reply
from ingest.language import guess_language
from ingest.parsing import ParsedMessage, parse_message
from ingest.refs import find_references, new_reference
from outbound.compose import Envelope, build_mail, new_message_id, verify_message_id
from outbound.templating import Templates
from storage.models import (
    OUTBOX_QUEUED,
    JournalEntry,
    OutboxMail,
    Participant,
    Ticket,
    TicketMessage,
)
from ticketd.clock import Clock
from ticketd.config import Config


class Ignore(Exception):
    """The message is recorded but needs no ticket: a bounce, an auto-reply, a duplicate."""


@dataclass(frozen=True)
class Context:
    session: Session
    config: Config
    clock: Clock
    templates: Templates


@dataclass(frozen=True)
class Threading:
    ticket: Ticket | None  # the ticket this message continues, None for a new one
    claimed_ref: str | None  # a reference in the subject we did not honour
    how: str


@dataclass(frozen=True)
class Outcome:
    ticket_ref: str
    new_ticket: bool
    acknowledged: bool
    note: str


def step_classify(ctx: Context, message: ParsedMessage) -> Classification:
    verdict = classify(message, ctx.config.desk.addresses)
    if verdict.kind is not Kind.CUSTOMER:
        raise Ignore(f"{verdict.kind}: {verdict.reason}")
    return verdict


def step_deduplicate(ctx: Context, message: ParsedMessage) -> None:
    existing = ctx.session.scalar(
        select(TicketMessage).where(TicketMessage.dedupe_key == message.dedupe_key)
    )
    if existing is not None:
        raise Ignore(f"duplicate: already message {existing.id} of ticket {existing.ticket.ref}")


def _is_participant(ticket: Ticket, email: str) -> bool:
    return any(p.email == email for p in ticket.participants)


def step_thread(ctx: Context, message: ParsedMessage) -> Threading:
    session = ctx.session
    ids = (*message.in_reply_to, *reversed(message.references))
    for message_id in ids:
        ref = verify_message_id(ctx.config.desk.secret, message_id)
        if ref is not None:
            ticket = session.scalar(select(Ticket).where(Ticket.ref == ref))
            if ticket is not None:
                return Threading(ticket, None, f"answers our mail <{message_id}>")
    if ids:
        known = session.scalar(
            select(TicketMessage).where(TicketMessage.message_id.in_(ids)).limit(1)
        )
        if known is not None:
            return Threading(known.ticket, None, "answers a message of the ticket")
        sent = session.scalar(select(OutboxMail).where(OutboxMail.message_id.in_(ids)).limit(1))
        if sent is not None and sent.ticket_id is not None:
            ticket = session.get(Ticket, sent.ticket_id)
            return Threading(ticket, None, "answers our mail")
    for ref in find_references(message.subject):
        ticket = session.scalar(select(Ticket).where(Ticket.ref == ref))
        if ticket is None:
            continue
        if _is_participant(ticket, message.sender.email):
            return Threading(ticket, None, f"reference {ref} in the subject from a participant")
        # A stranger naming someone else's ticket: a new ticket that remembers the claim.
        return Threading(None, ref, f"reference {ref} claimed by a non-participant")
    return Threading(None, None, "new conversation")


def _open_ticket(ctx: Context, message: ParsedMessage, claimed_ref: str | None) -> Ticket:
    now = ctx.clock.now()
    language = guess_language(message.subject, message.text) or ctx.config.desk.language
    for _attempt in range(10):
        ref = new_reference()
        if ctx.session.scalar(select(Ticket.id).where(Ticket.ref == ref)) is None:
            break
    else:  # pragma: no cover - 27 billion references; ten collisions mean a broken RNG
        raise RuntimeError("could not find a free reference number")
    ticket = Ticket(
        ref=ref,
        status="open",
        category="other",
        customer=message.sender.email,
        customer_name=message.sender.name or None,
        language=language,
        subject=message.subject or "(no subject)",
        claimed_ref=claimed_ref,
        created_at=now,
        updated_at=now,
    )
    ctx.session.add(ticket)
    ctx.session.flush()
    return ticket


def _add_participants(ctx: Context, ticket: Ticket, message: ParsedMessage, new: bool) -> None:
    own = set(ctx.config.desk.addresses)
    wanted: list[tuple[str, str]] = [(message.sender.email, "customer" if new else "cc")]
    wanted += [(a.email, "cc") for a in (*message.to, *message.cc)]
    known = {p.email for p in ticket.participants}
    for email, role in wanted:
        if email and email not in own and email not in known:
            ticket.participants.append(Participant(email=email, role=role))
            known.add(email)


def step_record(
    ctx: Context, entry: JournalEntry, message: ParsedMessage, threading: Threading
) -> tuple[Ticket, TicketMessage, bool]:
    new = threading.ticket is None
    ticket = threading.ticket or _open_ticket(ctx, message, threading.claimed_ref)
    record = TicketMessage(
        ticket_id=ticket.id,
        journal_id=entry.id,
        direction="in",
        kind="customer",
        dedupe_key=message.dedupe_key,
        message_id=message.message_id,
        from_addr=message.sender.email,
        from_name=message.sender.name or None,
        to_addrs=[a.email for a in message.to],
        cc_addrs=[a.email for a in message.cc],
        subject=message.subject,
        text=message.text,
        attachments=[
            {"filename": a.filename, "content_type": a.content_type, "size": a.size}
            for a in message.attachments
        ],
        created_at=ctx.clock.now(),
    )
    ctx.session.add(record)
    try:
        # The message first: its unique dedupe key is where a concurrent worker that recorded
        # the same message collides (on PostgreSQL the insert waits for that worker's commit).
        # Left pending, the autoflush of loading the participants would raise it unhandled.
        ctx.session.flush()
    except IntegrityError as error:
        raise Ignore("duplicate: recorded concurrently") from error
    _add_participants(ctx, ticket, message, new)
    ticket.updated_at = ctx.clock.now()
    if not new and ticket.status in ("pending", "closed"):
        ticket.status = "open"  # the customer wrote again: it is our turn
    try:
        ctx.session.flush()
    except IntegrityError as error:  # a concurrent worker recorded the same message first
        raise Ignore("duplicate: recorded concurrently") from error
    return ticket, record, new


def _recent_auto_mail(ctx: Context, recipient: str) -> int:
    since = ctx.clock.now() - timedelta(hours=1)
    count = ctx.session.scalar(
        select(func.count(OutboxMail.id)).where(
            OutboxMail.recipient == recipient,
            OutboxMail.automatic.is_(True),
            OutboxMail.created_at >= since,
        )
    )
    return int(count or 0)


def step_acknowledge(
    ctx: Context, entry: JournalEntry, message: ParsedMessage, ticket: Ticket, new: bool
) -> str:
    """Queue the acknowledgement of a new ticket, or say why there is none."""
    if not new:
        return "follow-up: no acknowledgement"
    if not entry.acknowledge:
        return "historical import: not acknowledged"
    if suppresses_auto_reply(message):
        return "X-Auto-Response-Suppress: not acknowledged"
    recipient = (message.reply_to[0] if message.reply_to else message.sender).email
    if recipient in ctx.config.desk.addresses or not recipient:
        return "no address to acknowledge"
    if _recent_auto_mail(ctx, recipient) >= ctx.config.limits.auto_replies_per_hour:
        return f"rate limit: {recipient} already had {ctx.config.limits.auto_replies_per_hour}"
    desk = ctx.config.desk
    body = ctx.templates.render(
        "ack",
        ticket.language,
        ref=ticket.ref,
        subject=ticket.subject,
        customer_name=ticket.customer_name or "",
        desk_name=desk.name,
    )
    message_id = new_message_id(desk.secret, ticket.ref, desk.domain)
    references = (*message.references, message.message_id) if message.message_id else ()
    envelope = Envelope(
        sender_name=desk.name,
        sender=desk.address,
        to_name=ticket.customer_name or "",
        to=recipient,
        message_id=message_id,
        in_reply_to=message.message_id,
        references=references,
        date=ctx.clock.now(),
        auto_submitted="auto-replied",
        ref=ticket.ref,
    )
    ctx.session.add(
        OutboxMail(
            ticket_id=ticket.id,
            kind="ack",
            message_id=message_id,
            sender=desk.address,
            recipients=[recipient],
            recipient=recipient,
            automatic=True,
            subject=body.subject,
            text=body.text,
            raw=build_mail(envelope, body),
            state=OUTBOX_QUEUED,
            attempts=0,
            next_attempt_at=ctx.clock.now(),
            created_at=ctx.clock.now(),
        )
    )
    ctx.session.add(
        TicketMessage(
            ticket_id=ticket.id,
            journal_id=None,
            direction="out",
            kind="auto",
            dedupe_key=f"mid:{message_id}",
            message_id=message_id,
            from_addr=desk.address,
            from_name=desk.name,
            to_addrs=[recipient],
            cc_addrs=[],
            subject=body.subject,
            text=body.text,
            attachments=[],
            created_at=ctx.clock.now(),
        )
    )
    return "acknowledged"


STEPS: tuple[str, ...] = ("parse", "classify", "deduplicate", "thread", "record", "acknowledge")


def step_parse(raw: bytes) -> ParsedMessage:
    """The one step without the database: the worker may run it before taking the write lock."""
    return parse_message(raw)


def run_pipeline(ctx: Context, entry: JournalEntry, message: ParsedMessage) -> Outcome:
    """The steps of STEPS after parse, in order; raises Ignore or any error for the worker."""
    step_classify(ctx, message)
    step_deduplicate(ctx, message)
    threading = step_thread(ctx, message)
    ticket, _record, new = step_record(ctx, entry, message, threading)
    note = step_acknowledge(ctx, entry, message, ticket, new)
    return Outcome(ticket.ref, new, note == "acknowledged", f"{threading.how}; {note}")
