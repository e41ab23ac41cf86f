"""SQLAlchemy 2 typed models: the journal, tickets and their messages, and the outbox."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from storage.columns import METADATA
from storage.columns import UtcDateTime as UtcDateTime
from storage.journal_table import JOURNAL
from storage.journal_table import JOURNAL_DISMISSED as JOURNAL_DISMISSED
from storage.journal_table import JOURNAL_DONE as JOURNAL_DONE
from storage.journal_table import JOURNAL_IGNORED as JOURNAL_IGNORED
from storage.journal_table import JOURNAL_PENDING as JOURNAL_PENDING
from storage.journal_table import JOURNAL_QUARANTINED as JOURNAL_QUARANTINED
from storage.sealed_rows import SealedBytes


class Base(DeclarativeBase):
    metadata = METADATA  # the journal's Core table's too (storage/columns.py)
    type_annotation_map = {datetime: UtcDateTime}  # noqa: RUF012


# What is left of a message's raw bytes (journal and outbox `raw_state`); None: all of it.
RAW_REDACTED = "redacted"  # the parts carrying purged identity documents replaced by a note
RAW_STRIPPED = "stripped"  # every attachment replaced by a note (`[retention] raw_days`)
RAW_REMOVED = "removed"  # nothing of the message left (ticket_days, or the customer's erasure)

# Outbox states.
OUTBOX_QUEUED = "queued"
OUTBOX_SENT = "sent"
OUTBOX_FAILED = "failed"
OUTBOX_SUPPRESSED = "suppressed"


class JournalEntry(Base):
    """One received copy of a message: its raw bytes live in the blob store under `blob_key`.
    The table is declared in Core, with what each column holds (storage/journal_table.py)."""

    __table__ = JOURNAL

    id: Mapped[int]
    blob_key: Mapped[str]
    size: Mapped[int]
    source: Mapped[str]
    envelope_from: Mapped[str | None]
    envelope_to: Mapped[list[str]]
    received_at: Mapped[datetime]
    state: Mapped[str]
    reason: Mapped[str | None]
    attempts: Mapped[int]
    processed_at: Mapped[datetime | None]
    acknowledge: Mapped[bool]
    origin: Mapped[str | None]
    origin_family: Mapped[str | None]
    raw_state: Mapped[str | None]
    raw_changed_at: Mapped[datetime | None]
    content_hash: Mapped[str | None]
    step: Mapped[str | None]


class SealKey(Base):
    """A key id some process sealed blobs with (storage/key_registry.py): a daemon whose key
    file lacks one refuses to start instead of quarantining what that key sealed."""

    __tablename__ = "seal_keys"

    key_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    registered_at: Mapped[datetime] = mapped_column()
    registered_by: Mapped[str] = mapped_column(String(200))  # host:pid and the key file


class ImapCheckpoint(Base):
    """How far ticketd has taken one IMAP folder: every UID up to `last_uid` is journaled and
    acted on (seen, moved or deleted), for this UIDVALIDITY only."""

    __tablename__ = "imap_checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # user@host:port/folder: the mailbox itself, so renaming the account keeps its place.
    mailbox: Mapped[str] = mapped_column(String(700))
    account: Mapped[str] = mapped_column(String(200))
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger)
    # Messages below this UID were in the folder at the first sync; with quiet_first_sync they
    # are historical (no acknowledgement), even when a restart interrupts that first sync.
    quiet_below_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column()

    __table_args__ = (UniqueConstraint("mailbox", name="uq_imap_checkpoints_mailbox"),)


class ImapAccountStatus(Base):
    """Whether one IMAP account works, as the daemon that polls it last saw it (for `ticketd
    health`, which runs elsewhere). One row per account and daemon host; the newest row of an
    account is its state, so a takeover by another daemon shows that daemon's word."""

    __tablename__ = "imap_account_status"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account: Mapped[str] = mapped_column(String(200))
    # user@host:port/folder, as in imap_checkpoints: which mailbox the account was.
    mailbox: Mapped[str] = mapped_column(String(700))
    daemon_host: Mapped[str] = mapped_column(String(255))
    last_ok_at: Mapped[datetime | None] = mapped_column()
    # Set at the first failed login or sync of an outage, cleared by the next success.
    failing_since: Mapped[datetime | None] = mapped_column()
    # Secrets masked (see domain/account_status.py).
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column()

    __table_args__ = (
        UniqueConstraint("account", "daemon_host", name="uq_imap_account_status_account_host"),
    )


