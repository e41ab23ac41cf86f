"""What a received message is to the rest of ticketd: the record parsing produces
(ingest/parsing.py) and every later layer reads, with its attachments and the verdicts of
sender verification and the spam filter."""

from __future__ import annotations

from dataclasses import dataclass, field
from pickle import PickleBuffer
from typing import Any, SupportsIndex

from domain.header_addresses import Address
from domain.sender_auth import SenderVerdict


@dataclass(frozen=True)
class SpamVerdict:
    checked: bool  # False: the filter could not say; never read as clean
    spam: bool = False
    score: float | None = None
    action: str = ""
    by: str = "rspamd"  # or "upstream" for a trusted gateway's header
    error: str = ""

    def describe(self) -> str:
        if not self.checked:
            return f"not checked for spam ({self.error})"
        score = f" score {self.score:.1f}" if self.score is not None else ""
        return f"{'spam' if self.spam else 'not spam'} ({self.by}: {self.action}{score})"


# What an attachment is to the message (see _walk_body): a file the sender attached, an image
# shown in the body, a file found inside a forwarded message, a logo or icon of a signature, or a
# forwarded message kept whole. Only FILE, INLINE and ENCLOSED can be identity documents.
FILE, INLINE, ENCLOSED = "file", "inline", "enclosed"
DECORATION, FORWARDED = "decoration", "message"
DOCUMENT_ROLES = frozenset({FILE, INLINE, ENCLOSED})


@dataclass(frozen=True)
class AttachmentInfo:
    filename: str
    content_type: str
    size: int
    # The decoded bytes, for what passes attachments on (an agent's answer); not compared.
    payload: bytes = field(default=b"", repr=False, compare=False)
    role: str = FILE

    def __reduce_ex__(self, protocol: SupportsIndex) -> tuple[Any, ...]:
        """Pickled with protocol 5 and a buffer callback (the parsing process sending its
        result back: ingest/isolation.py), the payload travels out of band, as a message of
        its own that the receiver takes as the payload: a 17 MB file is not also copied out
        of one big pickle (issue 19)."""
        payload = PickleBuffer(self.payload) if int(protocol) >= 5 else self.payload
        return (_attachment, (self.filename, self.content_type, self.size, payload, self.role))


def _attachment(
    filename: str, content_type: str, size: int, payload: Any, role: str
) -> AttachmentInfo:
    """An unpickled AttachmentInfo; its payload bytes as received (a buffer made bytes)."""
    data = payload if isinstance(payload, bytes) else bytes(payload)
    return AttachmentInfo(filename, content_type, size, data, role)


@dataclass(frozen=True)
class RecipientStatus:
    """One per-recipient block of a delivery report's message/delivery-status part (RFC 3464
    2.3): the address the report is about (Final-Recipient, and Original-Recipient when the
    reporting system kept the address the mail was sent to), what it did (Action: failed,
    delayed, delivered, relayed, expanded), the status code and the remote server's words."""

    final_recipient: str
    original_recipient: str = ""
    action: str = ""
    status: str = ""
    diagnostic: str = ""

    @property
    def failed(self) -> bool:
        return self.action.startswith(("fail", "error"))  # opensmtpd writes `error`

    @property
    def delayed(self) -> bool:
        return self.action.startswith("delay")


@dataclass(frozen=True)
class ParsedMessage:
    message_id: str | None
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    sender: Address
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    reply_to: tuple[Address, ...]
    subject: str
    text: str  # the new text, quoted history removed
    full_text: str
    attachments: tuple[AttachmentInfo, ...]
    headers: tuple[tuple[str, str], ...]  # every header, decoded, lowercase names
    content_type: str
    # What the sender sent, trace headers left out (ingest/content_hash.py): an exact copy
    # arriving again has the same one, whatever hops it took.
    content_hash: str
    # Original recipients that a delivery report in the body says failed (permanently) or are
    # still being retried (temporarily), as flufl.bounce's detectors read them. Only looked for
    # in mail that shows a sign of being automatic (see `looks_automatic`), never in a person's.
    failed_recipients: tuple[str, ...] = ()
    delayed_recipients: tuple[str, ...] = ()
    # The per-recipient blocks of the report's own delivery-status parts (not of a report it
    # returns), in order: what the report says of each address, for the note on the ticket.
    delivery_status: tuple[RecipientStatus, ...] = ()
    # Message-IDs named in the body (the returned headers of a bounce, a forwarded message):
    # how a delivery report finds the mail of ours it is about.
    embedded_message_ids: tuple[str, ...] = ()
    # What the MIME shape limits left unread (ingest/mime_shape.py), for a note on the ticket.
    shape_notes: tuple[str, ...] = ()
    # The Authentication-Results we believe (domain/sender_auth.py), set by the worker's
    # verification step; a message nobody verified proves nothing.
    auth: SenderVerdict = field(default_factory=SenderVerdict)
    # The spam filter's verdict ([spam]); None when no filter is configured.
    spam: SpamVerdict | None = None

    @property
    def aligned_pass(self) -> bool:
        """The From domain is proven by our verdict or a trusted one (an aligned DKIM or SPF
        pass): what an agent's mail, or a customer's proof of identity, needs."""
        return self.auth.aligned_pass

    # The envelope sender the source gave (SMTP MAIL FROM, `ingest --sender`): None when it
    # gave none, "" for the null sender of bounces and notifications.
    envelope_sender: str | None = None
    # Set by the deduplication step: this message reuses the Message-ID of a different one
    # already on a ticket, so it is kept under a key of its own.
    reused_message_id: bool = False

    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return None

    @property
    def dedupe_key(self) -> str:
        """The unique key of this message on a ticket: its Message-ID (the first message to
        use it), else what the sender sent (the content hash)."""
        if self.message_id and not self.reused_message_id:
            return f"mid:{self.message_id}"
        if self.message_id:
            return f"mid:{self.message_id}#{self.content_hash[:32]}"
        return f"sha256:{self.content_hash}"

    @property
    def null_sender(self) -> bool:
        """Sent with the null reverse-path (RFC 5321 4.5.5): only notifications are."""
        if self.envelope_sender == "":
            return True
        return_path = self.header("return-path")
        return return_path is not None and return_path.strip().strip("<>").strip() == ""
