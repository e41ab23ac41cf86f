"""The pipeline: the named steps a journaled message goes through, in order.

Each step is a small function with one job; they exchange frozen records (`ParsedMessage`,
`Classification`, `Threading`). A step that decides the message needs no ticket raises `Ignore`
with the reason, which the worker records. Any other exception quarantines the message with its
error (the worker owns that policy). Everything a step writes goes into the one transaction the
worker opened, together with the outbox rows: the ticket change and the mail it causes commit
or vanish together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from sqlalchemy import and_, or_, select

from domain.config import Config
from domain.context import Context, Ignore
from domain.history import add_note, record_incoming
from domain.message import ParsedMessage, SpamVerdict
from domain.refs import new_reference
from domain.sender_auth import AUTHENTICATION_RESULTS, AuthResult, believed
from ingest.agent_replies import route_new_ticket, step_agent_mail
from ingest.blocking import blocked_by
from ingest.bounces import record_bounce
from ingest.categorise import Categoriser
from ingest.classify import (
    Classification,
    Kind,
    answer_address,
    classify,
    no_automatic_answer,
    untrusted_sender,
)
from ingest.documents_step import ContentChecks, step_documents
from ingest.language import guess_language
from ingest.mime_shape import DEFAULT_LIMITS, ShapeLimits
from ingest.parsing import parse_message
from ingest.sender_proof import sender_proven, verified_by_authentication
from ingest.shape_step import step_shape_note
from ingest.spam import Session, check, upstream_verdict
from ingest.thread_finder import Threading, find_thread
from ingest.verify import envelope_of, header_value, verify
from ingest.virus_step import ScanReport, hold_infected
from outbound.agent_mail import notify_agents
from outbound.automatic import AutomaticMail, queue_automatic
from outbound.compose import verify_message_id
from outbound.sla_deadlines import on_ticket_event
from outbound.survey import record_survey_answer, survey_answer
from storage.models import JournalEntry, OutboxMail, Participant, Ticket, TicketMessage

__all__ = [
    "STEPS",
    "Context",
    "Ignore",
    "Outcome",
    "run_pipeline",
    "step_believe",
    "step_parse",
    "step_spam",
    "step_verify",
]


@dataclass(frozen=True)
class Outcome:
    ticket_ref: str
    new_ticket: bool
    acknowledged: bool
    note: str
    # A security event (mail to an agent address from someone who is not that agent) or a file
    # with a virus: kept in quarantine for a person, with what the pipeline wrote (the admins'
    # alert, the note and the notice) committed.
    quarantine: bool = False


def step_parse(
    raw: bytes, limits: ShapeLimits = DEFAULT_LIMITS, envelope_from: str | None = None
) -> ParsedMessage:
    """The one step without the database: the worker may run it before taking the write lock.
    `limits` are the configuration's MIME shape limits ([limits] max_mime_parts, ...);
    `envelope_from` the journal row's envelope sender."""
    return parse_message(raw, limits, envelope_from)


def step_believe(
    config: Config, message: ParsedMessage, own: Sequence[AuthResult] = ()
) -> ParsedMessage:
    """The message as the later steps may read it: every Authentication-Results header that
    claims our authserv-id removed (a sender wrote it), and the verdict we believe attached,
    made of `own` (our verification) and the headers of `[smtp_in] trusted_authserv_ids`."""
    trust = config.trust
    from_domain = message.sender.email.rpartition("@")[2]
    headers, verdict = believed(
        message.headers, from_domain, trust.authserv_id, trust.trusted_authserv_ids, own
    )
    if own:  # ours first, where a receiving server puts its own (RFC 8601 section 5)
        headers = ((AUTHENTICATION_RESULTS, header_value(list(own), trust.authserv_id)), *headers)
    return replace(message, headers=headers, auth=verdict)


def step_spam(
    config: Config, raw: bytes, message: ParsedMessage, session: Session
) -> SpamVerdict | None:
    """The spam verdict ([spam]): a trusted gateway's that says spam, else rspamd's (within
    `[spam] timeout`), else None when no filter is configured."""
    if config.spam.trust_upstream_headers:
        upstream = upstream_verdict(message.headers)
        if upstream is not None:
            return upstream
    if config.spam.rspamd_url is None:
        return None
    return check(config.spam, raw, session)


