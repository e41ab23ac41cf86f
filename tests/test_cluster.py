"""Past one machine: three daemons, one PostgreSQL database, one shared blob folder.

Mail arrives over SMTP at all three at once and into a Dovecot mailbox that all three are
configured to poll; the daemon that polls the mailbox is killed with SIGKILL in the middle.
Every accepted message must end in exactly one ticket, every acknowledgement go out once (but
for the one mail a killed sender may have had in flight), and the mailbox must be taken over.
"""

from __future__ import annotations

import signal
import smtplib
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from storage.db import Database
from storage.models import JOURNAL_PENDING, JournalEntry, TicketMessage
from tests.daemon import DaemonProcess, Relay
from tests.dovecot import Dovecot
from tests.helpers import DESK, customer_mail, write_config

pytestmark = [pytest.mark.slow, pytest.mark.postgresql]
SMTP_MESSAGES = 45
IMAP_BEFORE, IMAP_AFTER = 5, 5


def cluster_config(folder: Path, url: str, blobs: Path, relay: Relay, dovecot: Dovecot) -> Path:
    folder.mkdir()
    password = folder / "imap.pass"
    password.write_text("s3cret\n")
    extra = (
        f'[smtp_out]\nrelay = "127.0.0.1:{relay.port}"\n\n'
        f'[[imap]]\nname = "destek"\nhost = "127.0.0.1"\nport = {dovecot.imaps_port}\n'
        f'security = "tls"\nca_file = "{dovecot.ca_file}"\nusername = "destek"\n'
        f'password_file = "{password}"\nafter = "move:Processed"\npoll_interval = 2\n'
    )
    # One key for all: every daemon reads blobs the others sealed.
    extra += f'\n[kyc]\nkey_file = "{blobs.parent / "shared-kyc.key"}"\n'
    path = write_config(folder, database=url, extra=extra)
    path.write_text(path.read_text().replace('blobs = "var/blobs"', f'blobs = "{blobs}"'))
    return path


class Senders:
    """Clients that spread mail over the three listeners and retry elsewhere on failure."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.accepted: set[int] = set()
        self.lock = threading.Lock()
        self.queue = list(range(SMTP_MESSAGES))

    def run(self, deadline: float) -> None:
        while True:
            with self.lock:
                if not self.queue:
                    return
                number = self.queue.pop(0)
            attempt = number
            raw = customer_mail(
                sender=f"smtp{number}@example.net",
                subject=f"Talep {number}",
                body=f"Para çekme talebim {number} beklemede",
                message_id=f"<smtp-{number}@example.net>",
            )
            while time.monotonic() < deadline:
                port = self.ports[attempt % len(self.ports)]
                try:
                    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                        client.sendmail(f"smtp{number}@example.net", [DESK], raw)
                    with self.lock:
                        self.accepted.add(number)
                    break
                except (OSError, smtplib.SMTPException):
                    attempt += 1  # that daemon is gone: the MX's next host
                    time.sleep(0.05)


def imap_mail(number: int) -> bytes:
    return customer_mail(
        sender=f"imap{number}@example.net",
        subject=f"Kutudan {number}",
        body=f"Yatırımım {number} görünmüyor",
        message_id=f"<imap-{number}@example.net>",
    )


def test_three_daemons_one_database_one_killed(
    tmp_path: Path, pg_database: str, relay: Relay, dovecot: Dovecot
) -> None:
    blobs = tmp_path / "shared-blobs"
    daemons = [
        DaemonProcess(cluster_config(tmp_path / f"d{i}", pg_database, blobs, relay, dovecot))
        for i in range(3)
    ]
    db = Database(pg_database)
    try:
        # The first daemon starts alone, takes the mailbox and syncs what is there.
        daemons[0].start()
        for number in range(IMAP_BEFORE):
            dovecot.deliver("destek", imap_mail(number))

        def journaled(source: str) -> int:
            with db.read() as session:
                count = session.scalar(
                    select(func.count(JournalEntry.id)).where(JournalEntry.source == source)
                )
                return int(count or 0)

        daemons[0].wait_until(lambda: journaled("imap:destek") >= IMAP_BEFORE, what="imap sync")
        for daemon in daemons[1:]:
            daemon.start()
        senders = Senders([d.port for d in daemons])
        deadline = time.monotonic() + 120
        threads = [threading.Thread(target=senders.run, args=(deadline,)) for _ in range(3)]
        for thread in threads:
            thread.start()
        daemons[0].wait_until(lambda: len(senders.accepted) >= 15, what="first SMTP messages")
        assert daemons[0].stop(signal.SIGKILL) == -signal.SIGKILL
        for number in range(IMAP_BEFORE, IMAP_BEFORE + IMAP_AFTER):
            dovecot.deliver("destek", imap_mail(number))
        for thread in threads:
            thread.join()
        assert senders.accepted == set(range(SMTP_MESSAGES))

        total = SMTP_MESSAGES + IMAP_BEFORE + IMAP_AFTER

        def settled() -> bool:
            with db.read() as session:
                pending = session.scalar(
                    select(func.count(JournalEntry.id)).where(JournalEntry.state == JOURNAL_PENDING)
                )
            return not pending and len(relay.handler.messages()) >= total

        # The mailbox is taken over within the standby interval, from the checkpoint.
        daemons[1].wait_until(settled, timeout=90, what="every message processed and answered")
        with db.read() as session:
            incoming = Counter(
                session.scalars(
                    select(TicketMessage.message_id).where(TicketMessage.direction == "in")
                )
            )
            imap_rows = journaled("imap:destek")
        expected = {f"smtp-{n}@example.net" for n in range(SMTP_MESSAGES)} | {
            f"imap-{n}@example.net" for n in range(IMAP_BEFORE + IMAP_AFTER)
        }
        assert set(incoming) == expected
        assert max(incoming.values()) == 1, "a message landed twice"
        # The last five reached Dovecot after the poller died: a survivor took the mailbox over,
        # and no re-fetch became a second journal row.
        assert imap_rows == IMAP_BEFORE + IMAP_AFTER

        time.sleep(2)  # let a duplicate delivery show up, if any
        delivered = relay.handler.messages()
        acks: dict[str, set[str]] = {}
        for mail in delivered:
            acks.setdefault(str(mail["In-Reply-To"]), set()).add(str(mail["Message-ID"]))
        assert len(acks) == total
        assert all(len(ids) == 1 for ids in acks.values())
        assert len(delivered) - total <= 1, "more than the killed daemon's one mail in flight"
    finally:
        for daemon in daemons:
            if daemon.process is not None:
                assert daemon.stop() == 0, daemon.log()
        db.dispose()
