"""The pipeline: the named steps a journaled message goes through in the transaction, in order.

`STEPS` is the pipeline as data: a tuple of `Step`s, each a name and one function from the
per-message state (`Work`, frozen) to the next state, or to a `Decision` that ends the message:
part of a ticket, ignored with a reason, or quarantined with a reason. The runner
(ingest/runner.py) walks the tuple; it alone owns the transaction and the error policy, and
records the name of the step that decided. A step never commits, rolls back or catches errors
to decide what becomes of the message: code below the steps that meets a reason to stop raises
within the hierarchy of domain/errors.py (`Ignored`, `Permanent`, `Temporary`).

The steps that need no database (parse, verify the sender, spam check, virus scan, the checks
of documents) come before the transaction: ingest/prepare.py. Everything a step here writes
goes into the one transaction the runner opened, together with the outbox rows: the ticket
change and the mail it causes commit or vanish together.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar

from sqlalchemy import and_, bindparam, func, or_, select

from domain.context import Context
from domain.history import add_note, record_incoming
from domain.message import ParsedMessage
from domain.refs import new_reference
from domain.sender_auth import SenderVerdict
from ingest.agent_replies import note_agent_from, route_new_ticket, step_agent_mail
from ingest.blocking import blocked_by
from ingest.bounces import record_bounce
from ingest.classify import (
    Classification,
    Kind,
    answer_address,
    classify,
    no_automatic_answer,
    untrusted_sender,
)
from ingest.documents_step import ContentChecks, Intake, step_documents
from ingest.prepare import step_believe, step_parse, step_spam, step_verify
from ingest.sender_proof import sender_proven, verified_by_authentication
from ingest.shape_step import step_shape_note
from ingest.text_readings import TextReadings
from ingest.thread_finder import Threading, find_thread
from ingest.virus_step import ScanReport, hold_infected
from outbound.agent_mail import notify_agents
from outbound.automatic import AutomaticMail, queue_automatic
from outbound.compose import verify_message_id
from outbound.sla_deadlines import on_ticket_event
from outbound.survey import record_survey_answer, survey_answer
from storage.direct_insert import write_pending
from storage.models import JournalEntry, OutboxMail, Participant, Ticket, TicketMessage

__all__ = [
    "IGNORE",
    "QUARANTINE",
    "STEPS",
    "TICKET",
    "Decision",
    "Step",
    "Work",
    "step_believe",
    "step_named",
    "step_parse",
    "step_spam",
    "step_verify",
]

T = TypeVar("T")

# What a decision makes of a message.
TICKET, IGNORE, QUARANTINE = "ticket", "ignore", "quarantine"


@dataclass(frozen=True)
class Decision:
    """How a message ends. A ticket or quarantine decision keeps what the steps wrote (a
    quarantined security event keeps the admins' alert, an infected message its note and
    notice); an ignore decision keeps nothing of the steps' writes."""

    kind: str  # TICKET, IGNORE or QUARANTINE
    note: str  # the journal row's reason: what happened, or why not
    ticket_ref: str = ""  # the ticket it is part of (or, quarantined, the one it continues)
    new_ticket: bool = False
    acknowledged: bool = False

    @classmethod
    def ticket(cls, ref: str, note: str, new: bool = False, acknowledged: bool = False) -> Decision:
        return cls(TICKET, note, ref, new, acknowledged)

    @classmethod
    def ignore(cls, reason: str) -> Decision:
        return cls(IGNORE, reason)

    @classmethod
    def quarantine(cls, reason: str, ticket_ref: str = "") -> Decision:
        return cls(QUARANTINE, reason, ticket_ref)


