"""Building the bytes of the mail ticketd sends: headers that thread and never loop."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from domain.header_folding import SMTP_POLICY
from domain.templating import RenderedMail

# Every character Python's str.splitlines() breaks on (CR, LF, VT, FF, FS, GS, RS, NEL, U+2028,
# U+2029) ends a header line for some reader, and the email package refuses them outright, so a
# customer's \x0b would stop their acknowledgement; the other C0 controls and NUL are no text.
_UNSAFE_IN_HEADER = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]+")


# What is left of an RFC 2047 encoded word after parsing is text the sender wrote literally or
# a broken word; the email package's folder would decode it again (and raise on a broken one).
_ENCODED_WORD_START = re.compile(r"=\?(?=[^?\s]*\?[bBqQ]\?)")


def _clean(value: str) -> str:
    # A header value never carries a line break: whatever a sender put in a subject or a name
    # cannot add a header or a recipient to our mail.
    text = " ".join(_UNSAFE_IN_HEADER.sub(" ", value).split())
    return _ENCODED_WORD_START.sub("= ?", text)


def _msg_id(value: str) -> str | None:
    """A Message-ID we may write back (In-Reply-To, References); a customer's id with space or
    control characters in it is left out rather than written, or refused by the email package."""
    return None if not value or _UNSAFE_IN_HEADER.search(value) or " " in value else value


def sign_token(secret: str, token: str) -> str:
    if not secret:  # an empty key signs for anyone: a programming error, never a fallback
        raise ValueError("no desk secret to sign with")
    return hmac.new(secret.encode(), token.encode(), hashlib.sha256).hexdigest()[:12]


def new_message_id(secret: str, ref: str, domain: str) -> str:
    """Our Message-IDs name the ticket and carry a signature, so replies find it (issue 4)."""
    token = f"ticketd.{ref}.{secrets.token_hex(6)}"
    return f"{token}.{sign_token(secret, token)}@{domain}"


def verify_message_id(secret: str, message_id: str) -> str | None:
    """The reference a Message-ID of ours names, or None when it is not ours or is forged."""
    local, _, _domain = message_id.partition("@")
    token, _, signature = local.rpartition(".")
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != "ticketd":
        return None
    if not hmac.compare_digest(sign_token(secret, token), signature):
        return None
    return parts[1]


@dataclass(frozen=True)
class Envelope:
    sender_name: str
    sender: str
    to_name: str
    to: str
    message_id: str
    in_reply_to: str | None
    references: tuple[str, ...]
    date: datetime
    auto_submitted: str | None  # "auto-replied", "auto-generated" or None for a person's mail
    ref: str
    reply_to: str | None = None  # the ticket's signed reply address
    loop_marker: str | None = None  # X-Loop: our address; mail carrying it is ours come back


def _address(name: str, addr: str) -> Address:
    if _UNSAFE_IN_HEADER.search(addr) or any(c.isspace() for c in addr):
        # Parsing never yields such an address; refuse rather than write one into To.
        raise ValueError(f"unsafe address {addr!r}")
    local, _, domain = addr.partition("@")
    return Address(display_name=_clean(name), username=local, domain=domain)


@dataclass(frozen=True)
class OutgoingAttachment:
    filename: str
    content_type: str
    payload: bytes


def build_mail(
    envelope: Envelope, body: RenderedMail, attachments: tuple[OutgoingAttachment, ...] = ()
) -> bytes:
    mail = EmailMessage(policy=SMTP_POLICY)
    mail["From"] = _address(envelope.sender_name, envelope.sender)
    mail["To"] = _address(envelope.to_name, envelope.to)
    mail["Subject"] = _clean(body.subject)
    if envelope.reply_to:
        mail["Reply-To"] = _address(envelope.sender_name, envelope.reply_to)
    mail["Date"] = format_datetime(envelope.date)
    mail["Message-ID"] = f"<{envelope.message_id}>"
    in_reply_to = _msg_id(envelope.in_reply_to or "")
    if in_reply_to:
        mail["In-Reply-To"] = f"<{in_reply_to}>"
    references = [r for r in envelope.references if _msg_id(r)]
    if references:  # the first (the thread's root for some readers) and the last ones
        kept = references if len(references) <= 20 else [references[0], *references[-19:]]
        mail["References"] = " ".join(f"<{r}>" for r in kept)
    if envelope.auto_submitted:
        mail["Auto-Submitted"] = envelope.auto_submitted
        # Ask Exchange and friends not to answer our automatic mail with theirs.
        mail["X-Auto-Response-Suppress"] = "All"
    if envelope.loop_marker:
        mail["X-Loop"] = envelope.loop_marker
    mail["X-Ticketd-Ref"] = envelope.ref
    mail.set_content(body.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    mail.add_alternative(body.html, subtype="html", charset="utf-8", cte="quoted-printable")
    for attachment in attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        mail.add_attachment(
            attachment.payload,
            maintype=maintype or "application",
            subtype=subtype or "octet-stream",
            filename=_clean(attachment.filename) or "attachment",
        )
    return mail.as_bytes()
