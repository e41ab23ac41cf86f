"""`#geçmiş` / `#history` (issue 15, point 11): an agent's mail command that sends the asking
agent the whole ticket: every message newest first, quoted, with who and when in the desk's
zone, and the files of each one attached (identity documents only to identity agents, each
one mailed audited), the rest named with their size."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import SMTP, default
from pathlib import Path

import pytest
from sqlalchemy import select

from domain.clock import FixedClock
from domain.config import load_config
from outbound.addresses import agent_reply_address, reply_address
from outbound.agent_mail import MAILED_TO_AGENT
from storage.models import AccessAudit, OutboxMail, Ticket, TicketMessage
from tests.helpers import DESK, write_config
from tests.test_kyc import JPEG, KYC_AGENT, OTHER_AGENT, TEAM, kyc_mail
from tests.test_sla_survey import outbox
from tests.test_threading import deliver
from ticketd.state import State, open_state

PDF = b"%PDF-1.4 dekont" + b" " * 500


@pytest.fixture
def desk(tmp_path: Path, clock: FixedClock) -> Iterator[State]:
    opened = open_state(load_config(write_config(tmp_path, extra=TEAM)), clock=clock)
    yield opened
    opened.close()


def _from_agent(state: State, agent: str, ref: str, body: str) -> None:
    address = agent_reply_address(state.config.desk, ref)
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = agent, address, f"Re: [#{ref}]"
    mail.set_content(body)
    result = deliver(state, mail.as_bytes(policy=SMTP), envelope_to=(address,))
    assert result.state == "done", result.detail


def _ref(state: State) -> str:
    with state.db.read() as session:
        return session.scalars(select(Ticket.ref)).one()


def _attached(raw: bytes) -> dict[str, bytes]:
    mail = message_from_bytes(raw, policy=default)
    found: dict[str, bytes] = {}
    for part in mail.walk():
        payload = part.get_payload(decode=True)
        if part.get_filename() and isinstance(payload, bytes):
            found[str(part.get_filename())] = payload
    return found


def _history_mail(state: State, agent: str) -> OutboxMail:
    [mail] = [m for m in outbox(state, "history") if m.recipient == agent]
    return mail


@pytest.mark.parametrize("command", ["#geçmiş", "#history", "#gecmis"])
def test_history_sends_the_whole_ticket_newest_first_with_its_files(
    desk: State, clock: FixedClock, command: str
) -> None:
    first = EmailMessage()
    first["From"], first["To"], first["Subject"] = "can@example.net", DESK, "Para çekme"
    first.set_content("Para çekme talebim bekliyor.\nDekont ekte.")
    first.add_attachment(PDF, maintype="application", subtype="pdf", filename="dekont.pdf")
    assert deliver(desk, first.as_bytes(policy=SMTP)).state == "done"
    ref = _ref(desk)
    clock.advance(timedelta(hours=1))
    _from_agent(desk, OTHER_AGENT, ref, "Merhaba, kontrol ediyorum.")
    clock.advance(timedelta(hours=1))
    _from_agent(desk, OTHER_AGENT, ref, command)

    mail = _history_mail(desk, OTHER_AGENT)
    assert _attached(mail.raw) == {"dekont.pdf": PDF}
    text = mail.text
    assert f"[#{ref}] Talebin tüm geçmişi: Para çekme" == mail.subject
    # Newest first: the agent's answer above the customer's message, each quoted.
    answer = text.index("> Merhaba, kontrol ediyorum.")
    asked = text.index("> Para çekme talebim bekliyor.\n> Dekont ekte.")
    assert answer < asked
    # Times in the desk's zone (09:00 UTC is 12:00 in Istanbul); the command itself is no
    # entry of the history it asks for.
    assert "2026-11-23 14:00 +03" not in text
    assert "2026-11-23 13:00 +03, Mert Demir <mert@destek.example.com> (temsilci, giden)" in text
    assert "2026-11-23 12:00 +03, can@example.net (müşteri)" in text
    assert "dekont.pdf (bildirilen application/pdf, 515 bayt) [ekte]" in text
    # Nothing went to the customer; the ticket's history says the command was applied.
    assert [m.recipient for m in outbox(desk, "agent")] == ["can@example.net"]
    with desk.db.read() as session:
        notes = session.scalars(select(TicketMessage.text).where(TicketMessage.kind == "system"))
        assert any("#history" in note for note in notes)


def test_history_attaches_identity_documents_to_identity_agents_only(
    desk: State, clock: FixedClock
) -> None:
    assert deliver(desk, kyc_mail([("kimlik.jpg", "image/jpeg", JPEG)])).state == "done"
    ref = _ref(desk)
    clock.advance(timedelta(hours=1))
    _from_agent(desk, KYC_AGENT, ref, "#geçmiş")
    assert _attached(_history_mail(desk, KYC_AGENT).raw) == {"kimlik.jpg": JPEG}
    with desk.db.read() as session:
        rows = session.scalars(select(AccessAudit).where(AccessAudit.action == MAILED_TO_AGENT))
        # The notification of the mail first, then the history.
        [notified, history] = [(r.actor, str(r.detail)) for r in rows]
        assert notified[0] == history[0] == KYC_AGENT
        assert "kimlik.jpg" in history[1] and "attached to the history mailed to" in history[1]
    # Assigned to an agent of another queue, who may act on it but is no identity agent.
    with desk.db.transaction() as session:
        session.scalars(select(Ticket)).one().assignee = OTHER_AGENT
    _from_agent(desk, OTHER_AGENT, ref, "#history")
    other = _history_mail(desk, OTHER_AGENT)
    assert _attached(other.raw) == {}
    assert "[eklenmedi: kimlik belgesi, yalnızca kimlik temsilcilerine]" in other.text
    with desk.db.read() as session:
        mailed = session.scalars(
            select(AccessAudit.actor).where(AccessAudit.action == MAILED_TO_AGENT)
        )
        assert list(mailed) == [KYC_AGENT, KYC_AGENT]


def test_history_names_files_past_the_limit_with_their_size(
    tmp_path: Path, clock: FixedClock
) -> None:
    extra = TEAM + "\n[limits]\nnotify_attachment_size = 100\n"
    state = open_state(load_config(write_config(tmp_path, extra=extra)), clock=clock)
    try:
        mail = EmailMessage()
        mail["From"], mail["To"], mail["Subject"] = "can@example.net", DESK, "Para çekme"
        mail.set_content("Dekont ekte.")
        mail.add_attachment(PDF, maintype="application", subtype="pdf", filename="dekont.pdf")
        assert deliver(state, mail.as_bytes(policy=SMTP)).state == "done"
        clock.advance(timedelta(hours=1))
        _from_agent(state, OTHER_AGENT, _ref(state), "#geçmiş")
        history = _history_mail(state, OTHER_AGENT)
        assert _attached(history.raw) == {}
        assert "dekont.pdf (bildirilen application/pdf, 515 bayt) [eklenmedi: boyut sınırı]" in (
            history.text
        )
    finally:
        state.close()


def test_a_customer_cannot_ask_for_the_history(desk: State, clock: FixedClock) -> None:
    assert deliver(desk, kyc_mail([("kimlik.jpg", "image/jpeg", JPEG)])).state == "done"
    ref = _ref(desk)
    clock.advance(timedelta(hours=1))
    address = reply_address(desk.config.desk, ref)
    raw = kyc_mail([], subject="Ynt", body="#geçmiş", to=address)
    assert deliver(desk, raw, (address,)).state == "done"
    assert outbox(desk, "history") == []