def step_verify(
    config: Config, raw: bytes, source: str, envelope_from: str | None
) -> list[AuthResult]:
    """Our SPF, DKIM and DMARC results for mail our listener received (ingest/verify.py), within
    `[dns] timeout`; nothing for mail another server received, or with `verify_senders` off."""
    envelope = envelope_of(source, envelope_from, raw)
    if envelope is None or not config.trust.verify_senders:
        return []
    return verify(raw, envelope, config.trust.dns, config.trust.authserv_id)


def step_classify(ctx: Context, message: ParsedMessage) -> Classification:
    """Machine mail that needs no ticket raises Ignore: our own mail coming back (a loop).
    Lists and bulk mail are a person's mail, a ticket unless the admin chose to ignore them
    ([classify]); bounces and auto-replies go to their own steps."""
    desk = ctx.config.desk
    if message.message_id and verify_message_id(desk.secret, message.message_id):
        raise Ignore("loop: a mail of ours came back (our signed Message-ID)")
    loop_marker = (message.header("x-loop") or "").strip().lower()
    if loop_marker and desk.owns(loop_marker):
        raise Ignore(f"loop: X-Loop names our address {loop_marker}")
    verdict = classify(message, desk.addresses)
    if verdict.kind is Kind.LOOP:
        raise Ignore(f"{verdict.kind}: {verdict.reason}")
    choice = {Kind.LIST: "lists", Kind.BULK: "bulk"}.get(verdict.kind)
    if choice is not None and ctx.config.classify.ignores(choice):
        raise Ignore(f"{verdict.kind}: {verdict.reason} (classify.{choice} = ignore)")
    return verdict


def step_blocked(ctx: Context, entry: JournalEntry, message: ParsedMessage) -> None:
    """Mail from a sender an admin blocked (`ticketd block`) is ignored with that reason."""
    found = blocked_by(ctx.session, (message.sender.email, entry.envelope_from or ""))
    if found is not None:
        raise Ignore(f"blocked: {found[0]} is blocked ({found[1]})")


def step_deduplicate(ctx: Context, entry: JournalEntry, message: ParsedMessage) -> ParsedMessage:
    """An exact copy of a message already on a ticket (the same Message-ID and the same
    content, or the same content without a Message-ID) raises Ignore. A different message that
    reuses a Message-ID comes back marked `reused_message_id`: it is kept under a key of its
    own, with a note (step_record)."""
    entry.content_hash = message.content_hash
    if message.message_id is None:
        existing = ctx.session.scalar(
            select(TicketMessage).where(TicketMessage.dedupe_key == message.dedupe_key)
        )
        if existing is not None:
            raise Ignore(f"duplicate: {_copy_of(existing)}")
        return message
    rows = ctx.session.execute(
        select(TicketMessage, JournalEntry.content_hash)
        .outerjoin(JournalEntry, JournalEntry.id == TicketMessage.journal_id)
        .where(
            or_(
                TicketMessage.dedupe_key == f"mid:{message.message_id}",
                and_(
                    TicketMessage.message_id == message.message_id,
                    TicketMessage.direction == "in",
                ),
            )
        )
        .order_by(TicketMessage.id)
    ).all()
    for existing, content in rows:
        # A row processed before content hashes were kept: its Message-ID is all we know.
        if content is None or content == message.content_hash:
            raise Ignore(f"duplicate: {_copy_of(existing)}")
    return replace(message, reused_message_id=True) if rows else message


def _copy_of(existing: TicketMessage) -> str:
    return f"an exact copy of message {existing.id} of ticket {existing.ticket.ref}"


def _note_reused_id(
    ctx: Context, entry: JournalEntry, ticket: Ticket, message: ParsedMessage
) -> None:
    first = ctx.session.scalar(
        select(TicketMessage)
        .where(TicketMessage.dedupe_key == f"mid:{message.message_id}")
        .order_by(TicketMessage.id)
        .limit(1)
    )
    where = f" (message {first.id} of ticket {first.ticket.ref})" if first is not None else ""
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
    wanted: list[tuple[str, str]] = [(message.sender.email, "customer" if new else "cc")]
    wanted += [(a.email, "cc") for a in (*message.to, *message.cc)]
    known = {p.email for p in ticket.participants}
    for email, role in wanted:
        if email and not ctx.config.desk.owns(email) and email not in known:
            ticket.participants.append(Participant(email=email, role=role))
            known.add(email)