# Every status a ticket has. Agents and mail set the first three (ingest/ticket_ops.STATUSES);
# only a merge makes a ticket `merged` (its merged_into_id names the survivor).
TICKET_STATUSES = ("open", "pending", "closed", "merged")


class Ticket(Base):
    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ref: Mapped[str] = mapped_column(String(20), unique=True)
    status: Mapped[str] = mapped_column(String(20), default="open")
    category: Mapped[str] = mapped_column(String(20), default="other")
    queue: Mapped[str | None] = mapped_column(String(100))
    assignee: Mapped[str | None] = mapped_column(String(320))  # an agent's address
    priority: Mapped[str] = mapped_column(String(10), default="normal", server_default="normal")
    customer: Mapped[str] = mapped_column(String(320))
    customer_name: Mapped[str | None] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(5))
    subject: Mapped[str] = mapped_column(Text)
    # A reference the first message claimed in its subject but had no right to (not a
    # participant of that ticket): kept for agents, never used to thread.
    claimed_ref: Mapped[str | None] = mapped_column(String(20))
    # A merged ticket points to the ticket that absorbed it; its reference keeps working.
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()
    # The SLA clock (outbound/sla.py): the current deadlines, None when none runs.
    sla_first_answer_due: Mapped[datetime | None] = mapped_column()
    sla_next_answer_due: Mapped[datetime | None] = mapped_column()
    sla_resolution_due: Mapped[datetime | None] = mapped_column()
    sla_first_answered_at: Mapped[datetime | None] = mapped_column()
    # Since when the customer's unanswered message waits (the next-answer clock's start).
    sla_waiting_since: Mapped[datetime | None] = mapped_column()
    # Waiting for the customer pauses the clock; the paused business time pushes deadlines.
    sla_paused_at: Mapped[datetime | None] = mapped_column()
    sla_paused_seconds: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The customer's answer to the satisfaction survey (outbound/survey.py): 1 to 5.
    satisfaction_score: Mapped[int | None] = mapped_column(Integer)
    satisfaction_comment: Mapped[str | None] = mapped_column(Text)
    satisfaction_at: Mapped[datetime | None] = mapped_column()
    # `[retention] ticket_days` after the close: the messages' text and raw copies removed.
    text_removed_at: Mapped[datetime | None] = mapped_column()
    # The first request: when it was written (its Date, for imported mail) and a digest of its
    # normalised words, so a repeat of it is found by index (ingest/thread_finder.py).
    request_at: Mapped[datetime | None] = mapped_column()
    request_print: Mapped[str | None] = mapped_column(String(64))

    messages: Mapped[list[TicketMessage]] = relationship(
        back_populates="ticket", order_by="TicketMessage.id", foreign_keys="TicketMessage.ticket_id"
    )
    participants: Mapped[list[Participant]] = relationship(
        back_populates="ticket", order_by="Participant.id"
    )
    __table_args__ = (
        Index("ix_tickets_customer_request", "customer", "request_at"),
        # The API lists tickets newest first, by queue or customer (web/queries.py).
        Index("ix_tickets_queue", "queue", "id"),
        Index("ix_tickets_customer", "customer", "id"),
    )


class Participant(Base):
    __tablename__ = "participants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(20))  # customer, cc, agent

    ticket: Mapped[Ticket] = relationship(back_populates="participants")
    __table_args__ = (
        UniqueConstraint("ticket_id", "email"),
        Index("ix_participant_email", "email"),
    )


class Suppression(Base):
    """An address we do not send to until `until`: it bounced permanently."""

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    address: Mapped[str] = mapped_column(String(320), unique=True)
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column()
    until: Mapped[datetime] = mapped_column()