@dataclass(frozen=True)
class Work:
    """The per-message state the steps hand on: the journal row and the prepared message
    (ingest/prepare.py), and what each step found so far."""

    entry: JournalEntry
    message: ParsedMessage
    texts: TextReadings  # what the steps read of its words (ingest/text_readings.py)
    scan: ScanReport | None = None  # None: no virus scanner configured
    checks: ContentChecks | None = None  # the slow checks of files that may be documents
    verdict: Classification | None = None  # classify
    threading: Threading | None = None  # thread
    ticket: Ticket | None = None  # record: the ticket the message is now part of
    new: bool = False  # record: the ticket is new
    survey_note: str = ""  # survey answer: a score kept on a message that goes on
    unread: str | None = None  # note what was left unread
    documents: Intake | None = None  # identity documents
    acknowledgement: str = ""  # acknowledge: what was answered, or why nothing

    @property
    def classified(self) -> Classification:
        return _needed(self.verdict, "classify")

    @property
    def thread(self) -> Threading:
        return _needed(self.threading, "thread")

    @property
    def recorded(self) -> Ticket:
        return _needed(self.ticket, "record")


def _needed(value: T | None, step: str) -> T:
    if value is None:
        raise RuntimeError(f"a step that needs what '{step}' finds ran before it")
    return value


@dataclass(frozen=True)
class Step:
    """One step: its name (in STEPS, docs/architecture.md and the journal) and its one job."""

    name: str
    run: Callable[[Context, Work], Work | Decision]


def step_classify(ctx: Context, work: Work) -> Work | Decision:
    """Machine mail that needs no ticket is ignored: our own mail coming back (a loop).
    Lists and bulk mail are a person's mail, a ticket unless the admin chose to ignore them
    ([classify]); bounces and auto-replies go to their own step."""
    desk, message = ctx.config.desk, work.message
    if message.message_id and verify_message_id(desk.secret, message.message_id):
        return Decision.ignore("loop: a mail of ours came back (our signed Message-ID)")
    loop_marker = (message.header("x-loop") or "").strip().lower()
    if loop_marker and desk.owns(loop_marker):
        return Decision.ignore(f"loop: X-Loop names our address {loop_marker}")
    verdict = classify(message, desk.addresses)
    if verdict.kind is Kind.LOOP:
        return Decision.ignore(f"{verdict.kind}: {verdict.reason}")
    choice = {Kind.LIST: "lists", Kind.BULK: "bulk"}.get(verdict.kind)
    if choice is not None and ctx.config.classify.ignores(choice):
        return Decision.ignore(f"{verdict.kind}: {verdict.reason} (classify.{choice} = ignore)")
    if verdict.kind is Kind.FORM and _trusted_form(ctx, message):
        # The admin trusts this form's Reply-To as the person (classify.form_senders): every
        # later step sees the person as the sender, the ticket's customer. The site's DKIM or
        # SPF pass proves the site, not what a visitor typed: the person is unproven.
        person = replace(message, sender=message.reply_to[0], auth=SenderVerdict())
        return replace(work, verdict=verdict, message=person)
    return replace(work, verdict=verdict)


def _trusted_form(ctx: Context, message: ParsedMessage) -> bool:
    """A form's mail whose Reply-To may be the customer: its From is one the admin listed, the
    mail is not refuted (a forged From of the site), and the Reply-To is neither the desk nor
    an agent (a visitor typing an agent's address must not speak as the agent)."""
    if not ctx.config.classify.is_form_sender(message.sender.email):
        return False
    person = message.reply_to[0].email
    desk, team = ctx.config.desk, ctx.config.team
    if desk.owns(person) or team.agent(person) is not None:
        return False
    return untrusted_sender(message) is None


# _READING: from step_deduplicate to the message's row (step_record), the steps that go on
# only read: their queries do not autoflush (a flush each would find nothing, at the cost of
# looking); what a step there writes goes with the message's own flush, and a step there that
# writes and goes on must flush what it wrote. (The journal row's content hash, once pending
# here, is written with the row's outcome: ingest/runner.py.)