def step_record_auto_reply(
    ctx: Context, entry: JournalEntry, message: ParsedMessage, verdict: Classification
) -> Outcome:
    """An out-of-office reply on its ticket: kept for the agents, never answered, and it does
    not count as the customer's answer (the status stays)."""
    threading = find_thread(ctx, message, entry.envelope_to)
    if threading.ticket is None or threading.repeated_request:
        raise Ignore(f"{verdict.kind}: {verdict.reason}")
    record_incoming(ctx, threading.ticket, entry, message, kind="auto")
    return Outcome(threading.ticket.ref, False, False, f"{verdict.reason}: recorded, not answered")


def step_record(
    ctx: Context, entry: JournalEntry, message: ParsedMessage, threading: Threading
) -> tuple[Ticket, bool]:
    new = threading.ticket is None
    ticket = threading.ticket or _open_ticket(ctx, message, threading.claimed_ref)
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
    _add_participants(ctx, ticket, message, new)
    ticket.updated_at = ctx.clock.now()
    if not new and ticket.status in ("pending", "closed"):
        ticket.status = "open"  # the customer wrote again: it is our turn
    ctx.session.flush()
    return ticket, new


def _already_pointed_to(ctx: Context, ticket: Ticket) -> bool:
    return (
        ctx.session.scalar(
            select(OutboxMail.id)
            .where(OutboxMail.ticket_id == ticket.id, OutboxMail.kind == "duplicate")
            .limit(1)
        )
        is not None
    )


def step_acknowledge(
    ctx: Context,
    entry: JournalEntry,
    message: ParsedMessage,
    ticket: Ticket,
    new: bool,
    threading: Threading,
) -> str:
    """Queue the acknowledgement of a new ticket (or the pointer to the ticket a repeated
    request joined), or say why there is none."""
    if not new and not threading.repeated_request:
        return "follow-up: no acknowledgement"
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


def step_mark_untrusted(
    ctx: Context, entry: JournalEntry, message: ParsedMessage, ticket: Ticket
) -> None:
    """A note on the ticket for the agents: this sender could not be trusted, so nothing
    automatic went back (an agent may still answer, having looked)."""
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


def step_hold_spam(
    ctx: Context, entry: JournalEntry, message: ParsedMessage, ticket: Ticket, new: bool
) -> Outcome:
    """Spam lands, out of the agents' queues and unanswered: a new ticket gets the `spam` status
    and no queue (no agent is told, no SLA clock runs); on an existing ticket the message is
    kept with a note and nobody is told. `tickets list` still shows it, for a person to check."""
    assert message.spam is not None
    if new:
        ticket.status, ticket.queue = "spam", None
    add_note(
        ctx,
        ticket,
        "Marked spam: no automatic answer, no agent told",
        f"{message.sender.email or 'The sender'}: the mail is {message.spam.describe()}.",
        f"note:spam:{message.dedupe_key}",
        entry.id,
    )
    where = "a new ticket in the spam status" if new else "kept on the ticket"
    return Outcome(ticket.ref, new, False, f"spam: {where}, not answered, no agent told")


def step_route(ctx: Context, ticket: Ticket, message: ParsedMessage) -> None:
    """A new ticket's category (keyword rules) decides its queue."""
    category = _categoriser(ctx).categorise(message.subject, message.text)
    route_new_ticket(ctx, ticket, category)


_CATEGORISERS: dict[tuple[tuple[str, tuple[str, ...]], ...], Categoriser] = {}


def _categoriser(ctx: Context) -> Categoriser:
    key = tuple(sorted(ctx.config.team.category_keywords.items()))
    if key not in _CATEGORISERS:
        _CATEGORISERS[key] = Categoriser(dict(key))
    return _CATEGORISERS[key]


