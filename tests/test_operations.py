"""Operations without a daemon: `health`, `stats`, reload planning, log redaction, import output."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import mailbox
import os
import pty
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from domain import logs
from domain.clock import FixedClock
from domain.config import load_config
from ingest.journal import Arrival, Journal
from outbound.sender import Sender
from outbound.transports import OutgoingMail, PermanentFailure
from tests.helpers import customer_mail, make_config, write_config
from ticketd import reload
from ticketd.health import Thresholds, check
from ticketd.state import State, open_state
from ticketd.stats import ticket_stats


def run_cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ticketd.cli", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


# -- health --------------------------------------------------------------------------------


def test_health_is_0_on_a_fresh_state(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    open_state(load_config(config)).close()
    result = run_cli(config, "health")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok" in result.stdout
    report = json.loads(run_cli(config, "health", "--json").stdout)
    assert report["healthy"] is True and report["problems"] == []


def test_health_names_a_stuck_journal_once_the_clock_moves(state: State, clock: FixedClock) -> None:
    state.journal.accept(Arrival(raw=customer_mail(), source="smtp:192.0.2.1"))
    assert check(state.db, clock).healthy  # just arrived: not stuck
    clock.advance(timedelta(minutes=16))
    report = check(state.db, clock)
    assert [p.check for p in report.problems] == ["stuck_journal"]
    assert "1 message(s) pending, the oldest for 16 min" in report.problems[0].reason


def test_health_cli_exits_1_with_the_reason_for_quarantine_and_a_stuck_journal(
    tmp_path: Path,
) -> None:
    config_path = write_config(tmp_path)
    state = open_state(load_config(config_path))
    try:
        # A message whose raw bytes are gone cannot be processed: it is quarantined.
        raw = customer_mail()
        entry_id = state.journal.accept(Arrival(raw=raw, source="smtp:192.0.2.1"))
        state.blobs.path_for(state.blobs.put(raw)).unlink()  # content-addressed: its blob
        [processed] = state.worker.drain()
        assert processed.journal_id == entry_id and processed.state == "quarantined"
        # A message written two hours ago that nobody processed.
        old = FixedClock(datetime.now(UTC) - timedelta(hours=2))
        Journal(state.db, state.blobs, old).accept(
            Arrival(raw=customer_mail(message_id="<old@x>"), source="ingest")
        )
    finally:
        state.close()
    result = run_cli(config_path, "health")
    assert result.returncode == 1
    assert "quarantine: 1 message(s) quarantined" in result.stdout
    assert "stuck_journal: 1 message(s) pending, the oldest for 120 min" in result.stdout
    report = json.loads(run_cli(config_path, "health", "--json").stdout)
    assert {p["check"] for p in report["problems"]} == {"quarantine", "stuck_journal"}
    assert report["healthy"] is False and report["quarantined"] == 1


class Refusing:
    async def deliver(self, mail: OutgoingMail) -> str:
        raise PermanentFailure("550 5.1.1 no such user")


def test_health_names_an_outbox_that_does_not_drain_and_failed_deliveries(
    state: State, clock: FixedClock
) -> None:
    state.journal.accept(Arrival(raw=customer_mail(), source="smtp:192.0.2.1"))
    state.worker.drain()  # an acknowledgement waits in the outbox
    assert check(state.db, clock).healthy
    clock.advance(timedelta(minutes=61))
    assert [p.check for p in check(state.db, clock).problems] == ["outbox_stuck"]
    sender = Sender(state.db, Refusing(), clock)
    asyncio.run(sender.send_due())
    # One dead mailbox is the ticket's business (noted there): a warning, health stays 0.
    report = check(state.db, clock)
    assert report.healthy and [w.check for w in report.warnings] == ["failed_deliveries"]
    assert not check(state.db, clock, Thresholds(failed_percent=0)).healthy  # as before
    # Mail to a second address failing too, most of what left: the way out is broken.
    state.journal.accept(
        Arrival(raw=customer_mail(sender="Can <can@example.net>"), source="smtp:192.0.2.1")
    )
    state.worker.drain()
    asyncio.run(sender.send_due())
    assert [p.check for p in check(state.db, clock).problems] == ["failed_deliveries"]
    clock.advance(timedelta(days=8))  # long ago: no longer news
    assert check(state.db, clock).healthy and not check(state.db, clock).warnings


def test_health_warns_of_a_single_failure_on_standard_error_and_exits_0(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    state = open_state(load_config(config))
    try:
        state.journal.accept(Arrival(raw=customer_mail(), source="smtp:192.0.2.1"))
        state.worker.drain()
        asyncio.run(Sender(state.db, Refusing(), state.clock).send_due())
    finally:
        state.close()
    result = run_cli(config, "health")
    assert result.returncode == 0, result.stdout
    assert result.stdout == "ok: nothing needs attention\n"
    assert result.stderr.startswith("warning: failed_deliveries: 1 mail(s) to 1 address(es)")
    assert json.loads(run_cli(config, "health", "--json").stdout)["warnings"][0]["check"] == (
        "failed_deliveries"
    )


def test_health_exits_2_when_the_database_cannot_be_read(tmp_path: Path) -> None:
    config = write_config(tmp_path)  # never opened: no schema
    result = run_cli(config, "health", "--json")
    assert result.returncode == 2
    assert json.loads(result.stdout)["problems"][0]["check"] == "database"


# -- stats ---------------------------------------------------------------------------------


def test_stats_counts_tickets_per_status_and_category(tmp_path: Path) -> None:
    config_path = write_config(tmp_path)
    state = open_state(load_config(config_path))
    try:
        assert ticket_stats(state.db) == {"tickets": 0, "by_status": {}, "by_category": {}}
        for number in range(3):
            raw = customer_mail(sender=f"m{number}@example.net", message_id=f"<s{number}@x>")
            state.journal.accept(Arrival(raw=raw, source="ingest"))
        state.worker.drain()
        expected = ticket_stats(state.db)
    finally:
        state.close()
    assert expected["tickets"] == 3 and sum(expected["by_status"].values()) == 3
    assert sum(expected["by_category"].values()) == 3
    assert expected["by_status"] == {"open": 3}
    result = run_cli(config_path, "stats", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == expected
    table = run_cli(config_path, "stats")
    assert "tickets: 3" in table.stdout and "open" in table.stdout


# -- reload planning -----------------------------------------------------------------------


def test_reload_applies_live_keys_and_keeps_the_running_value_of_the_rest(
    tmp_path: Path,
) -> None:
    running = make_config(tmp_path)
    listen = replace(running.smtp_in.listen, port=running.smtp_in.listen.port + 1)
    new = replace(
        running,
        desk=replace(running.desk, name="Yardım", secret="new secret value"),
        limits=replace(running.limits, auto_replies_per_hour=9),
        smtp_in=replace(running.smtp_in, listen=listen, max_message_size=2048),
        storage=replace(running.storage, database="sqlite:////elsewhere.sqlite3"),
    )
    result = reload.plan(running, new)
    assert result.applied == (
        "desk.name",
        "limits.auto_replies_per_hour",
        "smtp_in.max_message_size",
    )
    assert result.needs_restart == ("desk.secret", "smtp_in.listen", "storage.database")
    assert result.config.desk.name == "Yardım" and result.config.limits.auto_replies_per_hour == 9
    assert result.config.smtp_in.max_message_size == 2048
    assert result.config.smtp_in.listen == running.smtp_in.listen
    assert result.config.storage == running.storage
    assert result.config.desk.secret == running.desk.secret
    described = reload.describe(running, new, result.needs_restart)
    assert "new secret value" not in described and "desk.secret (changed)" in described


# -- logs ----------------------------------------------------------------------------------


def test_secrets_never_reach_the_log_even_in_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "relay.pass").write_text("Gizli-Parola-42\n")
    config = make_config(
        tmp_path,
        extra='[smtp_out]\nrelay = "127.0.0.1:2"\nusername = "ticketd"\n'
        'password_file = "relay.pass"\n',
    )
    logs.setup(verbose=True, environ={})
    try:
        logs.protect_config(config)
        log = logging.getLogger("ticketd.test")
        log.info("AUTH PLAIN with %s", "Gizli-Parola-42")
        try:
            raise ValueError("login failed for password Gizli-Parola-42")
        except ValueError:
            log.exception("delivery failed")
        err = capsys.readouterr().err
    finally:
        logging.getLogger().handlers.clear()
    assert "Gizli-Parola-42" not in err
    assert err.count("***") >= 2
    # One line per event: the traceback is folded into its line.
    assert len(err.strip().splitlines()) == 2


def test_journald_priorities() -> None:
    formatter = logs.OneLineFormatter(journal=True)
    record = logging.LogRecord("ticketd.x", logging.WARNING, __file__, 1, "a\nb", None, None)
    assert formatter.format(record) == "<4>WARNING ticketd.x: a | b"
    assert logs.syslog_priority(logging.DEBUG) == 7
    assert logs.syslog_priority(logging.ERROR) == 3


# -- import output -------------------------------------------------------------------------


def _mbox(tmp_path: Path, count: int) -> Path:
    path = tmp_path / "old.mbox"
    box = mailbox.mbox(path)
    for number in range(count):
        box.add(customer_mail(sender=f"m{number}@example.net", message_id=f"<i{number}@x>"))
    box.close()
    return path


def test_import_without_a_terminal_prints_only_the_summary(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    result = run_cli(config, "import", str(_mbox(tmp_path, 3)))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "found: 3, stored: 3, already_imported: 0, failed: 0, done: 3"
    assert "\x1b[" not in result.stdout + result.stderr  # no terminal codes in a pipe or a file


def test_import_on_a_terminal_shows_progress_then_the_summary(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    mbox = _mbox(tmp_path, 3)
    pid, fd = pty.fork()
    if pid == 0:  # the child: ticketd with a terminal as its output
        os.execvpe(
            sys.executable,
            [sys.executable, "-m", "ticketd.cli", "--config", str(config), "import", str(mbox)],
            {**os.environ, "TERM": "xterm", "COLUMNS": "100"},
        )
    output = io.BytesIO()
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        output.write(chunk)
    _, status = os.waitpid(pid, 0)
    text = output.getvalue().decode("utf-8", "replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert "storing" in text or "processing" in text, text  # the progress bar was drawn
    assert "found: 3, stored: 3, already_imported: 0, failed: 0, done: 3" in text
