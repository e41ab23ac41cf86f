"""Mail to a ticket's agent reply address: an agent answering, commanding, or an impostor.

An agent is recognised only by all proofs together: the signed agent reply address of the
ticket, a From that is a configured agent, and an aligned DKIM or SPF pass for the agent's domain
in a verdict we believe (ours, or a trusted receiving server's: domain/sender_auth.py); with
`[agent_replies] require_authentication = false` a mail without any verdict may act, but a
failing aligned result still refuses it. Anything else sent to an
agent address is a security event: quarantined, never relayed, and the admins are told; so is
an agent's From on an agent address whose signature this desk never made (neither the current
secret's nor, by the mail it answers, an earlier one's).
An authenticated agent who may not act on the ticket, or whose commands are wrong, gets an
answer saying what was wrong, and nothing is applied.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import bindparam, select

from domain.config_team import AgentConfig
from domain.context import Context
from domain.errors import Permanent
from domain.history import add_note, record_incoming
from domain.message import DECORATION, FORWARDED, ParsedMessage
from ingest.agent_commands import Command, ParsedCommands, parse_commands
from ingest.classify import is_unread_address, untrusted_sender
from ingest.documents_review import decide, review_problems
from ingest.history_files import history_files
from ingest.replies import REPLY_SCAN_LIMIT, own_text
from ingest.thread_finder import survivor, ticket_by_ref
from ingest.ticket_ops import merge_tickets, tell_new_owners
from outbound.addresses import (
    agent_reply_address,
    ref_from_agent_address,
    ref_from_unsigned_agent_address,
)
from outbound.agent_mail import alert_admins, refuse_to_agent, relay_to_customer
from outbound.automatic import silence_reason
from outbound.compose import OutgoingAttachment
from outbound.sla_deadlines import on_ticket_event
from outbound.ticket_history import mail_history
from storage.models import JournalEntry, OutboxMail, Ticket, TicketMessage

NOTHING_OF_YOUR_OWN = (
    "your reply has no text of its own above the quoted mail: nothing was sent to the customer"
)
UNREAD_CUSTOMER = (
    "the ticket's customer address, {customer}, is a no-reply or mail system address that "
    "nobody reads, so no answer is sent there; write to the person the message names from "
    "your own mailbox, or send your text with #note to keep it on the ticket"
)
STALE_ADDRESS = (
    "the address you wrote to ({address}) is not signed with this desk's current secret (a "
    "reply address from before the secret changed): nothing was done and nothing was sent to "
    "the customer. Answer this mail instead; its reply address is the ticket's current one"
)
NOT_THE_AGENT = (
    "The From names agent {name} <{email}>, but the mail did not come to the "
    "ticket's agent reply address with the agent's proof (that signed address and an aligned "
    "DKIM or SPF pass), so it is not the agent's: it is kept as a message from outside the "
    "team, no command in it was run and nothing of it was sent to the customer."
)
AT_THE_DESK = (
    "your mail went to {address}, not to the ticket's agent reply address, so it counts as "
    "mail from outside the team: no command in it was applied and nothing of it was sent to "
    "the customer. Answer the ticket's notification, or write to {reply_to}, so that your "
    "answer and your commands count; if you did not send it, someone wrote under your address"
)
# Mail of ours among the ids a message answers (In-Reply-To, References); built once.
_OUR_MAIL = (
    select(OutboxMail).where(OutboxMail.message_id.in_(bindparam("ids", expanding=True))).limit(20)
)
# Where a signature block starts: the "-- " delimiter (RFC 3676 4.3) or Outlook's rule. A
# sign-off ("Saygılarımla,\nMehmet", "Best regards,") is part of the answer and stays.
_SIGNATURE_START = re.compile(r"^(-- ?|__+)$")


class AgentOutcome:
    """What became of an agent mail: a note for the journal, and whether it is a security
    event (quarantined)."""

    def __init__(self, ticket: Ticket, note: str, security: bool = False) -> None:
        self.ticket = ticket
        self.note = note
        self.security = security


def _recipients(message: ParsedMessage, envelope_to: Sequence[str]) -> tuple[str, ...]:
    return (*envelope_to, *(a.email for a in (*message.to, *message.cc)))


def agent_ticket_ref(
    ctx: Context, message: ParsedMessage, envelope_to: Sequence[str]
) -> str | None:
    for address in _recipients(message, envelope_to):
        ref = ref_from_agent_address(ctx.config.desk, address)
        if ref is not None:
            return ref
    return None


def step_agent_mail(
    ctx: Context, entry: JournalEntry, message: ParsedMessage
) -> AgentOutcome | None:
    """The outcome of mail to an agent reply address; None when it is not an agent's mail."""
    ref = agent_ticket_ref(ctx, message, entry.envelope_to)
    if ref is not None:
        return handle_agent_mail(ctx, entry, message, ref)
    return _refuse_unsigned_address(ctx, entry, message)


