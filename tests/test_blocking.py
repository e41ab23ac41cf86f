"""`ticketd block` / `unblock` / `blocked list`: mail from a blocked sender is ignored, journaled
with the reason `blocked` (the label the metrics count), and lands again once unblocked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from domain.clock import FixedClock
from domain.config import load_config
from ingest.journal import Arrival
from ingest.worker import Processed
from tests.helpers import DESK, customer_mail, write_config
from ticketd.cli import main
from ticketd.metrics import ignore_label
from ticketd.state import State, open_state


def _deliver(state: State, sender: str, envelope_from: str, subject: str) -> Processed:
    raw = customer_mail(sender=sender, subject=subject, body=subject)
    state.journal.accept(Arrival(raw, "smtp:192.0.2.7", envelope_from, (DESK,)))
    [result] = state.worker.drain()
    return result


def test_blocked_senders_are_ignored_until_unblocked(
    tmp_path: Path, clock: FixedClock, capsys: pytest.CaptureFixture[str]
) -> None:
    # No DNS for this desk: the verification would ask the system's resolver otherwise.
    config = str(write_config(tmp_path, extra="[smtp_in]\nverify_senders = false\n"))
    assert main(["--config", config, "block", "Spam.Example", "--reason", "kampanya"]) == 0
    assert main(["--config", config, "block", "tek@kisi.test"]) == 0
    assert main(["--config", config, "block", "spam.example"]) == 0  # said again: no error
    assert "already blocked" in capsys.readouterr().out
    assert main(["--config", config, "block", "not an address"]) == 64
    assert main(["--config", config, "blocked", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(r["pattern"], r["reason"]) for r in listed] == [
        ("spam.example", "kampanya"),
        ("tek@kisi.test", None),
    ]
    state = open_state(load_config(Path(config)), clock=clock)
    try:
        # A domain blocks its subdomains; the envelope sender counts as much as the From.
        first = _deliver(state, "a@mail.spam.example", "a@mail.spam.example", "Bir")
        second = _deliver(state, "kim@iyi.test", "bounce@spam.example", "İki")
        third = _deliver(state, "tek@kisi.test", "tek@kisi.test", "Üç")
        other = _deliver(state, "baska@kisi.test", "baska@kisi.test", "Dört")
        assert [r.state for r in (first, second, third)] == ["ignored"] * 3
        assert first.detail == "blocked: a@mail.spam.example is blocked (spam.example)"
        assert "bounce@spam.example" in second.detail
        assert {ignore_label(r.detail) for r in (first, second, third)} == {"blocked"}
        assert other.state == "done"  # the same domain, another address
        assert main(["--config", config, "unblock", "spam.example"]) == 0
        assert main(["--config", config, "unblock", "spam.example"]) == 65
        again = _deliver(state, "a@mail.spam.example", "a@mail.spam.example", "Beş")
        assert again.state == "done", again.detail
    finally:
        state.close()
