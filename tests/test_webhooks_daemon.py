"""Webhooks from the daemon as a process (issue 20): a real receiver on loopback checks every
signature and the timestamp against its own clock, is down while the first events are made,
and must then see each event exactly once; on PostgreSQL with two daemons posting from one
database as well."""

from __future__ import annotations

import re
import smtplib
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from storage.db import Database
from storage.models import WebhookDelivery
from tests.daemon import DaemonProcess, Relay, daemon_config
from tests.helpers import DESK, customer_mail, write_config
from tests.webhook_receiver import SECRET, Receiver

pytestmark = pytest.mark.slow
EVENTS = ("ticket.created", "message.received", "message.sent")


def hooks(url: str) -> str:
    events = ", ".join(f'"{e}"' for e in EVENTS)
    return f'\n[[webhooks]]\nurl = "{url}"\nsecret = "{SECRET}"\nevents = [{events}]\n'


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    endpoint = Receiver(max_skew=60)  # the daemon's timestamps are real time here
    yield endpoint
    endpoint.stop()


def send(port: int, number: int) -> None:
    raw = customer_mail(
        sender=f"musteri{number}@example.net",
        subject=f"Çekim talebi {number}",
        body=f"Para çekme talebim {number} bekliyor",
        message_id=f"<hook-{number}@example.net>",
    )
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.sendmail(f"musteri{number}@example.net", [DESK], raw)


def start_after_a_failed_try(receiver: Receiver, url: str) -> threading.Thread:
    """In the background while mail arrives: the receiver is started as soon as a delivery has
    found it down, before that delivery's next try (5 s later), so every event still reaches
    it within the test."""

    def watch() -> None:
        wait_for_a_failed_try(url)
        receiver.start()

    thread = threading.Thread(target=watch)
    thread.start()
    return thread


def wait_for_a_failed_try(url: str) -> None:
    db = Database(url)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            failed = select(WebhookDelivery.id).where(WebhookDelivery.last_error.is_not(None))
            with db.read() as session:
                if session.scalar(failed.limit(1)) is not None:
                    return
            time.sleep(0.05)
    finally:
        db.dispose()
    raise AssertionError("no delivery was tried")


def assert_each_event_once(receiver: Receiver, mails: int) -> None:
    got = receiver.wait_for(len(EVENTS) * mails, timeout=60)
    time.sleep(2)  # a duplicate, if any, would arrive now
    got = receiver.events()
    assert receiver.forged == []
    assert len({e.webhook_id for e in got}) == len(got), "an event came twice"
    per_ticket = Counter((e.type, e.body["data"]["ticket"]["ref"]) for e in got)
    assert len(per_ticket) == len(EVENTS) * mails and set(per_ticket.values()) == {1}
    subjects = {e.body["data"]["ticket"]["subject"] for e in got}
    assert subjects == {f"Çekim talebi {n}" for n in range(mails)}


def test_the_receiver_down_for_a_while_then_each_event_once(
    tmp_path: Path, relay: Relay, receiver: Receiver
) -> None:
    daemon = DaemonProcess(daemon_config(tmp_path, relay.port, extra=hooks(receiver.url)))
    daemon.start(timeout=60)
    try:
        watcher = start_after_a_failed_try(receiver, daemon.config.storage.database)
        for number in range(3):
            send(daemon.port, number)
        watcher.join()
        assert_each_event_once(receiver, 3)
        rows = daemon.cli("webhooks", "list", "--json")
        assert {row["state"] for row in rows} == {"delivered"} and len(rows) == 9
        assert max(row["attempts"] for row in rows) == 2, rows  # tried again once, no more
    finally:
        assert daemon.stop() == 0, daemon.log()
    assert "webhook=msg_" in daemon.log()
    assert SECRET not in daemon.log()


def pg_config(folder: Path, url: str, blobs: Path, relay: Relay, hook_url: str) -> Path:
    folder.mkdir()
    extra = f'[smtp_out]\nrelay = "127.0.0.1:{relay.port}"\n'
    extra += f'\n[kyc]\nkey_file = "{blobs.parent / "shared-kyc.key"}"\n' + hooks(hook_url)
    path = write_config(folder, database=url, extra=extra)
    path.write_text(path.read_text().replace('blobs = "var/blobs"', f'blobs = "{blobs}"'))
    return path


@pytest.mark.postgresql
def test_two_daemons_on_postgresql_post_each_event_once(
    tmp_path: Path, pg_database: str, relay: Relay, receiver: Receiver
) -> None:
    mails = 20
    blobs = tmp_path / "shared-blobs"
    daemons = [
        DaemonProcess(pg_config(tmp_path / f"d{i}", pg_database, blobs, relay, receiver.url))
        for i in range(2)
    ]
    try:
        for daemon in daemons:
            daemon.start(timeout=60)
        watcher = start_after_a_failed_try(receiver, pg_database)
        for number in range(mails):
            send(daemons[number % 2].port, number)
        watcher.join()
        assert_each_event_once(receiver, mails)
        rows = daemons[1].cli("webhooks", "list", "--json")
        assert len(rows) == len(EVENTS) * mails
        assert {row["state"] for row in rows} == {"delivered"}
        assert max(row["attempts"] for row in rows) == 2, rows
    finally:
        for daemon in daemons:
            if daemon.process is not None:
                assert daemon.stop() == 0, daemon.log()
    # Both daemons took part in posting (each claims what is due, one row at a time).
    posted = [len(re.findall(r"webhook=msg_\w+ \S+ to \S+: delivered", d.log())) for d in daemons]
    assert sum(posted) == len(EVENTS) * mails and min(posted) > 0, posted
