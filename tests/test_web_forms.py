"""A web form's mail is a person's request (promise 3), not an auto-reply.

Contact Form 7, PHP mail() and help-desk widgets send from the site's own or a no-reply address,
often with `Auto-Submitted: auto-generated`, and put the person who filled the form in Reply-To;
such mail was ignored as an auto-reply, and the person's request was lost. It is now a ticket,
never answered automatically when Auto-Submitted (promise 4, RFC 3834).
"""

from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP

import pytest

from ingest.classify import Kind, classify
from ingest.journal import Arrival
from ingest.parsing import parse_message
from ingest.runner import Processed
from tests.helpers import DESK
from ticketd.state import State
from ticketd.views import list_outbox, show_ticket

PERSON = "Zeynep Arslan <zeynep.arslan@gmail.com>"


def form_mail(
    sender: str = "WordPress <wordpress@site.com.tr>",
    reply_to: str | None = PERSON,
    headers: dict[str, str] | None = None,
    subject: str = "Site iletişim formu: Para çekme",
    message_id: str = "<form-1@site.com.tr>",
) -> bytes:
    """What Contact Form 7 sends (WordPress's wp_mail, PHPMailer)."""
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = DESK
    mail["Subject"] = subject
    if reply_to is not None:
        mail["Reply-To"] = reply_to
    mail["Message-ID"] = message_id
    for name, value in (
        headers
        if headers is not None
        else {"Auto-Submitted": "auto-generated", "X-Mailer": "PHPMailer 6.9.1"}
    ).items():
        mail[name] = value
    mail.set_content(
        "Gönderen: Zeynep Arslan <zeynep.arslan@gmail.com>\n"
        "Konu: Para çekme\n\nMesaj:\nÇekim talebim 3 gündür onaylanmadı.\n"
    )
    return mail.as_bytes(policy=SMTP)


def kind_of(raw: bytes) -> Kind:
    return classify(parse_message(raw), (DESK,)).kind


def deliver(state: State, raw: bytes) -> Processed:
    state.journal.accept(Arrival(raw=raw, source="test", envelope_to=(DESK,)))
    [result] = state.worker.drain()
    return result


def customer_of(state: State, result: Processed) -> str:
    assert result.state == "done" and result.ticket_ref is not None, result.detail
    ticket = show_ticket(state.db, result.ticket_ref)
    assert ticket is not None
    customer: str = ticket["customer"]
    return customer


# --- what is a form -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        form_mail(),
        form_mail(sender="noreply@site.com.tr", headers={"Auto-Submitted": "auto-generated"}),
        form_mail(sender="noreply@site.com.tr", headers={}),  # PHP mail() from a no-reply
        form_mail(sender="info@site.com.tr", headers={"X-PHP-Originating-Script": "33:form.php"}),
    ],
    ids=["contact-form-7", "auto-generated", "php-mail-noreply", "php-originating-script"],
)
def test_a_form_submission_is_a_persons_mail(raw: bytes) -> None:
    assert kind_of(raw) is Kind.FORM


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        # A vacation reply that names someone in Reply-To is still a vacation reply.
        (form_mail(headers={"Auto-Submitted": "auto-replied"}), Kind.AUTO_REPLY),
        (
            form_mail(headers={"Auto-Submitted": "auto-generated", "In-Reply-To": "<a@b>"}),
            Kind.AUTO_REPLY,
        ),
        (form_mail(subject="Out of Office: Para çekme"), Kind.AUTO_REPLY),
        (
            form_mail(headers={"Auto-Submitted": "auto-generated", "X-Autoreply": "yes"}),
            Kind.AUTO_REPLY,
        ),
        # No person in Reply-To, or the sender itself, or a no-reply one: a machine's mail.
        (form_mail(reply_to=None), Kind.AUTO_REPLY),
        (form_mail(reply_to="wordpress@site.com.tr"), Kind.AUTO_REPLY),
        (form_mail(reply_to="noreply@site.com.tr"), Kind.AUTO_REPLY),
        # A list or a newsletter: classify.lists and bulk decide.
        (
            form_mail(headers={"X-Mailer": "PHPMailer", "List-Id": "<duyuru.site.com.tr>"}),
            Kind.LIST,
        ),
        (form_mail(headers={"X-Mailer": "PHPMailer", "Precedence": "bulk"}), Kind.BULK),
        # A bounce that carries a Reply-To is a bounce.
        (form_mail(sender="MAILER-DAEMON@site.com.tr", subject="Undelivered Mail"), Kind.BOUNCE),
    ],
)
def test_loop_protections_are_not_read_as_a_form(raw: bytes, kind: Kind) -> None:
    assert kind_of(raw) is kind


def test_a_person_writing_with_a_reply_to_is_a_customer_as_before() -> None:
    raw = form_mail(sender="Ali Veli <ali@firma.com.tr>", headers={})
    assert kind_of(raw) is Kind.CUSTOMER


# --- what becomes of it ---------------------------------------------------------------------


def test_without_form_senders_the_ticket_is_made_and_the_from_is_its_customer(
    state: State,
) -> None:
    result = deliver(state, form_mail())
    assert customer_of(state, result) == "wordpress@site.com.tr"
    assert list_outbox(state.db) == []  # Auto-Submitted: nothing automatic answers it
