"""Virus scanning of attachments (issue 6): every file is scanned before anything of it is kept.

With `[kyc] clamd` configured, the worker scans each attachment of a message (ingest/worker.py,
before the pipeline's transaction, so a slow scan never holds the database's write lock).
Three outcomes:
- all clean: the pipeline runs as usual, and identity documents may be stored;
- a file infected: `hold_infected` keeps the message in quarantine for the admin, with the files
  and signatures in its reason. Nothing of it goes into a ticket (no document, no relayed agent
  attachment); a note goes on the ticket it continues, and the customer is told in their
  language, through the same gate as every automatic mail (outbound/automatic.py);
- clamd unreachable: the worker leaves the message pending and tries again later.
A retried message (`ticketd quarantine retry`) is scanned again; the customer is told once.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from domain.config import Config
from domain.context import Context
from domain.history import add_note
from domain.message import ParsedMessage
from ingest.agent_replies import agent_ticket_ref
from ingest.classify import answer_address, no_automatic_answer
from ingest.filenames import safe_filename
from ingest.language import guess_language
from ingest.thread_finder import find_thread
from ingest.virus_scan import scan
from outbound.automatic import AutomaticMail, queue_automatic, queue_without_ticket
from outbound.quoting import quoted_filename
from storage.models import JournalEntry, Ticket, TicketMessage

TEMPLATE = "virus_found"
# In the journal row's reason: a retry of the message does not tell the customer again.
TOLD = "the sender was told"


@dataclass(frozen=True)
class Infection:
    filename: str
    signature: str


@dataclass(frozen=True)
class ScanReport:
    scanner: str  # the clamd address, for the reason an admin reads
    scanned: int
    infected: tuple[Infection, ...]


def scan_attachments(config: Config, message: ParsedMessage) -> ScanReport | None:
    """None when no scanner is configured; raises ScannerUnavailable when clamd cannot say."""
    address = config.kyc.clamd
    if address is None:
        return None
    files = [a for a in message.attachments if a.payload]
    infected = []
    verdicts: dict[bytes, str | None] = {}  # the same bytes twice go to clamd once
    for attachment in files:
        if attachment.payload not in verdicts:
            verdicts[attachment.payload] = scan(
                address, attachment.payload, config.kyc.clamd_timeout
            )
        signature = verdicts[attachment.payload]
        if signature is not None:
            infected.append(Infection(safe_filename(attachment.filename), signature))
    return ScanReport(str(address), len(files), tuple(infected))


def describe(report: ScanReport) -> str:
    found = ", ".join(f"{i.filename} carries {i.signature}" for i in report.infected)
    return f"infected: {found} (clamd at {report.scanner}); nothing of the message stored"


@dataclass(frozen=True)
class Held:
    ticket_ref: str  # "" when the message continues no ticket
    note: str


def hold_infected(
    ctx: Context,
    entry: JournalEntry,
    message: ParsedMessage,
    report: ScanReport,
    automatic: bool = False,
) -> Held:
    """Note and notice for an infected message; the worker keeps it in quarantine.
    `automatic`: a bounce or an auto-reply, which is never answered."""
    summary = describe(report)
    if agent_ticket_ref(ctx, message, entry.envelope_to) is not None:
        # Mail to an agent reply address: nothing is relayed to the customer.
        return Held("", f"{summary}; mail to an agent address, nothing relayed")
    ticket = find_thread(ctx, message, entry.envelope_to).ticket
    held_before = False  # another copy of this message (to a second address, by IMAP too)
    if ticket is not None:
        key = f"note:infected:{message.dedupe_key}"
        exists = ctx.session.scalar(select(TicketMessage.id).where(TicketMessage.dedupe_key == key))
        held_before = exists is not None
        if not held_before:
            add_note(
                ctx,
                ticket,
                "Message held: a file carries a virus",
                f"A message from {message.sender.email} was not added to this ticket: "
                f"{summary}. It is held in quarantine (`ticketd quarantine list`, message "
                f"{entry.id}).",
                key,
                entry.id,
            )
    told = (
        "automatic mail: sender not told"
        if automatic
        else _tell_sender(ctx, entry, message, report, ticket, held_before)
    )
    return Held(ticket.ref if ticket is not None else "", f"{summary}; {told}")


def _tell_sender(
    ctx: Context,
    entry: JournalEntry,
    message: ParsedMessage,
    report: ScanReport,
    ticket: Ticket | None,
    held_before: bool,
) -> str:
    if TOLD in (entry.reason or ""):
        return f"{TOLD} before"
    if held_before:  # once only (promise 2): the first copy's notice was this message's
        return "another copy was held already: sender not told again"
    silence = no_automatic_answer(message, entry.acknowledge)
    if silence is not None:
        return f"{silence}: sender not told"
    recipient = answer_address(message)
    files = [
        {"filename": quoted_filename(i.filename), "signature": i.signature} for i in report.infected
    ]
    if ticket is not None:
        mail = AutomaticMail(TEMPLATE, TEMPLATE, recipient, message, {"files": files})
        result = queue_automatic(ctx, ticket, mail)
        return TOLD if result.startswith("sent") else f"sender {result}"
    return _tell_without_ticket(ctx, message, recipient, files)


def _tell_without_ticket(
    ctx: Context, message: ParsedMessage, recipient: str, files: list[dict[str, str]]
) -> str:
    """A new conversation: no ticket is opened for a held message (malware in a stranger's mail
    would fill the queues), so the notice goes on its own, under the same limits."""
    language = guess_language(message.subject, message.text) or ctx.config.desk.language
    mail = AutomaticMail(TEMPLATE, TEMPLATE, recipient, message, {"files": files})
    reason = queue_without_ticket(ctx, mail, language)
    return TOLD if reason is None else f"sender not told: {reason}"