# Built once: building a statement (and its cache key) per message cost more than running it.
# Core statements on the tables, run on the session's connection: through the session (ORM
# statements, their compile state and result processing) each cost two to three times as
# much, a tenth of the writer's time for these three (issue 19). Connection statements never
# autoflush, as _READING wants.
_TICKETS = Ticket.__table__
_MESSAGES = TicketMessage.__table__
_JOURNAL = JournalEntry.__table__
_REF_TAKEN = select(_TICKETS.c.id).where(_TICKETS.c.ref == bindparam("ref"))
_SAME_DEDUPE_KEY = select(_MESSAGES.c.id).where(_MESSAGES.c.dedupe_key == bindparam("key"))
_SAME_MESSAGE_ID = (
    select(_MESSAGES.c.id, _MESSAGES.c.journal_id, _JOURNAL.c.content_hash)
    .outerjoin(_JOURNAL, _JOURNAL.c.id == _MESSAGES.c.journal_id)
    .where(
        or_(
            _MESSAGES.c.dedupe_key == bindparam("key"),
            and_(_MESSAGES.c.message_id == bindparam("mid"), _MESSAGES.c.direction == "in"),
        )
    )
    .order_by(_MESSAGES.c.id)
)
# A message's 1-based place in its ticket's history, which is in id order (Ticket.messages).
_PLACE = select(func.count(TicketMessage.id)).where(
    TicketMessage.ticket_id == bindparam("ticket"), TicketMessage.id <= bindparam("id")
)


def step_deduplicate(ctx: Context, work: Work) -> Work | Decision:
    """An exact copy of a message already on a ticket (the same Message-ID and the same
    content, or the same content without a Message-ID) is ignored. A different message that
    reuses a Message-ID goes on marked `reused_message_id`: it is kept under a key of its
    own, with a note (step_record)."""
    entry, message = work.entry, work.message
    # The entry's own content hash is written with its outcome (ingest/runner.py).
    connection = ctx.session.connection()
    if message.message_id is None:
        existing = connection.execute(_SAME_DEDUPE_KEY, {"key": message.dedupe_key}).scalar()
        if existing is not None:
            return Decision.ignore(f"duplicate: an exact copy of {_place_of(ctx, existing)}")
        return work
    # Only a row of this entry itself would lack its hash (not written yet): its own.
    rows = connection.execute(
        _SAME_MESSAGE_ID, {"key": f"mid:{message.message_id}", "mid": message.message_id}
    ).all()
    for existing_id, journal_id, content in rows:
        if journal_id == entry.id:
            content = message.content_hash
        # A row processed before content hashes were kept: its Message-ID is all we know.
        if content is None or content == message.content_hash:
            return Decision.ignore(f"duplicate: an exact copy of {_place_of(ctx, existing_id)}")
    return replace(work, message=replace(message, reused_message_id=True)) if rows else work


def _place_of(ctx: Context, message_id: int) -> str:
    with ctx.session.no_autoflush:  # see _READING
        existing = ctx.session.get(TicketMessage, message_id)
    assert existing is not None  # just found, in this transaction
    return _place(ctx, existing)


def step_blocked(ctx: Context, work: Work) -> Work | Decision:
    """Mail from a sender an admin blocked (`ticketd block`) is ignored with that reason."""
    senders = (work.message.sender.email, work.entry.envelope_from or "")
    with ctx.session.no_autoflush:  # see _READING
        found = blocked_by(ctx.session, senders)
    if found is not None:
        return Decision.ignore(f"blocked: {found[0]} is blocked ({found[1]})")
    return work


def step_virus_found(ctx: Context, work: Work) -> Work | Decision:
    """An infected message is held for the admin (quarantined, with the note and notice the
    hold wrote). Before the bounce and auto-reply step too: every infected message is held;
    only a message a person wrote gets the notice."""
    if work.scan is None or not work.scan.infected:
        return work
    automatic = work.classified.kind in (Kind.BOUNCE, Kind.AUTO_REPLY)
    held = hold_infected(ctx, work.entry, work.message, work.scan, automatic)
    return Decision.quarantine(held.note, held.ticket_ref)


