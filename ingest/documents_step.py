"""Intake of identity documents (issue 6): a kyc ticket's customer attachments, checked and sealed.

Each attachment's real type is read from its bytes (`filetype`), never from its name or declared
type. Accepted types (`[kyc] accepted`) within the size limit are encrypted into the document
store (storage/documents.py) with a record per file; anything else is refused, the refusal
recorded on the ticket as a system note, and the customer told in their language which file and
why. Only tickets whose category is kyc take documents: an invoice on a payment ticket stays an
ordinary attachment. With a virus scanner configured, nothing is stored that it has not called
clean (ingest/virus_step.py). What parsing found as a signature logo or a forwarded message kept
whole (roles DECORATION and FORWARDED, see ingest/parsing.py) is neither a document nor a refusal:
it stays with the message; the files inside a forwarded message or a winmail.dat are documents.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import timedelta

import filetype
from sqlalchemy import func, select

from domain.config_kyc import KycConfig
from domain.context import Context
from domain.history import add_note
from domain.message import DOCUMENT_ROLES, AttachmentInfo, ParsedMessage
from ingest.bombs import describe_zip, pdf_inflates_past
from ingest.classify import answer_address, no_automatic_answer
from ingest.document_structure import PdfBudget, structure_problem
from ingest.filenames import safe_filename, typed_filename
from ingest.verification import documents_received, has_verification, readable_size
from ingest.virus_step import ScanReport
from outbound.automatic import AutomaticMail, queue_automatic
from outbound.quoting import quoted_filename
from storage.documents import DocumentStore
from storage.models import DOC_RECEIVED, Document, JournalEntry, Ticket, TicketMessage

# filetype's MIME types for the document types ticketd knows (domain/config_kyc.py).
_TYPES = {
    "image/jpeg": "jpeg",
    "image/png": "png",
    "image/heic": "heic",
    "image/heif": "heif",
    "image/webp": "webp",
    "image/tiff": "tiff",
    "application/pdf": "pdf",
}
# How far from the end a PDF's closing %%EOF may be (some writers add a newline or padding).
_PDF_TAIL = 1024


@dataclass(frozen=True)
class Refusal:
    filename: str
    code: str  # too_large, unknown_type, not_accepted, encrypted_pdf, broken_pdf, broken_image
    detail: str  # for the agents' note: the detected type, the size


@dataclass(frozen=True)
class Intake:
    stored: tuple[str, ...]
    refused: tuple[Refusal, ...]
    mailed: bool  # a receipt or a refusal went to the customer
    note: str


def detect_type(payload: bytes) -> str | None:
    """The real type from the bytes: a known document type, another type's extension, or None."""
    kind = filetype.guess(payload)
    if kind is None:
        return None
    return _TYPES.get(str(kind.mime), str(kind.extension))


@dataclass(frozen=True)
class ContentChecks:
    """What the slow checks of each candidate file's bytes found (the PDF bomb count, pypdf in a
    child process, Pillow's decode), by the SHA-256 of the bytes: None when sound, else (code,
    detail). The worker computes them before the write transaction (issue 22: a junk PDF held
    the SQLite write lock for minutes, and honest mail got 451 meanwhile)."""

    found: dict[bytes, tuple[str, str] | None] = field(default_factory=dict)


def check_contents(kyc: KycConfig, message: ParsedMessage) -> ContentChecks:
    """The slow checks of every file of `message` that may become a document."""
    found: dict[bytes, tuple[str, str] | None] = {}
    budget = PdfBudget()  # one message's PDFs share it, as in step_documents
    for attachment in _document_candidates(message):
        payload = attachment.payload
        detected = detect_type(payload) if len(payload) <= kyc.max_file_size else None
        if detected is not None and detected in kyc.accepted:
            found[hashlib.sha256(payload).digest()] = _content_problem(payload, detected, budget)
    return ContentChecks(found)


def _content_problem(payload: bytes, detected: str, budget: PdfBudget) -> tuple[str, str] | None:
    if detected == "pdf":
        # A password-protected PDF cannot be reviewed; one without its end marker is cut off.
        if b"/Encrypt" in payload:
            return "encrypted_pdf", "the PDF is encrypted"
        if b"%%EOF" not in payload[-_PDF_TAIL:]:
            return "broken_pdf", "no %%EOF at the end"
        inflated = pdf_inflates_past(payload)
        if inflated is not None:  # a PDF bomb for whoever opens it (ingest/bombs.py)
            return (
                "broken_pdf",
                f"its streams inflate past {inflated // (1024 * 1024)} MB from {len(payload)}"
                " bytes: a PDF bomb, not stored",
            )
    problem = structure_problem(payload, detected, budget)
    if problem is not None:  # the first bytes said one thing, the rest is not that
        code = "broken_pdf" if detected == "pdf" else "broken_image"
        return code, f"detected type {detected}, but {problem}"
    return None