def _unsigned_address(
    ctx: Context, message: ParsedMessage, envelope_to: Sequence[str]
) -> tuple[str, Ticket] | None:
    for address in _recipients(message, envelope_to):
        ref = ref_from_unsigned_agent_address(ctx.config.desk, address)
        ticket = ticket_by_ref(ctx, ref) if ref is not None else None
        if ticket is not None:
            return address, ticket
    return None


def _refuse_unsigned_address(
    ctx: Context, entry: JournalEntry, message: ParsedMessage
) -> AgentOutcome | None:
    """An agent answering a notification whose reply address this desk no longer signs (sent
    before the secret changed: an upgrade from the public default generates a new one). Taken
    as a customer's mail, the answer would land in the history as the customer's, make the
    agent a participant and reach no one; the agent is told instead, and nothing is done.
    Only a configured agent is answered, at their own address: a stranger's mail to such an
    address stays what it was (a customer's message), and a forger learns nothing. Under an
    agent's From, an address that is not one of ours from before (_forged_address) is a
    security event, quarantined with the admins told."""
    agent = ctx.config.team.agent(message.sender.email)
    if agent is None:
        return None
    found = _unsigned_address(ctx, message, entry.envelope_to)
    if found is None:
        return None
    address, ticket = found
    forged = _forged_address(ctx, ticket, agent, message, address)
    if forged is not None:
        told = alert_admins(ctx, ticket, message, forged, entry.id)
        return AgentOutcome(ticket, f"security: {forged}; {told}", security=True)
    problem = STALE_ADDRESS.format(address=address)
    refuse_to_agent(ctx, ticket, agent, message, [problem])
    add_note(
        ctx, ticket, f"Mail from agent {agent.email} refused", problem, message.dedupe_key, entry.id
    )
    return AgentOutcome(ticket, "agent mail refused: " + problem)


def _answers_mail_to(
    ctx: Context, ticket: Ticket, agent: AgentConfig, message: ParsedMessage
) -> bool:
    """The message answers a mail we sent `agent` about `ticket` (a notification, a refusal):
    its Message-ID went to that agent alone, whatever secret signed it then."""
    ids = [*message.in_reply_to, *message.references]
    if not ids:
        return False
    for mail in ctx.session.scalars(_OUR_MAIL, {"ids": ids}):
        about = ctx.session.get(Ticket, mail.ticket_id) if mail.ticket_id is not None else None
        to_agent = agent.email in (r.lower() for r in mail.recipients)
        if to_agent and about is not None and survivor(ctx, about).id == ticket.id:
            return True
    return False


