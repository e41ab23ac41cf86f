"""A web form's mail is a person's request (promise 3), not an auto-reply.

Contact Form 7, PHP mail() and help-desk widgets send from the site's own or a no-reply address,
often with `Auto-Submitted: auto-generated`, and put the person who filled the form in Reply-To;
such mail was ignored as an auto-reply, and the person's request was lost. It is now a ticket,
never answered automatically when Auto-Submitted (promise 4, RFC 3834); its customer is the
person in Reply-To only for the senders the admin listed in `[classify] form_senders`.
"""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import pytest

from domain.clock import FixedClock
from domain.config import ConfigError, load_config
from ingest.classify import Kind, classify
from ingest.journal import Arrival
from ingest.parsing import parse_message
from ingest.runner import Processed
from tests.helpers import DESK, free_port, make_config, write_config
from ticketd.state import State, open_state
from ticketd.views import list_outbox, show_ticket

PERSON = "Zeynep Arslan <zeynep.arslan@gmail.com>"
AGENT = (
    '[[queues]]\nname = "genel"\ncategories = ["other"]\n\n'
    '[[agents]]\nemail = "ayse@example.com"\nname = "Ayşe"\nqueues = ["genel"]\n'
)


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


@pytest.fixture
def form_state(tmp_path: Path, clock: FixedClock) -> Iterator[State]:
    extra = '[classify]\nform_senders = ["site.com.tr", "noreply@widget.example.net"]\n'
    opened = open_state(make_config(tmp_path, extra=extra), clock=clock)
    yield opened
    opened.close()


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


def test_a_listed_form_sender_makes_the_reply_to_the_customer(form_state: State) -> None:
    result = deliver(form_state, form_mail())
    assert customer_of(form_state, result) == "zeynep.arslan@gmail.com"
    assert list_outbox(form_state.db) == []  # Auto-Submitted: not acknowledged


def test_a_listed_form_that_is_not_auto_submitted_acknowledges_the_person(
    form_state: State,
) -> None:
    raw = form_mail(sender="noreply@widget.example.net", headers={})
    result = deliver(form_state, raw)
    assert customer_of(form_state, result) == "zeynep.arslan@gmail.com"
    assert [row["to"] for row in list_outbox(form_state.db)] == ["zeynep.arslan@gmail.com"]


def test_a_form_sender_at_another_domain_is_not_listed(form_state: State) -> None:
    # Exactly the listed domain: a look-alike or a parent domain is not the form.
    for sender in ("wordpress@site.com.tr.evil.test", "noreply@other.widget.example.net"):
        result = deliver(form_state, form_mail(sender=sender, message_id=f"<{sender}>"))
        assert customer_of(form_state, result) == sender


def test_a_form_naming_an_agent_or_the_desk_keeps_the_from(
    tmp_path: Path, clock: FixedClock
) -> None:
    extra = '[classify]\nform_senders = ["site.com.tr"]\n\n' + AGENT
    state = open_state(make_config(tmp_path, extra=extra), clock=clock)
    try:
        for number, person in enumerate((DESK, "ayse@example.com")):
            raw = form_mail(reply_to=person, message_id=f"<form-{number + 2}@site.com.tr>")
            result = deliver(state, raw)
            assert customer_of(state, result) == "wordpress@site.com.tr"
    finally:
        state.close()


# --- configuration --------------------------------------------------------------------------


def test_form_senders_are_addresses_or_domains(tmp_path: Path) -> None:
    good = '[classify]\nform_senders = ["NoReply@Site.com.tr", "forms.site.com.tr"]\n'
    config = load_config(write_config(tmp_path, extra=good))
    assert config.classify.form_senders == ("noreply@site.com.tr", "forms.site.com.tr")
    for value, problem in (
        ('["site .com.tr"]', 'classify.form_senders[0]: "site .com.tr" is not an email'),
        ('["ok.com.tr", "Zeynep <z@x.com>"]', "classify.form_senders[1]:"),
        ('"site.com.tr"', "classify.form_senders: must be a list"),
    ):
        with pytest.raises(ConfigError) as error:
            load_config(write_config(tmp_path, extra=f"[classify]\nform_senders = {value}\n"))
        assert problem in str(error.value), str(error.value)


def test_a_listed_form_whose_from_fails_dmarc_keeps_the_from(
    tmp_path: Path, clock: FixedClock
) -> None:
    # Anyone can write From: wordpress@site.com.tr with a victim's Reply-To; when the gateway
    # we trust says the site's domain fails DMARC, the Reply-To is not believed.
    listen = f'[smtp_in]\nlisten = "127.0.0.1:{free_port()}"\n'
    trust = 'trusted_authserv_ids = ["mx.example.net"]\nverify_senders = false\n\n'
    extra = listen + trust + '[classify]\nform_senders = ["site.com.tr"]\n'
    state = open_state(make_config(tmp_path, extra=extra), clock=clock)
    try:
        verdict = (
            "mx.example.net; dmarc=fail header.from=site.com.tr; spf=fail smtp.mailfrom=x.test"
        )
        raw = form_mail(headers={"Authentication-Results": verdict, "X-Mailer": "PHPMailer"})
        result = deliver(state, raw)
        assert customer_of(state, result) == "wordpress@site.com.tr"
    finally:
        state.close()