def check_document(
    ctx: Context,
    attachment: AttachmentInfo,
    name: str,
    budget: PdfBudget | None = None,
    checks: ContentChecks | None = None,
) -> Refusal | str:
    """The detected type when the file may be stored, else why not. `budget`: the time left
    for reading this message's PDFs (ingest/document_structure.py). The slow checks come from
    `checks` when they were made there, before the transaction."""
    limits = ctx.config.kyc
    payload = attachment.payload
    if len(payload) > limits.max_file_size:
        return Refusal(name, "too_large", f"{len(payload)} bytes")
    detected = detect_type(payload)
    if detected is None:
        return Refusal(name, "unknown_type", "type not recognised from its bytes")
    if detected not in limits.accepted:
        detail = f"detected type {detected}"
        if detected == "zip":
            detail += f", {describe_zip(payload)}"
        return Refusal(name, "not_accepted", detail)
    digest = hashlib.sha256(payload).digest()
    if checks is not None and digest in checks.found:
        problem = checks.found[digest]
    else:
        problem = _content_problem(payload, detected, budget or PdfBudget())
    return detected if problem is None else Refusal(name, *problem)


def _record_of(ctx: Context, message: ParsedMessage) -> TicketMessage:
    record = ctx.session.scalar(
        select(TicketMessage).where(TicketMessage.dedupe_key == message.dedupe_key)
    )
    assert record is not None  # step_record wrote it in this transaction
    return record


def _mark_refused(record: TicketMessage, filename: str, code: str) -> None:
    """The message's attachment in the history says it was refused (and why), so `tickets show`
    and the agents' notification never list it as if it had been accepted."""
    marked = [
        {**a, "refused": code} if a.get("filename") == filename and "refused" not in a else a
        for a in record.attachments
    ]
    record.attachments = marked  # a new list: the JSON column notices the change


def _mail(
    ctx: Context, entry: JournalEntry, message: ParsedMessage, ticket: Ticket, intake: Taken
) -> str:
    # Like the acknowledgement it stands in for: never to a sender who asked for no automatic
    # answers, never to a forwarded delivery report.
    silence = no_automatic_answer(message, entry.acknowledge)
    if silence is not None:
        return f"{silence}: not answered"
    if intake.over and not intake.stored and not intake.refused and intake.told:
        return "over the daily limit, told before: not answered"
    kyc = ctx.config.kyc
    template = "kyc_refused" if intake.refused or intake.over else "kyc_received"
    context = {
        "stored": [quoted_filename(name) for name in intake.stored],
        "refused": [
            {"filename": quoted_filename(r.filename), "code": r.code} for r in intake.refused
        ],
        "max_size": readable_size(kyc.max_file_size),
        "over_limit": intake.over,
        "limit": intake.limit,
        "limit_count": (
            kyc.max_documents_per_day if intake.limit == "day" else kyc.max_documents_per_message
        ),
    }
    mail = AutomaticMail(
        template, template, answer_address(message), message, context, proven=intake.proven
    )
    return queue_automatic(ctx, ticket, mail)


def _bind(
    ctx: Context, entry: JournalEntry, message: ParsedMessage, ticket: Ticket, proven: bool
) -> None:
    """A verification the customer has follows proven documents only; unproven ones stay on
    the ticket. A customer with none yet has nothing a forged From could lower or re-point:
    their first documents start it, and the agent is told the sender is not proven."""
    if proven:
        documents_received(ctx, ticket)
        return
    if not has_verification(ctx, ticket.customer):
        documents_received(ctx, ticket)
        add_note(
            ctx,
            ticket,
            "Identity documents from an unproven sender",
            f"These documents came in a mail whose From ({message.sender.email}) is not proven. "
            f"They start the first verification of {ticket.customer}: compare them with the "
            "account holder before deciding, or ask with `#kyc request` (documents sent in "
            "answer to that mail are proven).",
            f"note:kyc-unproven:{message.dedupe_key}",
            entry.id,
        )
        return
    add_note(
        ctx,
        ticket,
        "Identity documents from an unproven sender",
        f"These documents came in a mail whose From ({message.sender.email}) is not proven: "
        "it did not answer a mail of ours sent to that address. They are kept on this ticket "
        f"and do not change the verification of {ticket.customer}; a decision on them does "
        "not either. To verify the customer, ask with `#kyc request`: documents sent in "
        "answer to that mail are proven.",
        f"note:kyc-unproven:{message.dedupe_key}",
        entry.id,
    )


def _document_candidates(message: ParsedMessage) -> list[AttachmentInfo]:
    """The attachments that may be documents, each file once: the same bytes found twice (a
    photo attached and again inside the forwarded message it came from) are one document."""
    seen: set[bytes] = set()
    candidates = []
    for attachment in message.attachments:
        if not attachment.payload or attachment.role not in DOCUMENT_ROLES:
            continue
        digest = hashlib.sha256(attachment.payload).digest()
        if digest not in seen:
            seen.add(digest)
            candidates.append(attachment)
    return candidates


