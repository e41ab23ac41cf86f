"""Every mail to a ticket's customer threads with the ticket's conversation: In-Reply-To the
customer's latest message, References the chain (its first message and the last ones).

A KYC decision, a relayed agent answer, the SLA clock's follow-up and the survey, each through
the journal and the worker as in the daemon, read from the outbox as the customer gets them.
"""

from __future__ import annotations

import email
from datetime import timedelta
from email.message import Message
from email.policy import default

import pytest
from sqlalchemy import select

from domain.clock import FixedClock
from outbound.addresses import agent_reply_address
from outbound.customer_thread import REFERENCES_KEPT, bounded
from storage.models import OutboxMail
from tests.helpers import customer_mail
from tests.test_kyc import CUSTOMER, JPEG, KYC_AGENT, PDF, _agent_mail, kyc_mail
from tests.test_sla_survey import closed_and_surveyed, desk, run_tick  # noqa: F401
from tests.test_threading import deliver
from ticketd.state import State
from ticketd.views import show_ticket


def _sent(state: State, kind: str) -> list[Message]:
    with state.db.read() as session:
        rows = session.scalars(select(OutboxMail).where(OutboxMail.kind == kind))
        return [email.message_from_bytes(row.raw, policy=default) for row in rows]


def _ids(header: object) -> list[str]:
    return [part.strip("<>") for part in str(header or "").split()]


def _customer_ids(state: State, ref: str) -> list[str]:
    ticket = show_ticket(state.db, ref)
    assert ticket is not None
    return [m["message_id"] for m in ticket["messages"] if m["kind"] == "customer"]


def _documents_then_reply(state: State, clock: FixedClock) -> tuple[str, str, str]:
    """Documents in a mail with a Message-ID, then a follow-up of the customer: (ref, the
    first mail's id, the follow-up's id)."""
    files = [("kimlik.jpg", "image/jpeg", JPEG), ("fatura.pdf", "application/pdf", PDF)]
    first = "belgeler.1@musteri.com.tr"
    result = deliver(state, f"Message-ID: <{first}>\r\n".encode() + kyc_mail(files))
    assert result.state == "done", result.detail
    ref = result.detail.split()[1].rstrip(":")
    clock.advance(timedelta(hours=1))
    second = "belgeler.2@musteri.com.tr"
    [receipt] = _sent(state, "kyc_received")
    receipt_id = str(receipt["Message-ID"])
    follow_up = customer_mail(
        sender=CUSTOMER,
        subject=f"Re: [#{ref}] Kimlik belgelerim",
        body="Belgelerimi aldınız mı?",
        message_id=f"<{second}>",
        headers={"In-Reply-To": receipt_id, "References": receipt_id},
    )
    assert deliver(state, follow_up).state == "done"
    clock.advance(timedelta(hours=1))
    return ref, first, second


@pytest.mark.parametrize(
    ("command", "kind"),
    [("#kyc approve", "kyc_approved"), ("#kyc reject Fotoğraf bulanık", "kyc_rejected")],
)
def test_a_kyc_decision_threads_with_the_customers_mail(
    kyc_state: State, clock: FixedClock, command: str, kind: str
) -> None:
    ref, first, second = _documents_then_reply(kyc_state, clock)
    address = agent_reply_address(kyc_state.config.desk, ref)
    result = deliver(kyc_state, _agent_mail(kyc_state, ref, KYC_AGENT, command), (address,))
    assert result.state == "done", result.detail
    [decision] = _sent(kyc_state, kind)
    assert _ids(decision["In-Reply-To"]) == [second]
    references = _ids(decision["References"])
    assert references[0] == first and references[-1] == second, references
    [receipt] = _sent(kyc_state, "kyc_received")
    assert _ids(receipt["Message-ID"])[0] in references


def test_a_relayed_answer_references_the_tickets_chain(kyc_state: State, clock: FixedClock) -> None:
    """Fifteen customer mails and our answers to them: References holds the first message and
    the last ones, In-Reply-To the latest; bounded to REFERENCES_KEPT ids."""
    ref, first, _second = _documents_then_reply(kyc_state, clock)
    address = agent_reply_address(kyc_state.config.desk, ref)
    for n in range(3, 16):
        mail = customer_mail(
            sender=CUSTOMER,
            subject=f"Re: [#{ref}] Kimlik belgelerim",
            body=f"Yazı {n}",
            message_id=f"<belgeler.{n}@musteri.com.tr>",
        )
        assert deliver(kyc_state, mail).state == "done"
        clock.advance(timedelta(minutes=30))
    answer = _agent_mail(kyc_state, ref, KYC_AGENT, "Belgelerinizi inceliyoruz.")
    assert deliver(kyc_state, answer, (address,)).state == "done"
    [relayed] = _sent(kyc_state, "agent")
    latest = _customer_ids(kyc_state, ref)[-1]
    assert latest == "belgeler.15@musteri.com.tr"
    assert _ids(relayed["In-Reply-To"]) == [latest]
    references = _ids(relayed["References"])
    assert len(references) == REFERENCES_KEPT, references
    assert references[0] == first and references[-1] == latest, references
    assert "belgeler.14@musteri.com.tr" in references


def test_the_survey_threads_with_the_customers_mail(desk: State, clock: FixedClock) -> None:  # noqa: F811
    ref, _survey_id = closed_and_surveyed(desk, clock)
    [opening] = _customer_ids(desk, ref)
    [survey] = [m for m in _sent(desk, "survey") if ref in str(m["Subject"])]
    assert _ids(survey["In-Reply-To"]) == [opening]
    assert _ids(survey["References"])[0] == opening


def test_the_references_keep_the_first_and_the_last() -> None:
    ids = [f"m{n}@x" for n in range(30)]
    kept = bounded([*ids, "m3@x"])
    assert kept == ("m0@x", *[f"m{n}@x" for n in range(21, 30)])
    assert bounded(["a@x", "b@x", "a@x"]) == ("a@x", "b@x")
