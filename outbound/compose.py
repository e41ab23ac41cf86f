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
from email.policy import SMTP
from email.utils import format_datetime

from outbound.templating import RenderedMail


def _clean(value: str) -> str:
    # A header value never carries a line break: whatever a sender put in a subject or a name
    # cannot add a header or a recipient to our mail.
    return re.sub(r"[\r\n\x00]+", " ", value).strip()


def sign_token(secret: str, token: str) -> str:
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
    mail = EmailMessage(policy=SMTP)
    mail["From"] = _address(envelope.sender_name, envelope.sender)
    mail["To"] = _address(envelope.to_name, envelope.to)
    mail["Subject"] = _clean(body.subject)
    if envelope.reply_to:
        mail["Reply-To"] = _address(envelope.sender_name, envelope.reply_to)
    mail["Date"] = format_datetime(envelope.date)
    mail["Message-ID"] = f"<{envelope.message_id}>"
    if envelope.in_reply_to:
        mail["In-Reply-To"] = f"<{envelope.in_reply_to}>"
    if envelope.references:
        mail["References"] = " ".join(f"<{r}>" for r in envelope.references[-20:])
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