def step_bounce_or_auto_reply(ctx: Context, work: Work) -> Work | Decision:
    """A bounce is recorded on the ticket of the mail it reports; an out-of-office reply is
    kept on its ticket for the agents, never answered, and does not count as the customer's
    answer (the status stays). Either is ignored when it belongs to no ticket of ours."""
    verdict, message = work.classified, work.message
    if verdict.kind is Kind.BOUNCE:
        ref = record_bounce(ctx, work.entry.id, message, verdict)
        return Decision.ticket(ref, f"{verdict.reason}: recorded on the ticket")
    if verdict.kind is not Kind.AUTO_REPLY:
        return work
    threading = find_thread(ctx, message, work.entry.envelope_to)
    if threading.ticket is None or threading.repeated_request:
        return Decision.ignore(f"{verdict.kind}: {verdict.reason}")
    record_incoming(ctx, threading.ticket, work.entry, message, kind="auto")
    return Decision.ticket(threading.ticket.ref, f"{verdict.reason}: recorded, not answered")


def step_agent(ctx: Context, work: Work) -> Work | Decision:
    """Mail to an agent reply address: the agent's answer or commands, or a security event
    (someone who is not that agent), quarantined with the admins' alert kept."""
    agent_mail = step_agent_mail(ctx, work.entry, work.message)
    if agent_mail is None:
        return work
    if agent_mail.security:
        return Decision.quarantine(agent_mail.note, agent_mail.ticket.ref)
    return Decision.ticket(agent_mail.ticket.ref, agent_mail.note)


def step_thread(ctx: Context, work: Work) -> Work | Decision:
    """The ticket the message continues, found only with proof (ingest/thread_finder.py)."""
    verified = verified_by_authentication(work.message)
    opening = work.texts.opening if verified else None
    with ctx.session.no_autoflush:  # see _READING
        threading = find_thread(ctx, work.message, work.entry.envelope_to, opening)
    return replace(work, threading=threading)


def step_survey(ctx: Context, work: Work) -> Work | Decision:
    """A score for a closed ticket's survey: recorded, and the ticket stays closed, unless its
    comment reports a problem: then the score is kept and the message goes on as a customer's,
    with the note to add to its outcome."""
    threading = work.thread
    with ctx.session.no_autoflush:  # see _READING
        answer = survey_answer(ctx, work.message, threading.ticket)
    if answer is None:
        return work
    note = record_survey_answer(ctx, work.entry, work.message, answer)
    if answer.reopens:
        return replace(work, survey_note=note + "; ")
    return Decision.ticket(answer.ticket.ref, f"{threading.how}; {note}")


def step_record(ctx: Context, work: Work) -> Work | Decision:
    """The message on its ticket, or on a new one; its participants; the status back to open
    when the customer wrote again."""
    entry, message, threading = work.entry, work.message, work.thread
    new = threading.ticket is None
    ticket = threading.ticket or _open_ticket(ctx, message, work.texts, threading.claimed_ref)
    # A forwarded mail is the request, not quoted history (ingest/replies.py). A repeated
    # request is kept as it was compared: as the opening of a ticket.
    message = replace(message, text=work.texts.kept(new or threading.repeated_request))
    if new:
        _add_participants(ctx, entry, ticket, message, threading)  # inserted with the ticket
    else:
        ticket.updated_at = ctx.clock.now()
        if ticket.status in ("pending", "closed"):
            ticket.status = "open"  # the customer wrote again: it is our turn
    # One flush for all of it (a new ticket, its participants, the message): each was a flush
    # of its own, and the updates of a ticket just inserted statements of their own (issue 19).
    record_incoming(ctx, ticket, entry, message, kind="customer")
    if message.reused_message_id:
        _note_reused_id(ctx, entry, ticket, message)
    if threading.repeated_request:
        add_note(
            ctx,
            ticket,
            "Repeated request merged",
            f"{message.sender.email} sent this request again; it was added here instead of "
            "opening a new ticket.",
            f"note:repeat:{message.dedupe_key}",
            entry.id,
        )
    if not new:
        # After the message: a note on whom it did not add follows it in the history.
        _add_participants(ctx, entry, ticket, message, threading)
    write_pending(ctx.session)  # the notes above (see _READING)
    return replace(work, message=message, ticket=ticket, new=new)


