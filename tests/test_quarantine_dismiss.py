"""A quarantined message can be cleared for good (issue 15, point 17): `quarantine dismiss ID
--reason` through the CLI, audited, and `health` counts only what is not dismissed."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import pytest
from sqlalchemy import select

from domain.clock import FixedClock
from domain.config import load_config
from outbound.addresses import agent_reply_address
from storage.models import AccessAudit
from tests.helpers import customer_mail, write_config
from tests.test_kyc import TEAM
from tests.test_threading import deliver
from ticketd.state import State, open_state


@pytest.fixture
def desk(tmp_path: Path, clock: FixedClock) -> Iterator[State]:
    opened = open_state(load_config(write_config(tmp_path, extra=TEAM)), clock=clock)
    yield opened
    opened.close()


def cli(state: State, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ticketd.cli", "--config", str(state.config.path), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _forged(state: State, ref: str) -> bytes:
    mail = EmailMessage()
    mail["From"] = "Sahte <mallory@evil.example>"
    mail["To"] = agent_reply_address(state.config.desk, ref)
    mail["Subject"] = f"RE: [#{ref}] Para"
    mail.set_content("#kyc onayla")
    return mail.as_bytes(policy=SMTP)


def health(state: State) -> subprocess.CompletedProcess[str]:
    # The acknowledgement waits in the outbox (no daemon sends it): not what is tested here.
    return cli(state, "health", "--json", "--outbox-minutes", str(10**8))


def test_a_dismissed_security_event_no_longer_fails_health(desk: State) -> None:
    opened = deliver(desk, customer_mail())
    ref = opened.detail.split()[1].rstrip(":")
    forged = deliver(desk, _forged(desk, ref), (agent_reply_address(desk.config.desk, ref),))
    assert forged.state == "quarantined", forged.detail
    before = health(desk)
    assert before.returncode == 1 and json.loads(before.stdout)["quarantined"] == 1
    [row] = json.loads(cli(desk, "quarantine", "list", "--json").stdout)

    assert cli(desk, "quarantine", "dismiss", str(row["id"])).returncode != 0  # --reason needed
    done = cli(
        desk, "quarantine", "dismiss", str(row["id"]), "--reason", "forged, sender blocked at MX"
    )
    assert done.returncode == 0, done.stderr
    after = health(desk)
    assert after.returncode == 0, after.stdout
    assert json.loads(after.stdout)["quarantined"] == 0
    assert json.loads(cli(desk, "quarantine", "list", "--json").stdout) == []
    # Audited: who, when, why, and what the quarantine said.
    with desk.db.read() as session:
        [audit] = session.scalars(
            select(AccessAudit).where(AccessAudit.action == "quarantine-dismiss")
        ).all()
        assert "forged, sender blocked at MX" in str(audit.detail)
        assert "security" in str(audit.detail) and audit.actor.endswith("(command line)")
    # Dismissed is final: neither dismissed again nor retried.
    again = cli(desk, "quarantine", "dismiss", str(row["id"]), "--reason", "x")
    assert again.returncode == 1 and "no quarantined message" in again.stderr
    assert cli(desk, "quarantine", "retry", str(row["id"])).returncode == 1
