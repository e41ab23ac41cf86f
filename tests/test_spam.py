"""Spam kept out of the queues, by a real rspamd started by the test (GTUBE as the test pattern).

The customer writes over SMTP to the daemon; the relay catches what ticketd sends. GTUBE mail
lands as a ticket in the `spam` status, with no queue, no acknowledgement and no agent told; an
honest mail is acknowledged and reaches the queue's agent; with rspamd stopped, mail is still
accepted, answered, and its ticket and journal row say it was not checked.
"""

from __future__ import annotations

import smtplib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from domain.config import ConfigError
from storage.db import Database
from storage.models import JournalEntry
from tests.daemon import DaemonProcess, Relay, daemon_config
from tests.helpers import DESK, customer_mail, make_config, write_config
from tests.rspamd import Rspamd, gtube
from tests.test_agents import mails_to, wait_for_mail

pytestmark = pytest.mark.slow

AGENT = "ajan@destek.example.com"
TEAM = f"""
[[queues]]
name = "genel"
categories = ["account", "payment", "bonus", "technical", "kyc", "complaint", "other"]

[[agents]]
email = "{AGENT}"
name = "Ajan"
queues = ["genel"]
"""


@pytest.fixture
def desk(tmp_path: Path, relay: Relay, rspamd: Rspamd) -> Iterator[DaemonProcess]:
    extra = f'[spam]\nrspamd_url = "{rspamd.url}"\ntimeout = 5\n{TEAM}'
    daemon = DaemonProcess(daemon_config(tmp_path, relay.port, extra=extra))
    daemon.start()
    yield daemon
    assert daemon.stop() == 0


def send(port: int, raw: bytes, sender: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.sendmail(sender, [DESK], raw)


def reasons(desk: DaemonProcess, count: int) -> list[str]:
    db = Database(desk.config.storage.database)

    def done() -> list[str]:
        with db.read() as session:
            rows = session.scalars(select(JournalEntry).order_by(JournalEntry.id)).all()
            found = [r.reason or "" for r in rows if r.state != "pending"]
        return found if len(found) >= count else []

    result: list[str] = desk.wait_until(done, what=f"{count} processed messages")
    return result


def test_spam_stays_out_of_the_queues_and_is_not_answered(
    desk: DaemonProcess, relay: Relay, rspamd: Rspamd
) -> None:
    spammer = "kazan@bonus.test"
    send(desk.port, customer_mail(sender=spammer, subject="Bedava bonus", body=gtube()), spammer)
    honest = "can@musteri.test"
    send(desk.port, customer_mail(sender=honest, subject="Para çekme"), honest)
    wait_for_mail(relay, honest, 1, "(acknowledgement)")
    notified = wait_for_mail(relay, AGENT, 1, "(notification of the honest mail)")
    first, second = reasons(desk, 2)
    assert "spam (rspamd: reject" in first and "not answered, no agent told" in first
    assert "not spam (rspamd: no action" in second
    time.sleep(1)
    assert mails_to(relay, spammer) == []
    assert len(notified) == 1 and "Para çekme" in str(notified[0]["Subject"])
    by_customer = {t["customer"]: t for t in desk.cli("tickets", "list", "--json")}
    assert by_customer[spammer]["status"] == "spam" and by_customer[honest]["status"] == "open"
    shown = desk.cli("tickets", "show", by_customer[spammer]["ref"], "--json")
    assert any("Marked spam" in str(m["subject"]) for m in shown["messages"])

    # The filter stops mid-test: mail is still taken and answered, marked as not checked.
    rspamd.stop()
    late = "ayse@musteri.test"
    send(desk.port, customer_mail(sender=late, subject="Hesap kilitli"), late)
    wait_for_mail(relay, late, 1, "(acknowledgement while rspamd is down)")
    third = reasons(desk, 3)[2]
    assert "not checked for spam (rspamd at" in third, third
    ticket = next(t for t in desk.cli("tickets", "list", "--json") if t["customer"] == late)
    shown = desk.cli("tickets", "show", ticket["ref"], "--json")
    assert ticket["status"] == "open"
    assert any("Not checked for spam" in str(m["subject"]) for m in shown["messages"])


def test_check_connect_asks_rspamd(tmp_path: Path, rspamd: Rspamd) -> None:
    config = write_config(tmp_path, extra=f'[spam]\nrspamd_url = "{rspamd.url}"\ntimeout = 2\n')

    def check() -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "ticketd.cli", "--config", str(config), "check"]
        return subprocess.run([*command, "--connect"], capture_output=True, text=True)

    up = check()
    assert up.returncode == 0 and f"rspamd at {rspamd.url}: pong" in up.stdout, up.stdout
    assert f"spam filter: rspamd at {rspamd.url}" in up.stdout
    rspamd.stop()
    down = check()
    assert down.returncode == 69 and f"rspamd at {rspamd.url}: " in down.stdout, down.stdout


@pytest.mark.parametrize(
    ("lines", "key"),
    [
        ('rspamd_url = "127.0.0.1:11333"', "spam.rspamd_url"),
        ('rspamd_url = "http://127.0.0.1:11333"\ntimeout = 0', "spam.timeout"),
        ('trust_upstream_headers = "yes"', "spam.trust_upstream_headers"),
    ],
)
def test_spam_keys_are_checked(tmp_path: Path, lines: str, key: str) -> None:
    with pytest.raises(ConfigError) as raised:
        make_config(tmp_path, extra=f"[spam]\n{lines}\n")
    assert [k for k, _ in raised.value.problems] == [key]
