"""The gate every templated mail to a customer passes (promise 4): whom we may answer, and how
often, and what happens to a mail the limit holds back.

Never to an address that bounced permanently while its suppression lasts, never to ourselves.
The per-recipient limit (at most `auto_replies_per_hour` in an hour, never two within
`auto_reply_interval_seconds`, counted across all kinds of automatic mail) is against loops,
and a mail meets it according to what caused it:

- caused by a person (an agent's `#kyc` decision or request): not automatic at all. No
  Auto-Submitted, not counted, never held by the limit (promise 5);
- answers that a loop would multiply (the acknowledgement, the pointer to a repeated request):
  dropped past the limit, which is what stops a loop; only a second acknowledgement within the
  interval waits it out (two requests a minute apart both get their reference), never a third;
- everything else (document receipts, the survey, SLA mail to the customer, a virus notice):
  delayed, queued with a later not-before time at the first moment the limit allows, unless that
  is more than `MAX_DELAY` away.

What is dropped is noted on the ticket and told to the agents: in the notification of the
customer's message when there is one, else in a mail of its own (`not_sent`) to the agent who
acted, the assignee or the queue.

What an automatic mail repeats of the sender is cut and stripped of links (outbound/quoting.py):
the subject always, the display name unless the sender is proven, then not at all.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from domain.clock import Clock
from domain.config import Config
from domain.config_kyc import TYPE_NAMES
from domain.context import Context
from domain.history import add_note
from domain.labels import local_time
from domain.message import ParsedMessage
from outbound.addresses import erased_key, reply_address
from outbound.agent_mail import tell_agents_not_sent
from outbound.compose import Envelope, new_message_id
from outbound.customer_thread import customer_thread
from outbound.outbox_rows import queue_outgoing
from outbound.quoting import NAME_CHARS, quoted
from storage.models import Erasure, OutboxMail, Suppression, Ticket

# What each kind does at the limit (the docstring above says why); any other kind is delayed.
PERSON_CAUSED = frozenset({"kyc_approved", "kyc_rejected", "kyc_request"})
DROPPED_AT_LIMIT = frozenset({"ack", "duplicate"})
# Past this a held mail is dropped: a day of waiting mail means the limit is fighting a loop.
MAX_DELAY = timedelta(hours=24)


def accepted_types(config: Config) -> str:
    """The identity-document types `[kyc] accepted` takes, as the customer reads them: every
    template that asks for documents names exactly these."""
    return ", ".join(TYPE_NAMES[t] for t in config.kyc.accepted)


def hard_silence(session: Session, config: Config, clock: Clock, recipient: str) -> str | None:
    """Why nothing at all may go to `recipient`, whatever caused the mail, or None."""
    if not recipient:
        return "no address to answer"
    if config.desk.owns(recipient):
        return f"{recipient} is an address of the desk"
    erased = session.scalar(
        select(Erasure.id).where(Erasure.address_key == erased_key(config.desk.secret, recipient))
    )
    if erased is not None:
        return f"{recipient} asked for the erasure of their data: no automatic mail"
    now = clock.now()
    suppressed = session.scalar(
        select(Suppression).where(Suppression.address == recipient, Suppression.until > now)
    )
    if suppressed is not None:
        until = local_time(suppressed.until, config.desk.timezone)
        return f"{recipient} is suppressed until {until}: " + suppressed.reason
    return None


def _as_utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def next_slot(
    session: Session, config: Config, clock: Clock, recipient: str
) -> tuple[datetime, str | None]:
    """The first moment the per-recipient limit lets an automatic mail go to `recipient`, and
    why it is not now (None: now). Mail already waiting for a slot (queued with a later
    not-before time, its `created_at`) holds its slot."""
    now = clock.now()
    return _first_slot(config, now, recipient, _last_hour(session, recipient, now))


def _last_hour(session: Session, recipient: str, now: datetime) -> list[datetime]:
    """When the automatic mails to `recipient` of the hour before `now` were queued, in order."""
    return sorted(
        _as_utc(t)
        for t in session.scalars(
            select(OutboxMail.created_at).where(
                OutboxMail.recipient == recipient,
                OutboxMail.automatic.is_(True),
                OutboxMail.created_at > now - timedelta(hours=1),
            )
        )
    )


def _first_slot(
    config: Config, now: datetime, recipient: str, times: list[datetime]
) -> tuple[datetime, str | None]:
    """`next_slot` of the automatic mails queued at `times` (`_last_hour`)."""
    limits = config.limits
    hour, gap = timedelta(hours=1), timedelta(seconds=limits.auto_reply_interval_seconds)
    slot, why = now, None
    if times and slot - times[-1] < gap:
        slot = times[-1] + gap
        at = local_time(times[-1], config.desk.timezone)
        # The last one may be a mail still waiting for its own slot.
        went = "goes" if times[-1] > now else "went"
        why = f"rate limit: an automatic mail {went} to {recipient} at {at}"
    while len([t for t in times if t > slot - hour]) >= limits.auto_replies_per_hour:
        window = [t for t in times if t > slot - hour]
        slot = window[0] + hour
        why = f"rate limit: {len(times)} automatic mails to {recipient} in the last hour"
    return slot, why


def silence_reason(session: Session, config: Config, clock: Clock, recipient: str) -> str | None:
    """Why an automatic mail may not go to `recipient` now, or None."""
    reason = hard_silence(session, config, clock, recipient)
    return reason if reason is not None else next_slot(session, config, clock, recipient)[1]


@dataclass(frozen=True)
class AutomaticMail:
    """An automatic mail about a ticket, answering `answering` (the customer's message)."""

    kind: str  # ack, duplicate, ...
    template: str
    recipient: str
    answering: ParsedMessage | None
    # What the template needs beyond the ticket (the files of a document receipt, a reason).
    context: Mapping[str, object] = field(default_factory=dict)
    actor: str | None = None  # the agent whose action caused it: told if it cannot go
    # The sender of `answering` is proven to be who its From names (ingest/sender_proof.py).
    # Only then does the answer greet them by the name they wrote: an unproven sender's
    # display name is their text, like the subject, and only the cut subject is repeated.
    proven: bool = False

    def greeting_name(self, name: str) -> str:
        if self.answering is not None and not self.proven:
            return ""
        return quoted(name, NAME_CHARS)


def _not_sent(ctx: Context, ticket: Ticket, mail: AutomaticMail, reason: str) -> str:
    """Noted on the ticket, and told to the agents (see the module's docstring)."""
    add_note(
        ctx,
        ticket,
        f"No {mail.kind} mail sent",
        f"No {mail.kind} mail went to {mail.recipient or 'anyone'}: {reason}.",
        f"note:silent:{mail.kind}:{ticket.id}:"
        + (mail.answering.dedupe_key if mail.answering else secrets.token_hex(8)),
    )
    if mail.answering is None:  # no notification of a customer message will say it
        tell_agents_not_sent(ctx, ticket, mail.kind, mail.recipient, reason, mail.actor)
    return f"not sent: {reason}"


def _second_ack_waits(ctx: Context, mail: AutomaticMail, slot: datetime, recent: int) -> bool:
    """A person who writes two requests a minute apart gets both references: the second
    acknowledgement waits out the interval instead of being dropped. Only the second: with two
    automatic mails to the address within the hour (`recent`), the next is dropped, so a
    responder that answers each acknowledgement with a fresh message ends the exchange after
    two."""
    gap = timedelta(seconds=ctx.config.limits.auto_reply_interval_seconds)
    if mail.kind != "ack" or slot - ctx.clock.now() > gap:
        return False  # the hourly limit, not the interval, holds it
    return recent < 2


def queue_automatic(ctx: Context, ticket: Ticket, mail: AutomaticMail) -> str:
    """Queue it in the ticket's transaction (now, or at the first slot the limit allows), or
    record on the ticket why it stays unsent: "sent", "sent, delayed until ..." or
    "not sent: ..."."""
    reason = hard_silence(ctx.session, ctx.config, ctx.clock, mail.recipient)
    if reason is not None:
        return _not_sent(ctx, ticket, mail, reason)
    person = mail.kind in PERSON_CAUSED
    now = ctx.clock.now()
    # One read of the recipient's last hour, for the slot and for the second acknowledgement.
    recent = [] if person else _last_hour(ctx.session, mail.recipient, now)
    slot, why = (now, None) if person else _first_slot(ctx.config, now, mail.recipient, recent)
    dropped = mail.kind in DROPPED_AT_LIMIT and not _second_ack_waits(ctx, mail, slot, len(recent))
    if why is not None and (dropped or slot - now > MAX_DELAY):
        return _not_sent(ctx, ticket, mail, why)
    name = mail.greeting_name(ticket.customer_name or "")
    body = ctx.templates.render(
        mail.template,
        ticket.language,
        ref=ticket.ref,
        subject=quoted(ticket.subject),
        customer_name=name,
        desk_name=ctx.config.desk.name,
        accepted_types=accepted_types(ctx.config),
        **mail.context,
    )
    envelope = _envelope(ctx, mail, ticket.ref, name, reply_address(ctx.config.desk, ticket.ref))
    # In the ticket's conversation, whether or not it answers a message (outbound/customer_thread).
    thread = customer_thread(ctx.session, ticket, mail.answering)
    envelope = replace(envelope, in_reply_to=thread.in_reply_to, references=thread.references)
    if person:  # a person's decision, mailed for them: not automatic (RFC 3834 section 5)
        envelope = replace(envelope, auto_submitted=None)
    queue_outgoing(
        ctx, ticket, mail.kind, envelope, body, "auto", automatic=not person, not_before=slot
    )
    # Flushed now, so the next message in this transaction's view counts it for the limit.
    ctx.session.flush()
    if why is None:
        return "sent"
    when = local_time(slot, ctx.config.desk.timezone)
    add_note(
        ctx,
        ticket,
        f"{mail.kind} mail delayed",
        f"The {mail.kind} mail to {mail.recipient} waits until {when}: {why}.",
        f"note:delayed:{mail.kind}:{ticket.id}:{envelope.message_id}",
    )
    return f"sent, delayed until {when}"


def queue_without_ticket(ctx: Context, mail: AutomaticMail, language: str) -> str | None:
    """An automatic mail about no ticket (a held message from a stranger), under the same
    limits and with the same loop headers; the reason it stays unsent, or None once queued."""
    reason = silence_reason(ctx.session, ctx.config, ctx.clock, mail.recipient)
    if reason is not None:
        return reason
    answering = mail.answering
    name = mail.greeting_name(answering.sender.name if answering else "")
    body = ctx.templates.render(
        mail.template,
        language,
        ref="",
        subject=quoted(answering.subject) if answering else "",
        customer_name=name,
        desk_name=ctx.config.desk.name,
        accepted_types=accepted_types(ctx.config),
        **mail.context,
    )
    envelope = _envelope(ctx, mail, "-", name, None)
    queue_outgoing(ctx, None, mail.kind, envelope, body, None, automatic=True)
    ctx.session.flush()  # counted by the rate limit of the next message in this transaction
    return None


def _envelope(
    ctx: Context, mail: AutomaticMail, ref: str, to_name: str, reply_to: str | None
) -> Envelope:
    """Ours, answering `mail.answering` in its thread, marked automatic and looped back to us."""
    desk = ctx.config.desk
    answering = mail.answering
    in_reply_to = answering.message_id if answering else None
    references = (*answering.references, in_reply_to) if answering and in_reply_to else ()
    return Envelope(
        sender_name=desk.name,
        sender=desk.address,
        to_name=to_name,
        to=mail.recipient,
        message_id=new_message_id(desk.secret, ref, desk.domain),
        in_reply_to=in_reply_to,
        references=references,
        date=ctx.clock.now(),
        auto_submitted="auto-replied",
        ref=ref,
        reply_to=reply_to,
        loop_marker=desk.address,
    )