def step_hold_spam(ctx: Context, work: Work) -> Work | Decision:
    """Spam lands, out of the agents' queues and unanswered: a new ticket gets the `spam` status
    and no queue (no agent is told, no SLA clock runs); on an existing ticket the message is
    kept with a note and nobody is told. `tickets list` still shows it, for a person to check."""
    message, ticket, new = work.message, work.recorded, work.new
    if message.spam is None or not message.spam.spam:
        return work
    if new:
        ticket.status, ticket.queue = "spam", None
    add_note(
        ctx,
        ticket,
        "Marked spam: no automatic answer, no agent told",
        f"{message.sender.email or 'The sender'}: the mail is {message.spam.describe()}.",
        f"note:spam:{message.dedupe_key}",
        work.entry.id,
    )
    where = "a new ticket in the spam status" if new else "kept on the ticket"
    return Decision.ticket(ticket.ref, f"spam: {where}, not answered, no agent told", new)


def step_route(ctx: Context, work: Work) -> Work | Decision:
    """A new ticket's category (keyword rules) decides its queue."""
    if work.new:
        # The category of its subject and opening text, which is what the ticket keeps.
        route_new_ticket(ctx, work.recorded, work.texts.category)
    return work


def step_mark_untrusted(ctx: Context, work: Work) -> Work | Decision:
    """A note on the ticket for the agents: this sender could not be trusted, so nothing
    automatic went back (an agent may still answer, having looked); or the From is an agent's,
    on mail that is no agent's act."""
    entry, message, ticket = work.entry, work.message, work.recorded
    note_agent_from(ctx, entry, ticket, message)
    if message.spam is not None and not message.spam.checked:
        add_note(
            ctx,
            ticket,
            "Not checked for spam",
            f"The spam filter could not check this mail: {message.spam.error}.",
            f"note:unchecked:{message.dedupe_key}",
            entry.id,
        )
    untrusted = untrusted_sender(message)
    if untrusted is not None:
        add_note(
            ctx,
            ticket,
            "Sender not proven: no automatic answer",
            f"{message.sender.email or 'The sender'}: {untrusted[1]}. No acknowledgement or other "
            "automatic mail was sent; answer only once you trust the sender.",
            f"note:untrusted:{message.dedupe_key}",
            entry.id,
        )
    return work


def step_sla_clock(ctx: Context, work: Work) -> Work | Decision:
    """The ticket's SLA clock: opened, or the customer's turn ended (outbound/sla_deadlines)."""
    on_ticket_event(ctx, work.recorded, "opened" if work.new else "customer")
    return work


def step_unread(ctx: Context, work: Work) -> Work | Decision:
    """A note when something of the message was left unread (ingest/shape_step.py)."""
    return replace(work, unread=step_shape_note(ctx, work.entry, work.message, work.recorded))


def step_identity_documents(ctx: Context, work: Work) -> Work | Decision:
    """Files on a kyc ticket become identity documents (ingest/documents_step.py); they reach
    the customer's verification only from a proven sender."""
    proven = sender_proven(work.message, work.thread)
    documents = step_documents(
        ctx, work.entry, work.message, work.recorded, work.scan, proven, work.checks
    )
    return replace(work, documents=documents)