def _forged_address(
    ctx: Context, ticket: Ticket, agent: AgentConfig, message: ParsedMessage, address: str
) -> str | None:
    """Why mail under an agent's From to an agent address this desk does not sign is a forgery
    attempt, or None when it is the agent answering one of our mails from before the secret
    changed (STALE_ADDRESS). A made-up signature is no stale address: unless the mail answers
    a mail we sent that agent, or an aligned pass proves the agent wrote it, it is the
    security event a forged agent reply is, not an apology to the agent's address (which
    tells its owner nothing true, and its sender nothing at all)."""
    answers = _answers_mail_to(ctx, ticket, agent, message)
    failure = authentication_failure(message, require=not answers)
    if failure is None:
        return None
    unsigned = f"{address} is not signed with this desk's secret"
    if answers:
        return f"{unsigned}, and {failure}"
    return f"{unsigned} and answers no mail of ours to {agent.email} (a made-up address); {failure}"


def note_agent_from(
    ctx: Context, entry: JournalEntry, ticket: Ticket, message: ParsedMessage
) -> None:
    """A note under a message that came the customers' way (not to an agent reply address)
    with a configured agent's From: anyone can write that From, and read as the agent's (by an
    agent, in the ticket's history) its words would carry the team's authority, so the ticket
    says it is not the agent's."""
    agent = ctx.config.team.agent(message.sender.email)
    if agent is None:
        return
    text = NOT_THE_AGENT.format(name=agent.name, email=agent.email)
    by = entry.envelope_from
    if by and by.lower() != agent.email:  # where a forgery came from, for whoever looks into it
        text += f"\nSMTP sender: {by}."
    text += "\n" + _not_applied(ctx, entry, ticket, message, agent)
    key = f"note:agent-from:{message.dedupe_key}"
    add_note(ctx, ticket, f"Not a mail of agent {agent.email}", text, key, entry.id)


def _desk_recipient(ctx: Context, message: ParsedMessage, envelope_to: Sequence[str]) -> str:
    """The desk's address the mail was sent to (the plain one, or a customer's reply address)."""
    owned = (a for a in _recipients(message, envelope_to) if ctx.config.desk.owns(a))
    return next(owned, ctx.config.desk.address).lower()


def _meant_ticket(ctx: Context, ticket: Ticket, agent: AgentConfig) -> Ticket:
    """The ticket the agent meant: the one the subject names (a new ticket remembers it as
    `claimed_ref`) when the agent acts on it, else the one the mail is on."""
    claimed = ticket_by_ref(ctx, ticket.claimed_ref) if ticket.claimed_ref else None
    return claimed if claimed is not None and may_act(agent, claimed) else ticket


def _not_applied(
    ctx: Context, entry: JournalEntry, ticket: Ticket, message: ParsedMessage, agent: AgentConfig
) -> str:
    """The note's lines on an agent's mail that came the customers' way: its commands were
    not applied, and, for mail to the desk's own address, whether the agent was told where to
    write instead (once in a while: the per-recipient limit of automatic mail; never for a
    mail whose From is refuted, a forgery the agent did not write)."""
    address = _desk_recipient(ctx, message, entry.envelope_to)
    parsed = parse_commands(message.text)
    words = ", ".join(f"#{c.verb} {c.argument}".strip() for c in parsed.commands)
    line = (
        f"Mail from agent {agent.email} to {address}, not to the ticket's agent reply "
        f"address: commands not applied{f' ({words})' if words else ''}."
    )
    if address not in ctx.config.desk.addresses:
        return line  # a customer's reply address: nobody but a forger has it (nothing said)
    meant = _meant_ticket(ctx, ticket, agent)
    untrusted = untrusted_sender(message)
    why = untrusted[1] if untrusted is not None else None
    why = why or silence_reason(ctx.session, ctx.config, ctx.clock, agent.email)
    if why is not None:
        return f"{line}\n{agent.email} was not told: {why}."
    reply_to = agent_reply_address(ctx.config.desk, meant.ref)
    notice = AT_THE_DESK.format(address=address, reply_to=reply_to)
    refuse_to_agent(ctx, meant, agent, message, [notice], kind="agent-desk", automatic=True)
    return f"{line}\n{agent.email} was told to write to {reply_to} (ticket {meant.ref})."


