"""ticketd as a service admins trust: drain on SIGTERM, reload on SIGHUP, metrics, logs.

The daemon runs as a process, driven by signals the way systemd drives it; smtplib is the
customer and aiosmtpd the relay.
"""

from __future__ import annotations

import os
import signal
import smtplib
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from storage.db import Database
from storage.models import JOURNAL_PENDING, JournalEntry, TicketMessage
from tests.daemon import Authenticator, DaemonProcess, Relay, RelayHandler, daemon_config
from tests.helpers import DESK, customer_mail, free_port

pytestmark = pytest.mark.slow


def send(port: int, number: int, prefix: str = "svc") -> None:
    raw = customer_mail(
        sender=f"Müşteri {number} <musteri{number}@example.net>",
        subject=f"Talep {number}",
        body=f"Para çekme talebim {number} beklemede",
        message_id=f"<{prefix}-{number}@example.net>",
    )
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.sendmail(f"musteri{number}@example.net", [DESK], raw)


def incoming_message_ids(database: str) -> set[str]:
    db = Database(database)
    try:
        with db.transaction() as session:
            pending = session.scalars(
                select(JournalEntry.id).where(JournalEntry.state == JOURNAL_PENDING)
            ).all()
            assert not pending, "messages still pending"
            ids = session.scalars(
                select(TicketMessage.message_id).where(TicketMessage.direction == "in")
            ).all()
            return {i for i in ids if i is not None}
    finally:
        db.dispose()


def wait_for_log(daemon: DaemonProcess, text: str, timeout: float = 15.0) -> None:
    daemon.wait_until(lambda: text in daemon.log(), timeout=timeout, what=repr(text))


# -- SIGTERM drains ------------------------------------------------------------------------