def _store(
    ctx: Context,
    store: DocumentStore,
    record: TicketMessage,
    ticket: Ticket,
    payload: bytes,
    name: str,
    detected: str,
) -> str:
    """Seal one accepted file into the document store with its record; the name stored."""
    blob_key, digest = store.put(payload)
    ctx.session.add(
        Document(
            ticket_id=ticket.id,
            message_id=record.id,
            customer=ticket.customer,
            filename=name,
            detected_type=detected,
            size=len(payload),
            sha256=digest,
            blob_key=blob_key,
            state=DOC_RECEIVED,
            received_at=ctx.clock.now(),
        )
    )
    return name


@dataclass
class Taken:
    """What one message's documents came to: stored names, refusals, and the files past the
    limits (`over`, cut by the per-`limit` maximum; `told`: the customer heard of it today)."""

    proven: bool
    stored: list[str] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    over: int = 0
    limit: str = "message"
    told: bool = False


def _within_limits(
    ctx: Context, ticket: Ticket, candidates: list[AttachmentInfo], taken: Taken
) -> list[AttachmentInfo]:
    """The candidates this message may bring: at most `max_documents_per_message`, and what is
    left of the customer's `max_documents_per_day` (stored in the last 24 hours)."""
    kyc = ctx.config.kyc
    since = ctx.clock.now() - timedelta(days=1)
    today = ctx.session.scalar(
        select(func.count(Document.id)).where(
            Document.customer == ticket.customer, Document.received_at >= since
        )
    )
    room = max(0, kyc.max_documents_per_day - int(today or 0))
    allowed = min(kyc.max_documents_per_message, room)
    taken.over = max(0, len(candidates) - allowed)
    if taken.over and room < kyc.max_documents_per_message:
        taken.limit = "day"
        key = f"note:kyc-day-limit:{ticket.customer}:{ctx.clock.now():%Y-%m-%d}"
        taken.told = _noted(ctx, key)
    return candidates[:allowed]


def _noted(ctx: Context, key: str) -> bool:
    return (
        ctx.session.scalar(select(TicketMessage.id).where(TicketMessage.dedupe_key == key))
        is not None
    )


def _notes(
    ctx: Context, entry: JournalEntry, message: ParsedMessage, ticket: Ticket, taken: Taken
) -> None:
    if taken.refused:
        add_note(
            ctx,
            ticket,
            f"{len(taken.refused)} identity document(s) refused",
            "\n".join(f"{r.filename}: {r.code} ({r.detail})" for r in taken.refused),
            f"note:kyc-refused:{message.dedupe_key}",
            entry.id,
        )
    if taken.over:
        kyc = ctx.config.kyc
        limit = (
            f"kyc.max_documents_per_day = {kyc.max_documents_per_day}"
            if taken.limit == "day"
            else f"kyc.max_documents_per_message = {kyc.max_documents_per_message}"
        )
        key = f"note:kyc-over:{message.dedupe_key}"
        if taken.limit == "day" and not taken.told:
            key = f"note:kyc-day-limit:{ticket.customer}:{ctx.clock.now():%Y-%m-%d}"
        text = f"{taken.over} more file(s) of this message were not examined or stored ({limit})."
        add_note(ctx, ticket, "Identity documents over the limit", text, key, entry.id)


def step_documents(
    ctx: Context,
    entry: JournalEntry,
    message: ParsedMessage,
    ticket: Ticket,
    scan: ScanReport | None = None,
    proven: bool = False,
    checks: ContentChecks | None = None,
) -> Intake | None:
    """None when the message brings no documents to a kyc ticket. `proven`: the sender is
    proven to be the ticket's customer (ingest/sender_proof.py); only then do the documents
    reach the customer's verification."""
    candidates = _document_candidates(message)
    if ticket.category != "kyc" or not candidates:
        return None
    if ctx.config.kyc.clamd is not None and (scan is None or scan.infected):
        # Never reached through the worker, which scans first; a safeguard for other callers.
        raise RuntimeError("identity documents not scanned clean: nothing stored")
    if ctx.documents is None:
        raise RuntimeError("identity documents arrived but no document store is configured")
    store = ctx.documents()
    record = _record_of(ctx, message)
    taken, budget = Taken(proven), PdfBudget()
    for attachment in _within_limits(ctx, ticket, candidates, taken):
        name = safe_filename(attachment.filename, "document")
        verdict = check_document(ctx, attachment, name, budget, checks)
        if isinstance(verdict, Refusal):
            taken.refused.append(verdict)
            _mark_refused(record, attachment.filename, verdict.code)
            continue
        name = typed_filename(attachment.filename, verdict)
        taken.stored.append(_store(ctx, store, record, ticket, attachment.payload, name, verdict))
    if taken.stored:
        _bind(ctx, entry, message, ticket, proven)
    _notes(ctx, entry, message, ticket, taken)
    sent = _mail(ctx, entry, message, ticket, taken)
    ctx.session.flush()
    over = f", {taken.over} over the limit" if taken.over else ""
    return Intake(
        tuple(taken.stored),
        tuple(taken.refused),
        sent.startswith("sent"),  # now, or delayed by the rate limit (outbound/automatic.py)
        f"documents: {len(taken.stored)} stored, {len(taken.refused)} refused{over}, reply {sent}",
    )
