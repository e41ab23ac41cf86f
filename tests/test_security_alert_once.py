"""A security event tells the admins once per message: `quarantine retry` of the held message
(after a fix elsewhere) runs it again and holds it again, and the admins get no second alert."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from domain.clock import FixedClock
from domain.config import load_config
from ingest.journal import Arrival
from storage.models import JOURNAL_QUARANTINED, OutboxMail, TicketMessage
from tests.helpers import customer_mail, forged_agent_reply, write_config
from tests.test_agents import TEAM
from ticketd import views
from ticketd.state import open_state

ADMIN = "guvenlik@destek.example.com"


def test_a_retried_security_event_does_not_alert_the_admins_again(
    tmp_path: Path, clock: FixedClock
) -> None:
    config = write_config(tmp_path, extra=TEAM)
    text = config.read_text().replace(
        'language = "tr"', f'language = "tr"\nadmins = ["{ADMIN}"]', 1
    )
    config.write_text(text)
    state = open_state(load_config(config), clock=clock)
    try:
        mail = customer_mail(subject="Para çekme", body="Çekim bekliyor, ödeme yapılmadı")
        state.journal.accept(Arrival(raw=mail, source="ingest"))
        [landed] = state.worker.drain()
        assert landed.ticket_ref is not None
        forged = forged_agent_reply(state.config.desk, landed.ticket_ref, "Re: Para çekme")
        state.journal.accept(Arrival(raw=forged, source="ingest"))
        [held] = state.worker.drain()
        assert held.state == JOURNAL_QUARANTINED and "1 admins told" in held.detail
        assert views.requeue(state.db, held.journal_id, "admin", clock.now())
        [again] = state.worker.drain()
        assert again.state == JOURNAL_QUARANTINED
        assert "the admins were told before" in again.detail
        with state.db.read() as session:
            alerts = session.scalars(select(OutboxMail).where(OutboxMail.kind == "security"))
            assert [alert.recipient for alert in alerts] == [ADMIN]
            notes = session.scalars(
                select(TicketMessage.text).where(TicketMessage.subject == "Security alert")
            ).all()
            assert notes == [f"mallory@evil.example is not a configured agent; told: {ADMIN}"]
    finally:
        state.close()