STEPS: tuple[str, ...] = (
    "parse",
    "verify the sender",
    "spam check",
    "classify",
    "deduplicate",
    "blocked sender",
    "virus found",
    "bounce or auto-reply",
    "agent mail",
    "thread",
    "survey answer",
    "record",
    "route",
    "note what was left unread",
    "identity documents",
    "acknowledge",
    "notify agents",
)


def step_hold_infected(
    ctx: Context, entry: JournalEntry, message: ParsedMessage, scan: ScanReport, automatic: bool
) -> Outcome:
    held = hold_infected(ctx, entry, message, scan, automatic)
    return Outcome(held.ticket_ref, False, False, held.note, quarantine=True)


def step_survey_answer(
    ctx: Context, entry: JournalEntry, message: ParsedMessage, threading: Threading
) -> tuple[Outcome | None, str]:
    """A score for a closed ticket's survey: recorded, and the ticket stays closed (the
    outcome), unless its comment reports a problem: then the score is kept and the message goes
    on as a customer's (no outcome, and the note to add to it)."""
    answer = survey_answer(ctx, message, threading.ticket)
    if answer is None:
        return None, ""
    note = record_survey_answer(ctx, entry, message, answer)
    if answer.reopens:
        return None, note + "; "
    return Outcome(answer.ticket.ref, False, False, f"{threading.how}; {note}"), ""


def run_pipeline(
    ctx: Context,
    entry: JournalEntry,
    message: ParsedMessage,
    scan: ScanReport | None = None,
    checks: ContentChecks | None = None,
) -> Outcome:
    """The steps of STEPS after parse, in order; raises Ignore or any error for the worker.

    `scan` is the virus scanner's verdict on the attachments (None: no scanner configured);
    `checks` the slow checks of the files that may be documents, made before the transaction."""
    verdict = step_classify(ctx, message)
    message = step_deduplicate(ctx, entry, message)
    step_blocked(ctx, entry, message)
    if scan is not None and scan.infected:
        # Before the bounce and auto-reply steps too: every infected message is held for the
        # admin; only a message a person wrote gets the notice.
        automatic = verdict.kind in (Kind.BOUNCE, Kind.AUTO_REPLY)
        return step_hold_infected(ctx, entry, message, scan, automatic)
    if verdict.kind is Kind.BOUNCE:
        ref = record_bounce(ctx, entry.id, message, verdict)
        return Outcome(ref, False, False, f"{verdict.reason}: recorded on the ticket")
    if verdict.kind is Kind.AUTO_REPLY:
        return step_record_auto_reply(ctx, entry, message, verdict)
    agent_mail = step_agent_mail(ctx, entry, message)
    if agent_mail is not None:
        return Outcome(agent_mail.ticket.ref, False, False, agent_mail.note, agent_mail.security)
    threading = find_thread(ctx, message, entry.envelope_to, verified_by_authentication(message))
    answered, survey_note = step_survey_answer(ctx, entry, message, threading)
    if answered is not None:
        return answered
    ticket, new = step_record(ctx, entry, message, threading)
    if message.spam is not None and message.spam.spam:
        return step_hold_spam(ctx, entry, message, ticket, new)
    if new:
        step_route(ctx, ticket, message)
    step_mark_untrusted(ctx, entry, message, ticket)
    on_ticket_event(ctx, ticket, "opened" if new else "customer")
    partly = step_shape_note(ctx, entry, message, ticket)
    proven = sender_proven(message, threading)
    documents = step_documents(ctx, entry, message, ticket, scan, proven, checks)
    if documents is not None and documents.mailed and new:
        # The receipt names the reference like an acknowledgement does; a second automatic
        # mail a moment later would only meet the per-recipient rate limit.
        note = "acknowledged by the document receipt"
    else:
        note = step_acknowledge(ctx, entry, message, ticket, new, threading)
    if documents is not None:
        note = f"{note}; {documents.note}"
    if partly is not None:
        note = f"{note}; {partly}"
    # Historical mail (`ticketd import` without --acknowledge) tells no one, agents included.
    historical = entry.source.startswith("import:") and not entry.acknowledge
    notified = 0 if historical else notify_agents(ctx, ticket, message, new)
    return Outcome(
        ticket.ref,
        new,
        note.startswith("acknowledged"),
        f"{threading.how}; {survey_note}{note}; {notified} agents told",
    )