class TicketMessage(Base):
    """A message of a ticket, in (received) or out (sent by us)."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    journal_id: Mapped[int | None] = mapped_column(ForeignKey("journal.id"))
    direction: Mapped[str] = mapped_column(String(3))  # in, out
    kind: Mapped[str] = mapped_column(String(10))  # customer, agent, note, auto, system
    # Message-ID when the message has one, else a hash of its bytes: the key of "once only".
    dedupe_key: Mapped[str] = mapped_column(String(1000), unique=True)
    message_id: Mapped[str | None] = mapped_column(String(1000))
    from_addr: Mapped[str] = mapped_column(String(320))
    from_name: Mapped[str | None] = mapped_column(String(200))
    to_addrs: Mapped[list[str]] = mapped_column(JSON, default=list)
    cc_addrs: Mapped[list[str]] = mapped_column(JSON, default=list)
    subject: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    attachments: Mapped[list[dict[str, object]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column()

    ticket: Mapped[Ticket] = relationship(back_populates="messages")
    __table_args__ = (
        Index("ix_messages_message_id", "message_id"),
        Index("ix_messages_ticket", "ticket_id", "id"),
    )


class OutboxMail(Base):
    """A mail to send, written in the same transaction as the ticket change that caused it."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    kind: Mapped[str] = mapped_column(String(30))  # ack, ...
    message_id: Mapped[str] = mapped_column(String(1000), unique=True)
    sender: Mapped[str] = mapped_column(String(320))
    recipients: Mapped[list[str]] = mapped_column(JSON)
    # The main recipient, lowercase: the key of the per-recipient rate limit on automatic mail.
    recipient: Mapped[str] = mapped_column(String(320))
    automatic: Mapped[bool] = mapped_column(default=True)
    subject: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    # Sealed at rest with the journal's keys (storage/sealed_rows.py): read and written plain.
    raw: Mapped[bytes] = mapped_column(SealedBytes)
    state: Mapped[str] = mapped_column(String(20), default=OUTBOX_QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    # "host:pid" of the sender that holds the delivery lease; lets a restarted daemon take
    # back what its killed predecessor had in hand without waiting for the lease to expire.
    claimed_by: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column()
    sent_at: Mapped[datetime | None] = mapped_column()
    # What retention or a purge left of `raw` (RAW_* above); None: as composed.
    raw_state: Mapped[str | None] = mapped_column(String(20))
    raw_changed_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (
        Index("ix_outbox_due", "state", "next_attempt_at"),
        Index("ix_outbox_recipient_time", "recipient", "created_at"),
        Index("ix_outbox_ticket", "ticket_id"),
    )


# SLA event kinds (what the tick sends) and targets (which deadline it is about).
SLA_REMINDER = "reminder"
SLA_ESCALATION = "escalation"
SLA_FOLLOWUP = "followup"  # "still working on it", to the customer
SLA_PENDING_REMINDER = "pending_reminder"  # to a customer we wait for
SLA_AUTO_CLOSE = "auto_close"  # the customer never answered
SLA_SURVEY = "survey"  # the satisfaction survey after a close, to the customer


class SlaEvent(Base):
    """A mail the SLA clock owes at `due_at`, about one deadline of one ticket.

    Written when a deadline is computed, so what is due lives here (never in APScheduler's job
    store): a restart, a missed tick or a second daemon finds it, and `sent_at` with the unique
    key makes each go out once. `outcome` says what the tick did (sent, skipped and why).
    """

    __tablename__ = "sla_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    kind: Mapped[str] = mapped_column(String(20))  # SLA_* below
    # first_answer, next_answer, resolution; "pending" for the wait for the customer.
    target: Mapped[str] = mapped_column(String(20))
    # Percent of the deadline's span (75 for a reminder at 0.75, 100 for the breach).
    point: Mapped[int] = mapped_column(Integer)
    deadline: Mapped[datetime] = mapped_column()
    due_at: Mapped[datetime] = mapped_column()
    sent_at: Mapped[datetime | None] = mapped_column()
    outcome: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("ticket_id", "kind", "target", "point", "deadline", name="uq_sla_events"),
        Index("ix_sla_events_due", "sent_at", "due_at"),
        Index("ix_sla_events_ticket", "ticket_id"),
    )


