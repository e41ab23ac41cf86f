"""Bounces of our own mail: recorded on the ticket they belong to, never answered.

A delivery report finds its ticket through the Message-IDs it quotes (ours are signed, so one
naming a ticket cannot be faked) or the outbox rows they name. A report acts only on the
recipients of the mail it is about, recipient by recipient (RFC 3464's per-recipient blocks,
ingest/delivery_status.py: the Original-Recipient when the reporting system kept it, else the
Final-Recipient): a permanent failure of one of them marks the mail failed, leaves a note for
the agents and suppresses that address for a while, so nothing more is sent into a dead
mailbox; a delay (Action: delayed) is only noted. An address the report names that the mail
was not sent to (a forwarding target, a forged or confused report) is named in the note with
what the report says of it, and acts on nothing: the mail is not marked failed on its account
and nothing is suppressed (a forged report must not silence the desk towards anyone it names).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select

from domain.context import Context
from domain.errors import Ignored
from domain.history import add_note
from domain.message import ParsedMessage, RecipientStatus
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


@dataclass(frozen=True)
class _Quoted:
    """The mail of ours a report quotes: its ticket, its outbox row when there is one, and the
    Message-ID it was found by."""

    ticket: Ticket
    row: OutboxMail | None
    message_id: str

    def about(self) -> str:
        if self.row is None:
            return f"a mail of ours (Message-ID <{self.message_id}>)"
        return f"{self.row.kind} mail {self.row.subject!r} (Message-ID <{self.message_id}>)"


@dataclass(frozen=True)
class _Reported:
    """What the report says of one address, and the recipient of the quoted mail it is about
    ("" when it names none of them)."""

    address: str
    failed: bool
    status: str = ""
    diagnostic: str = ""
    recipient: str = ""
    final: str = ""  # the Final-Recipient, when the recipient was its Original-Recipient

    def said(self) -> str:
        what = "failed" if self.failed else "delayed"
        return "; ".join(p for p in (what, self.status, self.diagnostic) if p)


def _our_mail(ctx: Context, message: ParsedMessage) -> _Quoted | None:
    for message_id in message.embedded_message_ids:
        row = ctx.session.scalar(select(OutboxMail).where(OutboxMail.message_id == message_id))
        if row is not None and row.ticket_id is not None:
            ticket = ctx.session.get(Ticket, row.ticket_id)
            if ticket is not None:
                return _Quoted(survivor(ctx, ticket), row, message_id)
        ref = verify_message_id(ctx.config.desk.secret, message_id)
        found = ticket_by_ref(ctx, ref) if ref is not None else None
        if found is not None:
            return _Quoted(found, None, message_id)
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


def _from_block(block: RecipientStatus, sent_to: list[str]) -> _Reported:
    """A per-recipient block, tied to the recipient it names: the Original-Recipient (the
    address we sent to, kept by a system that forwarded it) or the Final-Recipient."""
    final = block.final_recipient.lower()
    named = [a.lower() for a in (block.original_recipient, final) if a]
    recipient = next((a for a in named if a in sent_to), "")
    forwarded = final if recipient and final != recipient else ""
    address = recipient or named[0]
    return _Reported(address, block.failed, block.status, block.diagnostic, recipient, forwarded)


def _reported(message: ParsedMessage, sent_to: list[str]) -> list[_Reported]:
    """What the report says, address by address: its per-recipient blocks that failed or are
    delayed (a block saying delivered, relayed or expanded is no failure), else the addresses
    the detectors read from its prose, else (a report naming nobody) every recipient of the
    mail, failed or delayed as the report reads."""
    blocks = [b for b in message.delivery_status if b.failed or b.delayed]
    if blocks:
        found = [_from_block(b, sent_to) for b in blocks]
        return list({(r.address, r.failed): r for r in found}.values())
    if message.delivery_status:
        return []  # every recipient delivered, relayed or expanded: nothing failed
    permanent = is_permanent(message)
    named = [(a.lower(), True) for a in message.failed_recipients]
    named += [(a.lower(), permanent and not named) for a in message.delayed_recipients]
    if named:
        kept = dict.fromkeys(named)
        return [_Reported(a, f, recipient=a if a in sent_to else "") for a, f in kept]
    return [_Reported(a, permanent, recipient=a) for a in sent_to or [""]]


_SHOWN = 10


def _foreign_lines(quoted: _Quoted, foreign: list[_Reported], acted: bool) -> list[str]:
    """The addresses the report names that the quoted mail did not go to, each with what the
    report says of it; they act on nothing."""
    if quoted.row is None:
        lines = [
            f"The report quotes {quoted.about()} and names {len(foreign)} address(es); that "
            "mail has no outbox row to check them against, so nothing is marked failed or "
            "suppressed."
        ]
    elif acted:
        lines = [
            f"The report also names {len(foreign)} address(es) that mail was not sent to; "
            "they are not suppressed."
        ]
    else:
        lines = [
            f"The report quotes {quoted.about()}, sent to {', '.join(quoted.row.recipients)}, "
            f"but none of its recipients: it names {len(foreign)} address(es) that mail was "
            "not sent to, so that mail is not marked failed and no address is suppressed (a "
            "forwarded address, or a report not about that mail)."
        ]
    shown = foreign[:_SHOWN]
    lines += [f"- {r.address}: {r.said()}" for r in shown]
    if len(foreign) > len(shown):
        lines.append(f"- and {len(foreign) - len(shown)} more")
    return lines


def _failure(ctx: Context, quoted: _Quoted, report: _Reported, subject: str) -> str:
    """The line of the note for a recipient of the quoted mail; a permanent failure marks the
    mail failed and suppresses the address."""
    said = "; ".join(p for p in (report.status, report.diagnostic) if p)
    to = report.recipient or "its recipient"
    if report.final:
        to += f" (forwarded to {report.final})"
    if not report.failed:
        line = f"Delivery of {quoted.about()} to {to} is delayed (the remote server keeps trying)"
        return f"{line}: {said}." if said else f"{line}."
    reason = f"bounced: {report.recipient or 'its recipient'}: {said or subject}"[:2000]
    if quoted.row is not None:
        quoted.row.state, quoted.row.last_error = OUTBOX_FAILED, reason
    _suppress(ctx, report.recipient, reason[:500])
    line = f"Delivery of {quoted.about()} to {to} failed permanently"
    return f"{line}: {said}." if said else f"{line}."


def _is_ours(report: _Reported, quoted: _Quoted) -> bool:
    """About a recipient of the quoted mail (a report naming nobody about a mail without its
    row is about its recipient, whoever that was)."""
    return bool(report.recipient) or (not report.address and quoted.row is None)


def record_bounce(
    ctx: Context, entry_id: int, message: ParsedMessage, verdict: Classification
) -> str:
    """The ticket reference the bounce was recorded on; Ignored when it is not about our mail."""
    quoted = _our_mail(ctx, message)
    if quoted is None:
        raise Ignored(f"{verdict.kind}: {verdict.reason} (not about a mail of ours)")
    sent_to = [r.lower() for r in quoted.row.recipients] if quoted.row is not None else []
    reported = _reported(message, sent_to)
    ours = [r for r in reported if _is_ours(r, quoted)]
    foreign = [r for r in reported if not _is_ours(r, quoted)]
    lines = [_failure(ctx, quoted, r, message.subject) for r in ours]
    if not reported:
        lines.append(f"The report about {quoted.about()} says no recipient failed.")
    if foreign and not ours:
        lines += _foreign_lines(quoted, foreign, acted=False)
    lines.append(f"Report: {message.subject or verdict.reason}")
    suppressed = [r.recipient for r in ours if r.failed and r.recipient]
    days = ctx.config.threading.bounce_suppression_days
    if suppressed and days:
        lines.append(f"No mail goes to {', '.join(dict.fromkeys(suppressed))} for {days} days.")
    if foreign and ours:
        lines += _foreign_lines(quoted, foreign, acted=True)
    if any(r.failed for r in ours):
        subject = "Delivery failed"
    else:
        subject = "Delivery delayed" if ours else "Delivery report"
    add_note(ctx, quoted.ticket, subject, "\n".join(lines), message.dedupe_key, entry_id)
    return quoted.ticket.ref