def authentication_failure(message: ParsedMessage, require: bool) -> str | None:
    """Why the agent's From is not proven, or None. Only our verdict and the trusted ids'
    count (domain/sender_auth.py), and only for the From domain, aligned: a pass for a look-alike
    domain, or a header the sender wrote, proves nothing. Without `require` (an admin's choice
    for a setup where nothing verifies) a message with no failing aligned result may act too."""
    verdict = message.auth
    if verdict.forged:
        # No server of ours wrote these before the mail reached us: whoever sent it did, to
        # pass for verified. Such a mail proves the opposite of what it claims.
        return (
            f"the mail carries {verdict.forged} Authentication-Results header(s) claiming our "
            "own authserv-id, written by the sender"
        )
    if verdict.aligned_pass:
        return None
    if verdict.refuted:
        return f"the sender is refuted for {verdict.from_domain}: {verdict.describe()}"
    if require:
        return f"no aligned DKIM or SPF pass for {verdict.from_domain}: {verdict.describe()}"
    return None


def may_act(agent: AgentConfig, ticket: Ticket) -> bool:
    # Any case: a ticket given to `MEHMET@Example.com` is mehmet@example.com's.
    return (ticket.assignee or "").lower() == agent.email or (
        ticket.queue is not None and ticket.queue in agent.queues
    )


def _strip_signature(text: str) -> str:
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if index and _SIGNATURE_START.match(line.strip()):
            return "\n".join(lines[:index]).rstrip()
    return text


def _merge_problems(ctx: Context, agent: AgentConfig, ticket: Ticket, argument: str) -> list[str]:
    """Why `#merge REF [force]` may not go ahead. Two customers' tickets merge only when forced:
    the answers of the merged ticket then reach the survivor's customer alone."""
    ref, _, force = argument.partition(" ")
    target = ticket_by_ref(ctx, ref)
    if target is None:
        return [f"#merge: no ticket {ref}"]
    if target.id == ticket.id:
        return ["#merge: a ticket cannot be merged into itself"]
    if not may_act(agent, target):
        return [f"#merge: {target.ref} is not in your queues"]
    if target.customer != ticket.customer and not force:
        return [
            f"#merge: {ticket.ref} is {ticket.customer}'s and {target.ref} is "
            f"{target.customer}'s; merged, answers would reach only {target.customer}. "
            f"Write #birleştir {target.ref} zorla (#merge {target.ref} force) to merge anyway"
        ]
    return []


def _check(
    ctx: Context, agent: AgentConfig, ticket: Ticket, parsed: ParsedCommands, has_own: bool
) -> list[str]:
    problems = list(parsed.problems)
    team = ctx.config.team
    for command in parsed.commands:
        if command.verb == "assign" and team.agent_by_name(command.argument) is None:
            problems.append(f"#assign: no agent called {command.argument!r}")
        if command.verb == "merge":
            problems += _merge_problems(ctx, agent, ticket, command.argument)
        if command.verb == "kyc":
            problems += review_problems(ctx, agent, ticket, command.argument)
    if parsed.has("note") and not parsed.text:
        problems.append("#note needs the text of the note")
    if not parsed.commands and not parsed.problems and not has_own:
        problems.append(NOTHING_OF_YOUR_OWN)
    if has_own and not parsed.has("note") and is_unread_address(ticket.customer):
        # A web form's or a notifier's no-reply sender is the ticket's customer (issue 14):
        # relayed there, the answer would reach nobody while the agent thinks it went out.
        problems.append(UNREAD_CUSTOMER.format(customer=ticket.customer))
    return problems