def step_acknowledge(ctx: Context, work: Work) -> Work | Decision:
    """Queue the acknowledgement of a new ticket (or the pointer to the ticket a repeated
    request joined), or say why there is none."""
    if work.documents is not None and work.documents.mailed and work.new:
        # The receipt names the reference like an acknowledgement does; a second automatic
        # mail a moment later would only meet the per-recipient rate limit.
        return replace(work, acknowledgement="acknowledged by the document receipt")
    return replace(work, acknowledgement=_acknowledge(ctx, work))


def _acknowledge(ctx: Context, work: Work) -> str:
    entry, message, ticket, threading = work.entry, work.message, work.recorded, work.thread
    if not work.new and not threading.repeated_request:
        return "follow-up: no acknowledgement"
    agent = ctx.config.team.agent(message.sender.email)
    if agent is not None:  # staff, told apart when it matters (agent_replies.note_agent_from)
        return f"the From is agent {agent.email}'s: not acknowledged"
    silence = no_automatic_answer(message, entry.acknowledge)
    if silence is not None:
        return f"{silence}: not acknowledged"
    proven = sender_proven(message, threading)
    if threading.repeated_request:
        if _already_pointed_to(ctx, ticket):
            return "repeated request: already told about the existing ticket"
        # It names an existing ticket: only to that ticket's own customer address.
        pointer = AutomaticMail("duplicate", "duplicate", ticket.customer, message, proven=proven)
        return f"repeated request: pointer {queue_automatic(ctx, ticket, pointer)}"
    ack = AutomaticMail("ack", "ack", answer_address(message), message, proven=proven)
    result = queue_automatic(ctx, ticket, ack)
    return "acknowledged" if result == "sent" else f"acknowledgement {result}"


def step_notify_agents(ctx: Context, work: Work) -> Work | Decision:
    """The agents of the ticket's queue are told; the message is part of its ticket."""
    entry, ticket = work.entry, work.recorded
    note = work.acknowledgement
    if work.documents is not None:
        note = f"{note}; {work.documents.note}"
    if work.unread is not None:
        note = f"{note}; {work.unread}"
    # Historical mail (`ticketd import` without --acknowledge) tells no one, agents included.
    historical = entry.source.startswith("import:") and not entry.acknowledge
    notified = 0 if historical else notify_agents(ctx, ticket, work.message, work.new)
    return Decision.ticket(
        ticket.ref,
        f"{work.thread.how}; {work.survey_note}{note}; {notified} agents told",
        work.new,
        note.startswith("acknowledged"),
    )


STEPS: tuple[Step, ...] = (
    Step("classify", step_classify),
    Step("deduplicate", step_deduplicate),
    Step("blocked sender", step_blocked),
    Step("virus found", step_virus_found),
    Step("bounce or auto-reply", step_bounce_or_auto_reply),
    Step("agent mail", step_agent),
    Step("thread", step_thread),
    Step("survey answer", step_survey),
    Step("record", step_record),
    Step("hold spam", step_hold_spam),
    Step("route", step_route),
    Step("note an unproven sender", step_mark_untrusted),
    Step("SLA clock", step_sla_clock),
    Step("note what was left unread", step_unread),
    Step("identity documents", step_identity_documents),
    Step("acknowledge", step_acknowledge),
    Step("notify agents", step_notify_agents),
)


def step_named(name: str) -> Step:
    """The step of STEPS called `name` (for tests and tools that run one step alone)."""
    for step in STEPS:
        if step.name == name:
            return step
    raise KeyError(name)


def _place(ctx: Context, message: TicketMessage) -> str:
    """The message as "message 3 of ticket REF": its 1-based place in the history, as
    `tickets show` lists it and `tickets split` takes it, so an admin can find it there; its
    row id counted every ticket's messages."""
    with ctx.session.no_autoflush:  # see _READING
        place = ctx.session.scalar(_PLACE, {"ticket": message.ticket_id, "id": message.id})
    return f"message {place} of ticket {message.ticket.ref}"


