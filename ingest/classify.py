"""Classification: is this a person writing, or a machine we must never answer?

Follows RFC 3834 (automatic responses) and RFC 3464 (delivery status notifications) and the
headers real auto-responders set. The answer decides two things: whether the message becomes part
of a ticket, and whether anything automatic may be sent back (promise 4: no loops).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from ingest.parsing import ParsedMessage


class Kind(StrEnum):
    CUSTOMER = "customer"
    BOUNCE = "bounce"
    AUTO_REPLY = "auto-reply"
    LIST = "list"
    LOOP = "loop"


@dataclass(frozen=True)
class Classification:
    kind: Kind
    reason: str

    @property
    def may_reply(self) -> bool:
        return self.kind is Kind.CUSTOMER


_DAEMON_LOCALPARTS = re.compile(
    r"^(mailer-daemon|postmaster|mail-daemon|mailerdaemon|noreply|no-reply|no_reply|donotreply|"
    r"do-not-reply|bounces?|bounce-.*|.*-bounces?|.*\+bounces?)$"
)
_AUTO_SUBJECT = re.compile(
    r"^(auto(matic)?[ -]?(reply|response)|out of (the )?office|otomatik (yanıt|cevap)|"
    r"ofis dışında|delivery status notification|undeliver(ed|able)|returned mail|"
    r"mail delivery (failed|failure)|failure notice)",
    re.IGNORECASE,
)


def classify(message: ParsedMessage, own_addresses: tuple[str, ...]) -> Classification:
    sender = message.sender.email
    header = message.header
    if sender and sender in own_addresses:
        return Classification(Kind.LOOP, f"sent from our own address {sender}")
    if message.header("x-ticketd-loop") is not None:
        return Classification(Kind.LOOP, "carries our own X-Ticketd-Loop header")
    content_type = (header("content-type") or "").lower()
    if message.content_type == "multipart/report" or "report-type=delivery-status" in content_type:
        return Classification(Kind.BOUNCE, "delivery status notification (multipart/report)")
    return_path = header("return-path")
    if return_path is not None and return_path.strip() in ("<>", ""):
        return Classification(Kind.BOUNCE, "empty Return-Path (a bounce or notification)")
    if sender and _DAEMON_LOCALPARTS.match(sender.partition("@")[0]):
        if _AUTO_SUBJECT.match(message.subject.strip()):
            return Classification(Kind.BOUNCE, f"from {sender} with a bounce subject")
        return Classification(Kind.AUTO_REPLY, f"from the system address {sender}")
    auto_submitted = (header("auto-submitted") or "").strip().lower()
    if auto_submitted and not auto_submitted.startswith("no"):
        return Classification(Kind.AUTO_REPLY, f"Auto-Submitted: {auto_submitted}")
    if header("x-autoreply") is not None or header("x-autorespond") is not None:
        return Classification(Kind.AUTO_REPLY, "X-Autoreply/X-Autorespond header")
    if header("x-auto-response-suppress") is not None and _AUTO_SUBJECT.match(message.subject):
        return Classification(Kind.AUTO_REPLY, "Outlook auto-reply")
    precedence = (header("precedence") or "").strip().lower()
    if precedence in ("bulk", "junk", "list", "auto_reply"):
        return Classification(Kind.LIST, f"Precedence: {precedence}")
    if header("list-id") is not None or header("list-unsubscribe") is not None:
        return Classification(Kind.LIST, "mailing list (List-Id/List-Unsubscribe)")
    if _AUTO_SUBJECT.match(message.subject.strip()):
        return Classification(Kind.AUTO_REPLY, f"auto-reply subject {message.subject[:60]!r}")
    if not sender:
        return Classification(Kind.LOOP, "no usable From address: nobody to answer")
    return Classification(Kind.CUSTOMER, "a person writing")


def suppresses_auto_reply(message: ParsedMessage) -> bool:
    """Headers that ask us not to answer automatically although a person may have written."""
    suppress = (message.header("x-auto-response-suppress") or "").lower()
    return any(token in suppress for token in ("all", "autoreply", "oof"))
