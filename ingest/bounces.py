"""Bounces of our own mail: recorded on the ticket they belong to, never answered.

A delivery report finds its ticket through the Message-IDs it quotes (ours are signed, so one
naming a ticket cannot be faked) or the outbox rows they name. A permanent failure marks the
mail failed, leaves a note for the agents and suppresses the address for a while, so nothing
more is sent into a dead mailbox; a temporary one (a delay warning) is only noted. A report acts
only on the recipients of the mail it is about: the other addresses it lists are noted, never
suppressed (a forged report must not silence the desk towards anyone it names).
"""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select

from domain.context import Context
from domain.errors import Ignored
from domain.history import add_note
from domain.message import ParsedMessage
from ingest.classify import Classification
from ingest.report_scan import REPORT_VIEW_BYTES
from ingest.thread_finder import survivor, ticket_by_ref
from outbound.compose import verify_message_id
from storage.models import OUTBOX_FAILED, OutboxMail, Suppression, Ticket

_PERMANENT = re.compile(r"(?im)^[ \t]*(?:status:\s*5\.\d+\.\d+|action:\s*failed)")
_TEMPORARY = re.compile(r"(?im)^[ \t]*(?:status:\s*4\.\d+\.\d+|action:\s*delayed)")


def is_permanent(message: ParsedMessage) -> bool:
    if message.failed_recipients:
        return True
    # Read where the detectors read (ingest/report_scan.py): a report's fields are in its
    # first kilobytes; megabytes of blank lines took each pattern 25 ms a megabyte.
    report = message.full_text[:REPORT_VIEW_BYTES]
    if message.delayed_recipients or _TEMPORARY.search(report):
        return bool(_PERMANENT.search(report))
    return True  # a report that says nothing more is a failure: that is what bounces are


def _our_mail(ctx: Context, message: ParsedMessage) -> tuple[Ticket, OutboxMail | None] | None:
    for message_id in message.embedded_message_ids:
        row = ctx.session.scalar(select(OutboxMail).where(OutboxMail.message_id == message_id))
        if row is not None and row.ticket_id is not None:
            ticket = ctx.session.get(Ticket, row.ticket_id)
            if ticket is not None:
                return survivor(ctx, ticket), row
        ref = verify_message_id(ctx.config.desk.secret, message_id)
        found = ticket_by_ref(ctx, ref) if ref is not None else None
        if found is not None:
            return found, None
    return None


def _suppress(ctx: Context, address: str, reason: str) -> None:
    days = ctx.config.threading.bounce_suppression_days
    if not days or not address:
        return
    now = ctx.clock.now()
    until = now + timedelta(days=days)
    existing = ctx.session.scalar(select(Suppression).where(Suppression.address == address))
    if existing is None:
        ctx.session.add(Suppression(address=address, reason=reason, created_at=now, until=until))
    else:
        existing.reason, existing.until = reason, max(existing.until, until)


def _about_the_row(message: ParsedMessage, row: OutboxMail | None) -> tuple[list[str], int]:
    """The addresses the report may act on (those the outbox row was sent to), and how many
    others it names: anyone can write a report quoting a Message-ID of ours, so a report about
    one mail can never suppress addresses that mail did not go to."""
    named = list(
        dict.fromkeys(a.lower() for a in (message.failed_recipients or message.delayed_recipients))
    )
    if row is None:  # a mail of ours without its row: nothing to check the report against
        return [], len(named)
    sent_to = [r.lower() for r in row.recipients]
    if not named:
        return sent_to, 0
    kept = [a for a in named if a in sent_to]
    return kept, len(named) - len(kept)


def record_bounce(
    ctx: Context, entry_id: int, message: ParsedMessage, verdict: Classification
) -> str:
    """The ticket reference the bounce was recorded on; Ignored when it is not about our mail."""
    found = _our_mail(ctx, message)
    if found is None:
        raise Ignored(f"{verdict.kind}: {verdict.reason} (not about a mail of ours)")
    ticket, row = found
    permanent = is_permanent(message)
    addresses, foreign = _about_the_row(message, row)
    what = "failed permanently" if permanent else "is delayed (the remote server keeps trying)"
    about = f"{row.kind} mail {row.subject!r}" if row is not None else "a mail"
    text = f"Delivery of {about} to {', '.join(addresses) or 'its recipient'} {what}."
    text += f"\nReport: {message.subject or verdict.reason}"
    if permanent:
        if row is not None:
            row.state, row.last_error = OUTBOX_FAILED, f"bounced: {message.subject}"[:2000]
        for address in addresses:
            _suppress(ctx, address.lower(), f"bounced: {message.subject}"[:500])
        if addresses and ctx.config.threading.bounce_suppression_days:
            days = ctx.config.threading.bounce_suppression_days
            text += f"\nNo mail goes to {', '.join(addresses)} for {days} days."
    if foreign:
        text += (
            f"\nThe report also names {foreign} address(es) that mail was not sent to; "
            "they are not suppressed."
        )
    subject = "Delivery failed" if permanent else "Delivery delayed"
    add_note(ctx, ticket, subject, text, message.dedupe_key, entry_id)
    return ticket.ref