class Traffic:
    """Client threads that send new messages, one connection each, until told to stop."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.accepted: set[int] = set()
        self.refused_421 = 0
        self.lock = threading.Lock()
        self.counter = 1000
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            with self.lock:
                self.counter += 1
                number = self.counter
            try:
                send(self.port, number)
            except smtplib.SMTPResponseException as error:
                if error.smtp_code == 421:
                    with self.lock:
                        self.refused_421 += 1
                time.sleep(0.02)
                continue
            except (OSError, smtplib.SMTPException):
                time.sleep(0.02)  # the daemon is gone: an MTA would retry later
                continue
            with self.lock:
                self.accepted.add(number)


def test_sigterm_during_smtp_traffic_drains_and_loses_nothing(tmp_path: Path, relay: Relay) -> None:
    daemon = DaemonProcess(daemon_config(tmp_path, relay.port))
    daemon.start()
    # A transaction under way when SIGTERM arrives: MAIL and RCPT done, DATA still to come.
    held = smtplib.SMTP("127.0.0.1", daemon.port, timeout=10)
    held.ehlo()
    assert held.mail("held@example.net")[0] == 250
    assert held.rcpt(DESK)[0] == 250

    traffic = Traffic(daemon.port)
    threads = [threading.Thread(target=traffic.run) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        daemon.wait_until(lambda: len(traffic.accepted) >= 10, what="traffic before SIGTERM")
        assert daemon.process is not None
        started = time.monotonic()
        daemon.process.send_signal(signal.SIGTERM)
        wait_for_log(daemon, "stop requested")

        # A new connection during the drain is greeted with 421, not refused or accepted.
        with pytest.raises(smtplib.SMTPConnectError) as refused:
            smtplib.SMTP("127.0.0.1", daemon.port, timeout=5)
        assert refused.value.smtp_code == 421
        daemon.wait_until(lambda: traffic.refused_421 > 0, what="clients meeting the 421")
        assert daemon.process.poll() is None, "the daemon must wait for the open transaction"

        # The transaction that began before SIGTERM finishes with a 250.
        raw = customer_mail(sender="held@example.net", message_id="<held@example.net>")
        code, reply = held.data(raw)
        assert code == 250, reply
        held.close()
        assert daemon.process.wait(timeout=30) == 0
        daemon.process = None
        assert time.monotonic() - started < 30
    finally:
        traffic.stop.set()
        for thread in threads:
            thread.join()
        if daemon.process is not None:
            daemon.stop(signal.SIGKILL)

    # Every message that got a 250 is a ticket after the restart.
    daemon.start()
    expected = {f"svc-{n}@example.net" for n in traffic.accepted} | {"held@example.net"}

    def settled() -> bool:
        try:
            return expected <= incoming_message_ids(daemon.config.storage.database)
        except AssertionError:
            return False

    daemon.wait_until(settled, timeout=60, what="every accepted message in a ticket")
    assert daemon.stop() == 0


# -- SIGHUP reloads ------------------------------------------------------------------------


def test_sighup_picks_up_a_new_template_and_logs_what_changed(tmp_path: Path, relay: Relay) -> None:
    (tmp_path / "overrides" / "tr").mkdir(parents=True)
    limits = "[limits]\nauto_replies_per_hour = 3\n"
    templates = '[templates]\nfolder = "overrides"\n'
    config_path = daemon_config(tmp_path, relay.port, limits + templates)
    daemon = DaemonProcess(config_path)
    daemon.start()
    try:
        send(daemon.port, 1)
        [first] = relay.wait_for(1)
        assert "Talebiniz alındı" in str(first["Subject"])

        # The admin adds an override and edits the file: one live key, one that needs a restart.
        (tmp_path / "overrides" / "tr" / "ack.subject.j2").write_text(
            "[#{{ ref }}] Yeni şablon: {{ subject }}\n", encoding="utf-8"
        )
        text = config_path.read_text(encoding="utf-8")
        text = text.replace("auto_replies_per_hour = 3", "auto_replies_per_hour = 5")
        new_port = free_port()
        text = text.replace(f"127.0.0.1:{daemon.port}", f"127.0.0.1:{new_port}")
        config_path.write_text(text, encoding="utf-8")
        assert daemon.process is not None
        daemon.process.send_signal(signal.SIGHUP)
        wait_for_log(daemon, "templates re-read")

        send(daemon.port, 2)  # still the old port: the listen address needs a restart
        second = relay.wait_for(2)[1]
        assert "Yeni şablon" in str(second["Subject"])
        log = daemon.log()
        assert "limits.auto_replies_per_hour 3 -> 5" in log
        assert f"smtp_in.listen 127.0.0.1:{daemon.port} -> 127.0.0.1:{new_port}" in log
        restart_line = next(line for line in log.splitlines() if "need a restart" in line)
        assert "smtp_in.listen" in restart_line and "limits" not in restart_line
    finally:
        assert daemon.stop() == 0


def test_sighup_with_a_broken_configuration_keeps_running_and_names_the_key(
    tmp_path: Path, relay: Relay
) -> None:
    config_path = daemon_config(tmp_path, relay.port, "[limits]\nauto_replies_per_hour = 3\n")
    daemon = DaemonProcess(config_path)
    daemon.start()
    try:
        text = config_path.read_text(encoding="utf-8")
        config_path.write_text(
            text.replace("auto_replies_per_hour = 3", 'auto_replies_per_hour = "many"'),
            encoding="utf-8",
        )
        assert daemon.process is not None
        daemon.process.send_signal(signal.SIGHUP)
        wait_for_log(daemon, "limits.auto_replies_per_hour: must be an integer")
        assert "reload refused, configuration unchanged" in daemon.log()
        assert daemon.process.poll() is None
        send(daemon.port, 1)  # and it still works
        relay.wait_for(1)
    finally:
        assert daemon.stop() == 0


# -- metrics -------------------------------------------------------------------------------


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_are_served_on_loopback_and_move_when_mail_arrives(
    tmp_path: Path, relay: Relay
) -> None:
    port = free_port()
    daemon = DaemonProcess(
        daemon_config(tmp_path, relay.port, f'[metrics]\nlisten = "127.0.0.1:{port}"\n')
    )
    daemon.start()
    try:
        before = scrape(port)
        received = ("ticketd_messages_received_total", (("source", "smtp"),))
        processed = ("ticketd_messages_processed_total", ())
        done = ("ticketd_journal_messages", (("state", "done"),))
        sent = ("ticketd_deliveries_total", (("result", "sent"),))
        latency = ("ticketd_delivery_latency_seconds_count", ())
        assert before[received] == 0 and before[processed] == 0 and before[done] == 0
        assert before[("ticketd_database_up", ())] == 1
        assert before[("ticketd_journal_oldest_pending_age_seconds", ())] == 0
        # Hooks for later work expose no invented values.
        assert not any(name.startswith("ticketd_imap") for name, _ in before)

        send(daemon.port, 1)
        relay.wait_for(1)
        after = daemon.wait_until(
            lambda: (m := scrape(port))[sent] == 1 and m, what="metrics after one message"
        )
        assert after[received] == 1 and after[processed] == 1 and after[done] == 1
        assert after[latency] == 1
        assert after[("ticketd_outbox_messages", (("state", "sent"),))] == 1
        assert after[("ticketd_messages_ignored_total", (("reason", "bounce"),))] == 0
    finally:
        assert daemon.stop() == 0


# -- logs ----------------------------------------------------------------------------------


def test_a_processed_message_logs_its_journal_id_message_id_and_ticket(
    tmp_path: Path, relay: Relay
) -> None:
    daemon = DaemonProcess(daemon_config(tmp_path, relay.port))
    daemon.start()
    try:
        send(daemon.port, 7, prefix="izlenen")
        relay.wait_for(1)
        [ticket] = daemon.cli("tickets", "list", "--json")
        log = daemon.log()
    finally:
        assert daemon.stop() == 0
    line = next(line for line in log.splitlines() if "izlenen-7@example.net" in line)
    assert "journal=1 " in line and f"ticket={ticket['ref']}" in line and " done:" in line
    assert " INFO ticketd.worker: " in line


def test_under_journald_lines_carry_a_priority_and_no_timestamp(
    tmp_path: Path, relay: Relay, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon = DaemonProcess(daemon_config(tmp_path, relay.port))
    daemon.log_path.touch()
    stat = os.stat(daemon.log_path)
    # systemd names the stream it connected to our standard error: here, the log file.
    monkeypatch.setenv("JOURNAL_STREAM", f"{stat.st_dev}:{stat.st_ino}")
    daemon.start()
    try:
        send(daemon.port, 1)
        relay.wait_for(1)
    finally:
        assert daemon.stop() == 0
    lines = daemon.log().splitlines()
    assert lines and all(line.startswith(("<6>", "<4>", "<3>")) for line in lines), lines
    assert any(line.startswith("<6>INFO ticketd.daemon: listening") for line in lines)


def test_the_relay_password_never_appears_in_the_log(
    tmp_path: Path, secure_relay: tuple[int, RelayHandler, Authenticator, Path]
) -> None:
    port, handler, authenticator, cert = secure_relay
    (tmp_path / "relay.pass").write_text("s3cret\n")
    config = daemon_config(tmp_path, None)
    text = config.read_text(encoding="utf-8").replace(
        'maildir = "var/outbox"\n',
        f'relay = "127.0.0.1:{port}"\nstarttls = true\nusername = "ticketd"\n'
        f'password_file = "relay.pass"\nca_file = "{cert.name}"\n',
    )
    config.write_text(text, encoding="utf-8")
    daemon = DaemonProcess(config, options=("-v",))  # debug detail: the most a log ever says
    try:
        daemon.start()
        send(daemon.port, 1)
        Relay(port, handler).wait_for(1)
        assert authenticator.logins == ["ticketd"]
    finally:
        if daemon.process is not None:
            assert daemon.stop() == 0
    log = daemon.log()
    assert "DEBUG" in log and "outbox=1" in log
    assert "s3cret" not in log
