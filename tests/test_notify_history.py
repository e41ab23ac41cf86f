"""The agent sees the conversation and the customer (issue 15, point 11, the part done): a
notification quotes the ticket's earlier messages, newest first, and lists the customer's other
open tickets."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import pytest

from domain.clock import FixedClock
from domain.config import load_config
from outbound.addresses import agent_reply_address
from tests.helpers import customer_mail, write_config
from tests.test_agent_handover import AYSE, TEAM
from tests.test_sla_survey import outbox
from tests.test_threading import deliver
from ticketd.state import State, open_state

CUSTOMER = "Can Demir <can@example.net>"


@pytest.fixture
def desk(tmp_path: Path, clock: FixedClock) -> Iterator[State]:
    opened = open_state(load_config(write_config(tmp_path, extra=TEAM)), clock=clock)
    yield opened
    opened.close()


def test_a_notification_quotes_the_conversation_newest_first(
    desk: State, clock: FixedClock
) -> None:
    other = deliver(desk, customer_mail(sender=CUSTOMER, subject="Bonus", body="Bonusum yok"))
    other_ref = other.detail.split()[1].rstrip(":")
    first = deliver(desk, customer_mail(sender=CUSTOMER, subject="Para çekme", body="İlk mesaj"))
    ref = first.detail.split()[1].rstrip(":")
    clock.advance(timedelta(hours=1))
    answer = EmailMessage()
    address = agent_reply_address(desk.config.desk, ref)
    answer["From"], answer["To"], answer["Subject"] = AYSE, address, f"Re: [#{ref}]"
    answer.set_content("Temsilcinin yanıtı\nikinci satır")
    assert deliver(desk, answer.as_bytes(policy=SMTP), (address,)).state == "done"
    clock.advance(timedelta(hours=1))
    reply = customer_mail(sender=CUSTOMER, subject=f"Re: [#{ref}] Para çekme", body="Üçüncü")
    assert deliver(desk, reply).state == "done"

    last = [m for m in outbox(desk, "notify") if m.recipient == AYSE][-1]
    text = last.text
    assert text.index("Üçüncü") < text.index("Önceki yazışma")
    history = text.split("Önceki yazışma (yeniden eskiye):", 1)[1]
    assert "> Temsilcinin yanıtı\n> ikinci satır" in history
    assert history.index("Temsilcinin yanıtı") < history.index("> İlk mesaj")  # newest first
    assert "2026-11-23 12:00 +03, Can Demir:" in history  # 09:00 UTC, in the desk's zone
    assert f"{other_ref} (açık): Bonus" in text  # the customer's other open ticket
