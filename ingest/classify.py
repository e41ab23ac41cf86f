"""Classification: is this a person writing, or a machine we must never answer?

Follows RFC 3834 (automatic responses), RFC 3464 (delivery status notifications), RFC 5965
(abuse feedback reports) and RFC 8098 (read receipts), the headers real auto-responders set, and,
for the many mail systems that write their bounces as plain prose, the delivery-report detectors
of flufl.bounce (read by `ingest.parsing` into `failed_recipients` / `delayed_recipients`, only
for mail that already shows a sign of being automatic). The answer decides two things: whether
the message becomes part of a ticket, and whether anything automatic may be sent back
(promise 4: no loops).

Order matters: a bounce often carries `Auto-Submitted: auto-replied` too, so the signs of a
delivery report are read first; a vacation reply often comes with an empty Return-Path, so the
signs of an auto-reply are read before the empty Return-Path makes it a bounce.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from domain.message import ParsedMessage
from ingest.parsing import is_system_address, looks_like_report


class Kind(StrEnum):
    CUSTOMER = "customer"
    BOUNCE = "bounce"
    AUTO_REPLY = "auto-reply"
    LIST = "list"
    BULK = "bulk"
    LOOP = "loop"
    # A person's request a web form mailed in the site's name (see form_submission).
    FORM = "form"


@dataclass(frozen=True)
class Classification:
    kind: Kind
    reason: str

    @property
    def may_reply(self) -> bool:
        return self.kind is Kind.CUSTOMER


_NOREPLY_LOCALPARTS = re.compile(
    r"^(noreply|no-reply|no_reply|donotreply|do-not-reply|do_not_reply|notifications?)$"
)
# Addresses a person may write from although mail systems send from them too (Thunderbird users
# named postmaster exist): machine mail only with the signs of a report.
_ROLE_LOCALPARTS = re.compile(r'^("?system administrator"?|post[-_]?master)$', re.IGNORECASE)
# Amazon SES reports bounces and complaints as JSON in an SNS notification mail (the inner
# message is JSON inside JSON, so its quotes may be escaped).
_SES_NOTICE = re.compile(r'\\?"notificationType\\?"\s*:\s*\\?"(Bounce|Complaint)')
SES_SCAN = 64 * 1024
# Subjects a delivery report starts with.
_BOUNCE_SUBJECT = re.compile(
    r"^(delivery status notification|undeliver(ed|able)|returned mail|non[- ]?delivery|"
    r"mail delivery (failed|failure|problem|system)|failure notice|delivery (failure|failed)|"
    r"delayed mail|mail (could not be|not) delivered|warning: (message|could not send)|"
    r"iletilemedi|teslim edilemedi)",
    re.IGNORECASE,
)
# Subjects an auto-responder starts with.
_AUTO_SUBJECT = re.compile(
    r"^(auto(matic|matische)?[ -]?(reply|response|antwort|respons)|out of (the )?office|"
    r"otomatik (yanıt|cevap)|ofis dışında|abwesenheit|absence|réponse automatique|"
    r"respuesta automática|vacation|away from)",
    re.IGNORECASE,
)


# Complaint loops that send a forwarded copy rather than a formal ARF report (Hotmail's JMRP).
_COMPLAINT_SUBJECT = re.compile(r"^complaint about message from ", re.IGNORECASE)
_FORWARD_PREFIX = re.compile(r"^\s*((fwd?|fw|ilt|İlt|wg|tr)\s*:\s*)+", re.IGNORECASE)


def is_forwarded_report(message: ParsedMessage) -> bool:
    """A person forwarding a bounce to us ("Fwd: Returned mail ..."): a ticket, since a person
    may need help, but nothing automatic goes back to a thread about a delivery failure."""
    stripped = _FORWARD_PREFIX.sub("", message.subject)
    return stripped != message.subject and bool(_BOUNCE_SUBJECT.match(stripped.strip()))


def _report_type(message: ParsedMessage) -> str | None:
    content_type = (message.header("content-type") or "").lower()
    if message.content_type != "multipart/report" and "report-type=" not in content_type:
        return None
    found = re.search(r"report-type\s*=\s*\"?([\w-]+)", content_type)
    return found.group(1) if found else ""


def _bounce(message: ParsedMessage) -> Classification | None:
    report = _report_type(message)
    if report == "feedback-report":
        return Classification(Kind.BOUNCE, "abuse feedback report (multipart/report, ARF)")
    if report is not None and report != "disposition-notification":
        return Classification(Kind.BOUNCE, "delivery status notification (multipart/report)")
    if message.failed_recipients:
        failed = ", ".join(message.failed_recipients[:3])
        return Classification(Kind.BOUNCE, f"delivery failure report for {failed}")
    if message.delayed_recipients:
        delayed = ", ".join(message.delayed_recipients[:3])
        return Classification(Kind.BOUNCE, f"delivery delay warning for {delayed}")
    if report is not None:
        return Classification(Kind.AUTO_REPLY, "read receipt (disposition notification)")
    sender = message.sender.email
    subject = message.subject.strip()
    if _COMPLAINT_SUBJECT.match(subject):
        return Classification(Kind.BOUNCE, "abuse complaint (a forwarded copy, not ARF)")
    if (not sender or is_system_address(sender)) and _BOUNCE_SUBJECT.match(subject):
        return Classification(Kind.BOUNCE, f"from {sender or 'nobody'} with a bounce subject")
    return None


def _auto_reply(message: ParsedMessage) -> Classification | None:
    header = message.header
    auto_submitted = (header("auto-submitted") or "").strip().lower()
    if auto_submitted and not auto_submitted.startswith("no"):
        return Classification(Kind.AUTO_REPLY, f"Auto-Submitted: {auto_submitted}")
    if header("x-autoreply") is not None or header("x-autorespond") is not None:
        return Classification(Kind.AUTO_REPLY, "X-Autoreply/X-Autorespond header")
    precedence = (header("precedence") or "").strip().lower()
    if precedence == "auto_reply":
        return Classification(Kind.AUTO_REPLY, "Precedence: auto_reply")
    subject = message.subject.strip()
    if header("x-auto-response-suppress") is not None and _AUTO_SUBJECT.match(subject):
        return Classification(Kind.AUTO_REPLY, "Outlook auto-reply")
    if _AUTO_SUBJECT.match(subject):
        return Classification(Kind.AUTO_REPLY, f"auto-reply subject {subject[:60]!r}")
    return None


# What contact-form software writes into the mail it sends (WordPress's wp_mail and Contact Form 7
# use PHPMailer; PHP's mail() adds X-PHP-Originating-Script when the admin enabled it).
_FORM_MAILERS = re.compile(r"phpmailer|wordpress|contact form|wpforms|gravity forms|formmail", re.I)


def _automated_from(message: ParsedMessage, auto_submitted: str) -> bool:
    localpart = message.sender.email.partition("@")[0]
    mailer = message.header("x-mailer") or ""
    return (
        auto_submitted == "auto-generated"
        or bool(_NOREPLY_LOCALPARTS.match(localpart))
        or bool(_FORM_MAILERS.search(mailer))
        or message.header("x-php-originating-script") is not None
    )


def form_submission(message: ParsedMessage) -> str | None:
    """The person a web form's mail is from (its Reply-To), or None when it has not that shape.

    A contact form (Contact Form 7, PHP mail(), a help-desk widget) sends from the site's own or
    a no-reply address, often with `Auto-Submitted: auto-generated`, and puts the person who
    filled it in Reply-To. That is a person's request (promise 3), not an auto-reply: a new
    message (no In-Reply-To), one Reply-To that is a readable address other than From, an
    automated From, and none of an auto-responder's signs. Whether that Reply-To may become the
    ticket's customer is the admin's choice (`classify.form_senders`), as it can be forged."""
    auto_submitted = (message.header("auto-submitted") or "").strip().lower()
    auto_submitted = re.split(r"[\s;(]", auto_submitted, maxsplit=1)[0]
    if auto_submitted not in ("", "no", "auto-generated") or message.in_reply_to:
        return None
    if len(message.reply_to) != 1 or not message.sender.email:
        return None
    person = message.reply_to[0].email
    if not person or person == message.sender.email or is_unread_address(person):
        return None
    if not _automated_from(message, auto_submitted):
        return None
    header = message.header
    if header("x-autoreply") is not None or header("x-autorespond") is not None:
        return None
    precedence = (header("precedence") or "").strip().lower()
    if precedence in ("auto_reply", "bulk", "junk", "list"):
        return None
    if header("list-id") is not None or header("list-unsubscribe") is not None:
        return None  # a list's or a newsletter's: classify.lists decides about those
    return None if _AUTO_SUBJECT.match(message.subject.strip()) else person


def _machine(message: ParsedMessage) -> Classification | None:
    """Mail a machine wrote that is not addressed to a person: a bounce or an auto-reply. A web
    form's mail is a person's (FORM), read after the signs of a bounce only."""
    verdict = _bounce(message)
    if verdict is not None:
        return verdict
    person = form_submission(message)
    if person is not None:
        return Classification(Kind.FORM, f"a web form sent for {person}")
    verdict = _auto_reply(message)
    if verdict is not None:
        return verdict
    if message.null_sender:
        # RFC 5321 4.5.5: only notifications are sent with the null reverse-path.
        return Classification(Kind.BOUNCE, "null envelope sender (a bounce or notification)")
    sender = message.sender.email
    localpart = sender.partition("@")[0]
    if sender and is_system_address(sender) and not _ROLE_LOCALPARTS.match(localpart):
        return Classification(Kind.BOUNCE, f"from the mail system address {sender}")
    may_be_a_report = is_system_address(sender) or _NOREPLY_LOCALPARTS.match(localpart)
    if sender and may_be_a_report and looks_like_report(message):
        return Classification(Kind.BOUNCE, f"a report from the system address {sender}")
    if _SES_NOTICE.search(message.full_text[:SES_SCAN]) and sender.endswith(".amazonaws.com"):
        return Classification(Kind.BOUNCE, "Amazon SES bounce or complaint notification (SNS)")
    if _BOUNCE_SUBJECT.match(message.subject.strip()):
        return Classification(Kind.BOUNCE, f"bounce subject {message.subject[:60]!r}")
    return None


def classify(message: ParsedMessage, own_addresses: tuple[str, ...]) -> Classification:
    """What wrote this message. Only LOOP, BOUNCE and AUTO_REPLY are machine mail that needs
    no ticket; LIST, BULK, FORM and CUSTOMER are a person's mail (promise 3), the first two never
    answered, a FORM not when it is Auto-Submitted."""
    sender = message.sender.email
    if sender and sender in own_addresses:
        return Classification(Kind.LOOP, f"sent from our own address {sender}")
    if message.header("x-ticketd-loop") is not None:
        return Classification(Kind.LOOP, "carries our own X-Ticketd-Loop header")
    verdict = _machine(message)
    if verdict is not None:
        return verdict
    if message.header("list-id") is not None or message.header("list-unsubscribe") is not None:
        return Classification(Kind.LIST, "mailing list (List-Id/List-Unsubscribe)")
    precedence = (message.header("precedence") or "").strip().lower()
    if precedence == "list":
        return Classification(Kind.LIST, "Precedence: list")
    if precedence in ("bulk", "junk"):
        return Classification(Kind.BULK, f"Precedence: {precedence}")
    return Classification(Kind.CUSTOMER, "a person writing")


def is_unread_address(address: str) -> bool:
    """A mail system's or a no-reply address: nobody reads what is sent there."""
    localpart = address.partition("@")[0]
    return is_system_address(address) or bool(_NOREPLY_LOCALPARTS.match(localpart))