def _apply(ctx: Context, ticket: Ticket, agent: AgentConfig, command: Command) -> None:
    team = ctx.config.team
    if command.verb == "kyc":
        decide(ctx, ticket, agent, command.argument)
    elif command.verb == "close":
        ticket.status = "closed"
    elif command.verb == "pending":
        ticket.status = "pending"
    elif command.verb == "assign":
        assignee = team.agent_by_name(command.argument)
        assert assignee is not None  # checked before anything was applied
        ticket.assignee = assignee.email
    elif command.verb == "category":
        ticket.category = command.argument
        queue = team.queue_for(command.argument)
        ticket.queue = queue.name if queue else ticket.queue
    elif command.verb == "priority":
        ticket.priority = command.argument
    elif command.verb == "merge":
        target = ticket_by_ref(ctx, command.argument.partition(" ")[0])
        assert target is not None
        merge_tickets(ctx.session, ctx.clock, ticket, target, ctx.config.sla)
    elif command.verb == "history":
        mail_history(ctx, ticket, agent, history_files(ctx, ticket))


def _relay(
    ctx: Context, ticket: Ticket, agent: AgentConfig, message: ParsedMessage, text: str
) -> None:
    attachments = tuple(
        OutgoingAttachment(a.filename, a.content_type, a.payload)
        for a in message.attachments
        # A forwarded message kept whole: its files are relayed on their own, as before. A
        # signature logo or icon (DECORATION, ingest/inline_images.py) is not for the customer.
        if a.payload and a.role not in (FORWARDED, DECORATION)
    )
    relay_to_customer(
        ctx,
        ticket,
        agent,
        text,
        attachments,
        message.dedupe_key,
    )


def _apply_commands(
    ctx: Context,
    entry: JournalEntry,
    ticket: Ticket,
    agent: AgentConfig,
    parsed: ParsedCommands,
    key: str,
) -> list[str]:
    """Apply the checked commands; each mail's commands leave a note on the ticket (with an
    answer or without), and a new assignee or the agents of a new queue are told."""
    commands = [c for c in parsed.commands if c.verb != "note"]
    if not commands:
        return []
    before = (ticket.assignee, ticket.queue)
    for command in commands:
        _apply(ctx, ticket, agent, command)
    applied = [f"#{c.verb} {c.argument}".strip() for c in commands]
    summary = ", ".join(applied)
    add_note(ctx, ticket, f"{agent.name}: {summary}", f"{agent.email}: {summary}", key, entry.id)
    told = tell_new_owners(ctx, ticket, agent.email, agent.name, before)
    return applied + ([f"{told} new owner(s) told"] if told else [])


def handle_agent_mail(
    ctx: Context, entry: JournalEntry, message: ParsedMessage, ref: str
) -> AgentOutcome | None:
    """None when the address names no ticket we know (then it is not an agent mail at all)."""
    ticket = ticket_by_ref(ctx, ref)
    if ticket is None:
        return None
    sender = message.sender.email
    agent = ctx.config.team.agent(sender)
    replies = ctx.config.team.agent_replies
    reason = (
        f"{sender or 'nobody'} is not a configured agent"
        if agent is None
        else authentication_failure(message, replies.require_authentication)
    )
    if agent is None or reason is not None:
        told = alert_admins(ctx, ticket, message, reason or "", entry.id)
        return AgentOutcome(ticket, f"security: {reason}; {told}", security=True)
    parsed = parse_commands(message.text)
    # Judged on the whole mail, not on the cut `latest_reply` made: a cut inside a folded
    # attribution line leaves half of it, which is no answer either.
    has_own = bool(own_text(parse_commands(message.full_text[:REPLY_SCAN_LIMIT]).text))
    problems = (
        [f"ticket {ticket.ref} is in queue {ticket.queue or '(none)'}, not one of yours"]
        if not may_act(agent, ticket)
        else _check(ctx, agent, ticket, parsed, has_own)
    )
    if problems:
        refuse_to_agent(ctx, ticket, agent, message, problems)
        add_note(
            ctx,
            ticket,
            f"Mail from agent {agent.email} refused",
            "\n".join(problems),
            message.dedupe_key,
            entry.id,
        )
        return AgentOutcome(ticket, "agent mail refused: " + "; ".join(problems))
    text = _strip_signature(parsed.text) if replies.strip_signature else parsed.text
    if not has_own:
        text = ""  # commands above a bare quote: the quote is not an answer to relay
    done: list[str] = []
    if parsed.has("note"):
        record_incoming(ctx, ticket, entry, message, kind="note")
        done.append("note")
    elif text:
        _relay(ctx, ticket, agent, message, text)
        done.append("answer relayed to the customer")
    # The history row of the mail itself (the note, the relayed answer) carries the mail's
    # dedupe key; a commands-only mail's note carries it instead.
    key = message.dedupe_key if not done else f"note:commands:{message.dedupe_key}"
    done += _apply_commands(ctx, entry, ticket, agent, parsed, key)
    on_ticket_event(ctx, ticket, "changed" if parsed.has("note") or not text else "answered")
    ticket.updated_at = ctx.clock.now()
    ctx.session.flush()
    return AgentOutcome(ticket, f"agent {agent.email}: " + ", ".join(done))


