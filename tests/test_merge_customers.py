"""`#birleştir` across two customers is refused unless forced, and says who will receive the
answers (issue 15, point 14). Through the pipeline, with agent mail to the signed address."""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import pytest

from domain.clock import FixedClock
from domain.config import load_config
from ingest.agent_commands import parse_commands
from outbound.addresses import agent_reply_address
from tests.helpers import customer_mail, write_config
from tests.test_agent_handover import AYSE, TEAM
from tests.test_sla_survey import outbox
from tests.test_threading import deliver
from ticketd.state import State, open_state
from ticketd.views import show_ticket


@pytest.fixture
def desk(tmp_path: Path, clock: FixedClock) -> Iterator[State]:
    opened = open_state(load_config(write_config(tmp_path, extra=TEAM)), clock=clock)
    yield opened
    opened.close()


def _ticket(state: State, sender: str, subject: str) -> str:
    result = deliver(state, customer_mail(sender=sender, subject=subject, body="Para çekme"))
    return result.detail.split()[1].rstrip(":")


def _command(state: State, ref: str, body: str) -> str:
    mail = EmailMessage()
    address = agent_reply_address(state.config.desk, ref)
    mail["From"], mail["To"], mail["Subject"] = AYSE, address, f"Re: [#{ref}]"
    mail.set_content(body)
    return deliver(state, mail.as_bytes(policy=SMTP), (address,)).detail


@pytest.mark.parametrize(
    ("text", "argument"),
    [
        ("#birleştir Z6R7-CC6G", "Z6R7-CC6G"),
        ("#birleştir z6r7-cc6g zorla", "Z6R7-CC6G force"),
        ("#merge [#Z6R7-CC6G] force", "Z6R7-CC6G force"),
        ("#birlestir Z6R7-CC6G ZORLA", "Z6R7-CC6G force"),
    ],
)
def test_merge_takes_a_reference_and_the_force_word(text: str, argument: str) -> None:
    parsed = parse_commands(text)
    assert parsed.problems == () and [c.argument for c in parsed.commands] == [argument]


def test_merge_across_customers_is_refused_unless_forced(desk: State) -> None:
    first = _ticket(desk, "bir@example.net", "Para çekme bir")
    second = _ticket(desk, "iki@example.net", "Para çekme iki")
    again = _ticket(desk, "bir@example.net", "Para çekme yine")

    refused = _command(desk, second, f"#birleştir {first}")
    assert "refused" in refused and "answers would reach only bir@example.net" in refused
    assert f"#birleştir {first} zorla" in outbox(desk, "agent-error")[-1].text
    shown = show_ticket(desk.db, second)
    assert shown is not None and shown["ref"] == second and shown["status"] == "open"

    # The same customer's two tickets merge without a word more.
    assert "refused" not in _command(desk, again, f"#birleştir {first}")
    # Forced: merged, and the ticket says who gets the answers now.
    assert "refused" not in _command(desk, second, f"#birleştir {first} zorla")
    merged = show_ticket(desk.db, second)
    assert merged is not None and merged["ref"] == first
    notes = [m["text"] for m in merged["messages"] if m["kind"] == "system"]
    assert any(
        f"{second} was merged into this ticket; answers go to bir@example.net "
        "(not to iki@example.net)" in n
        for n in notes
    ), notes