def _unanswerable_sender(message: ParsedMessage) -> str | None:
    """Why the sender itself must get nothing automatic (RFC 3834 2): a system or no-reply
    address, a list or bulk mail, or no usable address at all."""
    sender = message.sender.email
    if not sender:
        return "no usable sender address"
    if is_unread_address(sender):
        return f"the system address {sender}"
    precedence = (message.header("precedence") or "").strip().lower()
    if precedence in ("bulk", "junk", "list"):
        return f"Precedence: {precedence}"
    if message.header("list-id") is not None or message.header("list-unsubscribe") is not None:
        return "mailing list mail"
    return None


def suppresses_auto_reply(message: ParsedMessage) -> bool:
    """Headers that ask us not to answer automatically although a person may have written."""
    suppress = (message.header("x-auto-response-suppress") or "").lower()
    return any(token in suppress for token in ("all", "autoreply", "oof"))


def untrusted_sender(message: ParsedMessage) -> tuple[str, str] | None:
    """(label, reason) when an answer to this sender could land on someone who never wrote:
    the spam filter says spam, the From domain fails DMARC, or an aligned SPF or DKIM result
    says it is not its owner's mail (domain/sender_auth.py). Forged senders are what makes a
    desk a backscatter source, so such mail gets no automatic answer of any kind; it still
    lands, marked."""
    if message.spam is not None and message.spam.spam:
        return "spam", f"the mail is {message.spam.describe()}"
    verdict = message.auth
    if verdict.dmarc_failed:
        return "dmarc", f"the sender's domain fails DMARC ({verdict.describe()})"
    if verdict.refuted:
        return "refuted", f"the sender's domain refutes it ({verdict.describe()})"
    return None