class SlaDigest(Base):
    """The daily digest of one queue for one local day, claimed once.

    The tick inserts the row in the transaction that queues the digest's mail; the unique
    (queue, day) key makes a second daemon, or a tick after a restart, find it taken.
    """

    __tablename__ = "sla_digests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    queue: Mapped[str] = mapped_column(String(100))
    day: Mapped[date] = mapped_column(Date)  # in the SLA calendar's time zone
    sent_at: Mapped[datetime] = mapped_column()
    outcome: Mapped[str] = mapped_column(Text)

    __table_args__ = (UniqueConstraint("queue", "day", name="uq_sla_digests"),)


# Identity document states (issue 6).
DOC_RECEIVED = "received"
DOC_APPROVED = "approved"
DOC_REJECTED = "rejected"
DOC_EXPIRED = "expired"  # never decided on: purged after `[kyc] abandoned_retention_days`
# A purge keeps the state (the decision stays on the record); `purged_at` and a None
# `blob_key` say the content is gone.


class Document(Base):
    """An identity document a customer sent: the record stays after its content is purged.

    The content is encrypted in the blob store under `blob_key` (storage/documents.py); after
    the purge `blob_key` is None and what remains is who sent what type of file, its hash and
    size, and the decision."""

    __tablename__ = "documents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"))
    customer: Mapped[str] = mapped_column(String(320))
    filename: Mapped[str] = mapped_column(String(255))  # made safe by ingest/filenames.py
    detected_type: Mapped[str] = mapped_column(String(20))  # from the bytes: jpeg, pdf, ...
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    blob_key: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(20), default=DOC_RECEIVED)
    decided_by: Mapped[str | None] = mapped_column(String(320))
    decided_at: Mapped[datetime | None] = mapped_column()
    reason: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column()
    purged_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (
        Index("ix_documents_ticket", "ticket_id"),
        Index("ix_documents_state", "state", "decided_at"),
        # The sweep and the key rotation ask whether a blob is a document, blob by blob.
        Index("ix_documents_blob_key", "blob_key"),
    )


class DocumentAccess(Base):
    """One access to an identity document: who did what, when (export, purge, decide)."""

    __tablename__ = "document_access"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id"))
    actor: Mapped[str] = mapped_column(String(320))  # an agent's address, or "ticketd"
    action: Mapped[str] = mapped_column(String(20))  # export, purge, decide
    at: Mapped[datetime] = mapped_column()
    detail: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_document_access_document", "document_id"),)


# A customer's verification states (issue 6): where their identity check stands.
VERIFY_REQUESTED = "requested"  # an agent asked for documents; none arrived since
VERIFY_RECEIVED = "received"  # documents arrived and wait for a decision
VERIFY_APPROVED = "approved"
VERIFY_REJECTED = "rejected"  # `reason` is what the customer read
VERIFY_EXPIRED = "expired"  # `expired_from` says which state ran out


class Verification(Base):
    """Where one customer's identity check stands: one row per customer address.

    Kept in step with the documents (a request, documents arriving, a decision) in the same
    transaction. `expires_at` is when the current state ends on its own: an unanswered request,
    documents nobody decided on, an approval whose validity ended. The scheduled job
    (ticketd/kyc_service.py) sets those to expired once, under a row lock, and tells the
    customer in that transaction, so two daemons never both do it.
    """

    __tablename__ = "verifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer: Mapped[str] = mapped_column(String(320))  # lowercase address
    state: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text)  # a rejection's reason, as mailed
    # The ticket of the latest request or documents: where notes and mails about it go.
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    requested_at: Mapped[datetime | None] = mapped_column()
    requested_by: Mapped[str | None] = mapped_column(String(320))
    received_at: Mapped[datetime | None] = mapped_column()
    decided_at: Mapped[datetime | None] = mapped_column()
    decided_by: Mapped[str | None] = mapped_column(String(320))
    expires_at: Mapped[datetime | None] = mapped_column()
    expired_at: Mapped[datetime | None] = mapped_column()
    expired_from: Mapped[str | None] = mapped_column(String(20))
    updated_at: Mapped[datetime] = mapped_column()

    __table_args__ = (
        UniqueConstraint("customer", name="uq_verifications_customer"),
        Index("ix_verifications_due", "state", "expires_at"),
    )