def _note_reused_id(
    ctx: Context, entry: JournalEntry, ticket: Ticket, message: ParsedMessage
) -> None:
    first = ctx.session.scalar(
        select(TicketMessage)
        .where(TicketMessage.dedupe_key == f"mid:{message.message_id}")
        .order_by(TicketMessage.id)
        .limit(1)
    )
    where = f" ({_place(ctx, first)})" if first is not None else ""
    add_note(
        ctx,
        ticket,
        "Message-ID reused",
        f"This message has the Message-ID <{message.message_id}> of an earlier, different "
        f"message{where}. It is kept as a message of its own; the sender's mail program or "
        "service reuses Message-IDs.",
        f"note:reused-id:{message.dedupe_key}",
        entry.id,
    )


def _open_ticket(
    ctx: Context, message: ParsedMessage, texts: TextReadings, claimed_ref: str | None
) -> Ticket:
    now = ctx.clock.now()
    language = texts.language or ctx.config.desk.language
    for _attempt in range(10):
        ref = new_reference()
        # No autoflush (see _READING); no step leaves a new ticket pending.
        taken = ctx.session.connection().execute(_REF_TAKEN, {"ref": ref}).scalar()
        if taken is None:
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
        # Empty, not unloaded: no query for them once the ticket is inserted.
        participants=[],
        messages=[],
    )
    return ticket  # inserted with its participants and first message (record_incoming)


def _add_participants(
    ctx: Context, entry: JournalEntry, ticket: Ticket, message: ParsedMessage, threading: Threading
) -> None:
    """The sender and the To/Cc of the message become participants, who may then write into
    the ticket by its reference (ingest/thread_finder.py). On an existing ticket only a proven
    sender (ingest/sender_proof.py) adds anyone: a forged From of the customer with the forger
    in Cc would otherwise make the forger a participant of her conversation. A new ticket keeps
    its first mail's To/Cc (a colleague in Cc, commonly), proven or not: all it holds is that
    mail, which its writer can already continue under its From by its own Message-ID, so
    nobody gains a way into a conversation they were not part of."""
    new = threading.ticket is None
    wanted: list[tuple[str, str]] = [(message.sender.email, "customer" if new else "cc")]
    wanted += [(a.email, "cc") for a in (*message.to, *message.cc)]
    with ctx.session.no_autoflush:  # see _READING: the message's flush is next
        known = {p.email for p in ticket.participants}
    newcomers: dict[str, str] = {}
    # An agent writing the customers' way is staff, never a participant: their mail acts
    # through the ticket's agent reply address, and as a participant the next one would join
    # by the reference as a customer's (agent_replies.note_agent_from tells them).
    if ctx.config.team.agent(message.sender.email) is not None:
        wanted = wanted[1:]
    for email, role in wanted:
        if email and not ctx.config.desk.owns(email) and email not in known:
            newcomers.setdefault(email, role)
    if not newcomers:
        return
    if new or sender_proven(message, threading):
        for email, role in newcomers.items():
            ticket.participants.append(Participant(email=email, role=role))
        return
    add_note(
        ctx,
        ticket,
        "Sender not proven: nobody made a participant",
        f"{message.sender.email or 'The sender'} is not proven to be who the From names (no "
        "signed reply address or Message-ID of ours with the customer's From, no aligned DKIM "
        f"or SPF pass), so this mail made nobody a participant: {', '.join(newcomers)}. A mail "
        "of theirs naming this ticket joins it only when it answers one of our mails or is "
        "sent to the ticket's reply address; otherwise it opens a ticket of its own that "
        "remembers the reference.",
        f"note:participants:{message.dedupe_key}",
        entry.id,
    )


def _already_pointed_to(ctx: Context, ticket: Ticket) -> bool:
    return (
        ctx.session.scalar(
            select(OutboxMail.id)
            .where(OutboxMail.ticket_id == ticket.id, OutboxMail.kind == "duplicate")
            .limit(1)
        )
        is not None
    )