def no_automatic_answer(message: ParsedMessage, acknowledge: bool) -> str | None:
    """Why nothing automatic (acknowledgement, document receipt, virus notice) may answer the
    sender of this message, or None when it may be answered. `acknowledge` is the journal
    row's: historical mail brought in by `ticketd import` is never answered."""
    if not acknowledge:
        return "historical import"
    untrusted = untrusted_sender(message)
    if untrusted is not None:
        return untrusted[1]
    unanswerable = _unanswerable_sender(message)
    if unanswerable is not None:
        return unanswerable
    auto_submitted = (message.header("auto-submitted") or "").strip().lower()
    if auto_submitted and not auto_submitted.startswith("no"):
        # RFC 3834 5: a person's mail a machine submitted (a web form's) is not answered either.
        return f"Auto-Submitted: {auto_submitted}"
    if suppresses_auto_reply(message):
        return "X-Auto-Response-Suppress"
    if is_forwarded_report(message):
        return "a forwarded delivery report"
    return None


def answer_address(message: ParsedMessage) -> str:
    """Where an automatic answer to this message goes: the sender its From names (RFC 3834
    section 4), the ticket's customer, never a Reply-To. Reply-To is the sender's wish, and a
    forged From with someone else's Reply-To would have the desk mail a stranger (or a target)
    the acknowledgement of a ticket in the name of the desk."""
    return message.sender.email