def route_new_ticket(ctx: Context, ticket: Ticket, category: str) -> None:
    """Category decides the queue."""
    ticket.category = category
    queue = ctx.config.team.queue_for(category)
    ticket.queue = queue.name if queue else None


class AnswerRefused(Permanent):
    """An agent's answer or note from the API that the mail path would refuse too."""


def answer_problems(agent: AgentConfig, ticket: Ticket, text: str) -> list[str]:
    """What refuses an agent's answer whichever way it comes (mail, the API)."""
    if not may_act(agent, ticket):
        return [f"ticket {ticket.ref} is in queue {ticket.queue or '(none)'}, not one of yours"]
    if ticket.merged_into_id is not None:
        return [f"{ticket.ref} is merged: answer its survivor"]
    if not text.strip():
        return ["the answer has no text"]
    if is_unread_address(ticket.customer):
        return [UNREAD_CUSTOMER.format(customer=ticket.customer)]
    return []


def answer_customer(
    ctx: Context,
    ticket: Ticket,
    agent: AgentConfig,
    text: str,
    attachments: tuple[OutgoingAttachment, ...],
    dedupe_key: str,
) -> None:
    """An agent's answer written elsewhere than in a mail (the API, the console), by the path
    of a mail reply: relayed from the support address threaded to the customer's last message
    (relay_to_customer), the history's outgoing message, the SLA clock's answered event.
    Raises AnswerRefused with the mail path's reasons."""
    problems = answer_problems(agent, ticket, text)
    if problems:
        raise AnswerRefused("; ".join(problems))
    relay_to_customer(ctx, ticket, agent, text, attachments, dedupe_key)
    on_ticket_event(ctx, ticket, "answered")
    ticket.updated_at = ctx.clock.now()
    ctx.session.flush()


def note_on_ticket(
    ctx: Context, ticket: Ticket, agent: AgentConfig, text: str, dedupe_key: str
) -> TicketMessage:
    """An agent's internal note (what #note does in a mail): in the history, never mailed."""
    if not may_act(agent, ticket):
        raise AnswerRefused(f"ticket {ticket.ref} is not in your queues")
    if not text.strip():
        raise AnswerRefused("#note needs the text of the note")
    now = ctx.clock.now()
    note = TicketMessage(
        ticket_id=ticket.id,
        direction="in",
        kind="note",
        dedupe_key=dedupe_key,
        from_addr=agent.email,
        from_name=agent.name,
        to_addrs=[],
        cc_addrs=[],
        subject=ticket.subject,
        text=text,
        attachments=[],
        created_at=now,
    )
    ctx.session.add(note)
    on_ticket_event(ctx, ticket, "changed")
    ticket.updated_at = now
    ctx.session.flush()
    return note