class BlobRemoval(Base):
    """A blob ticketd removed on purpose (a purge, retention, an erasure), until it is gone.

    Written in the transaction that stops naming the blob; the file is deleted after the
    commit. A crash in between, or a key rotation rewriting the file at that moment (its rename
    would put it back), leaves the file: the next retention run and the rotation itself delete
    a blob listed here that nothing names any more."""

    __tablename__ = "blob_removals"

    blob_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    removed_at: Mapped[datetime] = mapped_column()


ERASURE_STARTED = "started"  # the address is still held, to resume after a crash
ERASURE_DONE = "done"


class Erasure(Base):
    """A customer's erasure (issue 16): the pseudonym that replaced them, never the address
    once it is done. `address_key` (an HMAC of the address under `desk.secret`) is how
    automatic mail recognises them later without keeping the address."""

    __tablename__ = "erasures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    address_key: Mapped[str] = mapped_column(String(64), unique=True)
    pseudonym: Mapped[str] = mapped_column(String(64), unique=True)
    address: Mapped[str | None] = mapped_column(String(320))
    state: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(320))
    started_at: Mapped[datetime] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    detail: Mapped[str | None] = mapped_column(Text)


class AccessAudit(Base):
    """Who saw or changed a customer's data, and when: `tickets show`, `customer export`,
    `customer erase`, and every refusal of an agent outside their queues."""

    __tablename__ = "access_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    actor: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(30))
    customer: Mapped[str | None] = mapped_column(String(320))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    at: Mapped[datetime] = mapped_column()
    detail: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_access_audit_customer", "customer"),)


class BlockedSender(Base):
    """A sender whose mail is ignored with the reason `blocked` (`ticketd block`): an address, or
    a domain with its subdomains. Lowercase."""

    __tablename__ = "blocked_senders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pattern: Mapped[str] = mapped_column(String(320), unique=True)
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column()


# Webhook delivery states (issue 20).
WEBHOOK_QUEUED = "queued"
WEBHOOK_DELIVERED = "delivered"
WEBHOOK_FAILED = "failed"  # every try of the retry schedule failed


class WebhookDelivery(Base):
    """One event for one `[[webhooks]]` endpoint, written in the transaction of the change that
    caused it (storage/webhook_events.py) and posted by outbound/webhooks.py, claimed like the
    outbox. `webhook_id` is the event's id (the `webhook-id` header), the same for every
    endpoint and every retry, so a receiver can tell a retry from a new event."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    webhook_id: Mapped[str] = mapped_column(String(40))
    event: Mapped[str] = mapped_column(String(40))  # ticket.created, ...
    url: Mapped[str] = mapped_column(String(2000))  # the endpoint, as configured
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    body: Mapped[str] = mapped_column(Text)  # the JSON posted, exactly as signed
    state: Mapped[str] = mapped_column(String(20), default=WEBHOOK_QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column()
    # The last failed try: the HTTP status or the connection error.
    last_error: Mapped[str | None] = mapped_column(Text)
    claimed_by: Mapped[str | None] = mapped_column(String(300))  # "host:pid", as in the outbox
    created_at: Mapped[datetime] = mapped_column()
    delivered_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (
        UniqueConstraint("webhook_id", "url", name="uq_webhook_deliveries_event_url"),
        Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),
        Index("ix_webhook_deliveries_ticket", "ticket_id"),
    )


class ApiToken(Base):
    """A bearer token of the HTTP API (web/tokens.py): an agent's, scoped to their queues, or
    an admin's. Only the SHA-256 of the token is kept; the token itself is printed once."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    agent: Mapped[str | None] = mapped_column(String(320))  # None: an admin token
    name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column()
    last_used_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
