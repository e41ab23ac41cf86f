"""`tickets list`/`show` give queue, assignee and priority, filter by queue, assignee and
customer, and in a pipe print every value whole (issue 15, point 18). Through the CLI as a
script runs it: a subprocess whose output is a pipe."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import pytest

from domain.clock import FixedClock
from domain.config import load_config
from outbound.addresses import agent_reply_address
from tests.helpers import customer_mail, write_config
from tests.test_agent_handover import AYSE, MERT, TEAM
from tests.test_threading import deliver
from ticketd.state import State, open_state

LONG = "cok.uzun.bir.adresle.yazan.musteri.hanim@uzun-bir-alan-adi.example.com.tr"


@pytest.fixture
def desk(tmp_path: Path, clock: FixedClock) -> Iterator[State]:
    opened = open_state(load_config(write_config(tmp_path, extra=TEAM)), clock=clock)
    yield opened
    opened.close()


def cli(state: State, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "ticketd.cli", "--config", str(state.config.path), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _ticket(state: State, sender: str, subject: str, body: str) -> str:
    result = deliver(state, customer_mail(sender=sender, subject=subject, body=body))
    assert result.state == "done", result.detail
    return result.detail.split()[1].rstrip(":")


def _command(state: State, ref: str, agent: str, body: str) -> None:
    mail = EmailMessage()
    address = agent_reply_address(state.config.desk, ref)
    mail["From"], mail["To"], mail["Subject"] = agent, address, f"Re: [#{ref}]"
    mail.set_content(body)
    assert deliver(state, mail.as_bytes(policy=SMTP), (address,)).state == "done"


def test_listing_fields_filters_and_whole_values_in_a_pipe(desk: State) -> None:
    payment = _ticket(desk, LONG, "Para çekme", "Para çekme talebim bekliyor")
    bonus = _ticket(desk, "can@example.net", "Bonus", "Bonusum yüklenmedi")
    _command(desk, payment, AYSE, "#ata Mert\n#öncelik yüksek")

    listed = {t["ref"]: t for t in json.loads(cli(desk, "tickets", "list", "--json"))}
    assert {k: listed[payment][k] for k in ("queue", "assignee", "priority")} == {
        "queue": "odeme",
        "assignee": MERT,
        "priority": "high",
    }
    assert (listed[bonus]["queue"], listed[bonus]["assignee"]) == ("genel", None)
    shown = json.loads(cli(desk, "tickets", "show", payment, "--json"))
    assert (shown["queue"], shown["assignee"], shown["priority"]) == ("odeme", MERT, "high")

    def refs(*args: str) -> list[str]:
        return [t["ref"] for t in json.loads(cli(desk, "tickets", "list", "--json", *args))]

    assert refs("--queue", "genel") == [bonus]
    assert refs("--assignee", MERT.upper()) == [payment]
    assert refs("--customer", LONG) == [payment]
    assert refs("--queue", "kimlik") == []

    # In a pipe: a header and one line per ticket, tab-separated, nothing cut.
    lines = cli(desk, "tickets", "list").splitlines()
    header = lines[0].split("\t")
    assert header[:7] == ["ref", "status", "category", "queue", "assignee", "priority", "customer"]
    rows = {
        line.split("\t")[0]: dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:]
    }
    assert rows[payment]["customer"] == LONG and rows[payment]["assignee"] == MERT
    assert rows[bonus]["subject"] == "Bonus"
