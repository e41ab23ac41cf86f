"""What reaches the customer when an agent answers: the agent's new text, nothing quoted.

The replies of the talon corpus (Android, AOL, Apple Mail, Gmail, Hotmail, iPhone, Outlook,
Sparrow, Thunderbird, Yahoo, and the HTML replies of nine clients) are sent as an agent's answer
to a notification; the text relayed to the customer must be talon's expected reply. The
email_reply_parser bodies come without expected answers in the corpus: for them the relayed text
must be non-empty, made of the body's own lines, and free of quote headers and quoted lines at
its end.
"""

from __future__ import annotations

import re
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import pytest
from sqlalchemy import select

from domain.clock import FixedClock
from domain.config import load_config
from ingest.journal import Arrival
from ingest.parsing import parse_message
from outbound.addresses import agent_reply_address
from storage.models import OutboxMail
from tests.helpers import customer_mail, write_config
from tests.test_corpus import _html_message, _load, corpus_root
from ticketd.state import State, open_state

_EXPECTED = _load(corpus_root() / "talon", "expected.json")["expected_reply"]
assert isinstance(_EXPECTED, dict)
TALON: dict[str, str] = {str(k): str(v) for k, v in _EXPECTED.items()}
REPLY_BODIES = sorted((corpus_root() / "email_reply_parser" / "emails").glob("*.txt"))


def desk_with_agent(tmp_path: Path, agent: str, clock: FixedClock) -> tuple[State, str]:
    team = (
        '[[queues]]\nname = "genel"\ncategories = ["account", "payment", "bonus", "technical", '
        '"kyc", "complaint", "other"]\n\n'
        f'[[agents]]\nemail = "{agent}"\nname = "Agent"\nqueues = ["genel"]\n'
        # About the relayed text, not sender proof: the mail comes with no verdict at all.
        "[agent_replies]\nstrip_signature = false\nrequire_authentication = false\n"
    )
    state = open_state(load_config(write_config(tmp_path, extra=team)), clock=clock)
    state.journal.accept(Arrival(raw=customer_mail(sender="can@example.net"), source="test"))
    [opened] = state.worker.drain()
    ref = opened.detail.split()[1].rstrip(":")
    return state, agent_reply_address(state.config.desk, ref)


def relayed_text(state: State, raw: bytes, address: str) -> str:
    state.journal.accept(Arrival(raw=raw, source="test", envelope_to=(address,)))
    [result] = state.worker.drain()
    assert "answer relayed" in result.detail, result.detail
    with state.db.transaction() as session:
        row = session.scalar(select(OutboxMail).where(OutboxMail.kind == "agent"))
        assert row is not None
        return row.text.strip()


@pytest.mark.parametrize("rel", sorted(TALON), ids=lambda rel: rel.replace("/", "-"))
def test_talon_reply_reaches_the_customer_as_expected(
    rel: str, tmp_path: Path, clock: FixedClock
) -> None:
    path = corpus_root() / "talon" / rel
    raw = (
        _html_message(path.read_text(encoding="utf-8"))
        if rel.endswith(".html")
        else (path.read_bytes())
    )
    agent = parse_message(raw).sender.email
    state, address = desk_with_agent(tmp_path, agent, clock)
    try:
        got = relayed_text(state, raw, address)
    finally:
        state.close()
    want = TALON[rel].split("  (compare")[0]
    if rel.endswith(".html"):
        assert re.sub(r"\s", "", got) == re.sub(r"\s", "", want)
    else:
        assert got.split() == want.split()


@pytest.mark.parametrize("path", REPLY_BODIES, ids=lambda p: p.name)
def test_reply_bodies_lose_their_quoted_history(
    path: Path, tmp_path: Path, clock: FixedClock
) -> None:
    agent = "ajan@destek.example.com"
    state, address = desk_with_agent(tmp_path, agent, clock)
    body = path.read_text(encoding="utf-8", errors="replace")
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = agent, address, "Re: talep"
    mail.set_content(body)
    try:
        got = relayed_text(state, mail.as_bytes(policy=SMTP), address)
    finally:
        state.close()
    original = {line.strip() for line in body.splitlines()}
    lines = [line.strip() for line in got.splitlines() if line.strip()]
    assert lines, "nothing would reach the customer"
    assert all(line in original for line in lines)
    assert not re.search(r"(wrote|yazdı):\s*$", got.splitlines()[-1])
    assert not lines[-1].startswith(">")
