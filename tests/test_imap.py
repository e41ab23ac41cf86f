"""IMAP intake against a real Dovecot: logins, `after` actions, IDLE, crashes, renumbering.

Every test starts its own Dovecot (tests/dovecot.py) and, unless it is about the daemon, runs
the account loop (`AccountRunner`) in a thread of the test, the way `ticketd run` does.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from domain.clock import FixedClock
from domain.config import ImapAccountConfig
from ingest.imap_accounts import AccountRunner
from ingest.imap_checkpoints import Checkpoints
from ingest.imap_fetch import FolderSync
from ingest.imap_session import connect, mailbox_key
from ingest.journal import Arrival
from storage.models import JOURNAL_QUARANTINED, JournalEntry, TicketMessage
from tests.dovecot import Dovecot
from tests.helpers import customer_mail
from ticketd.state import State

SEEN, DELETED = b"\\Seen", b"\\Deleted"
# A ticketd process that journals a batch and is SIGKILLed before it marks it on the server.
CRASH_SCRIPT = """
import os, signal, threading
from pathlib import Path
from ingest.imap_checkpoints import Checkpoints
from ingest.imap_fetch import FolderSync
from ingest.imap_session import connect, mailbox_key
from domain.config import ImapAccountConfig
from ticketd.state import open_state
from tests.helpers import make_config

state = open_state(make_config(Path({folder!r})))
account = ImapAccountConfig(
    name="destek", host="127.0.0.1", port={port}, security="tls", username="destek",
    ca_file=Path({ca!r}), password_file=Path({password!r}),
)
FolderSync._act = lambda self, uids: os.kill(os.getpid(), signal.SIGKILL)
client = connect(account, None)
FolderSync(
    client, account, mailbox_key(account), state.journal, Checkpoints(state.db, state.clock),
    state.clock, lambda: None, threading.Event(),
).run()
"""


def account_for(
    dovecot: Dovecot, security: str = "tls", user: str = "destek", **changes: Any
) -> ImapAccountConfig:
    password = dovecot.folder / f"{user}.pass"
    password.write_text(dovecot.users.get(user, "wrong") + "\n")
    account = ImapAccountConfig(
        name=user,
        host="127.0.0.1",
        port=dovecot.imaps_port if security == "tls" else dovecot.imap_port,
        security=security,
        username=user,
        ca_file=dovecot.ca_file,
        password_file=password,
        poll_interval=30,
        batch_size=50,
        timeout=10,
    )
    return replace(account, **changes)


def journal_rows(state: State) -> list[JournalEntry]:
    with state.db.read() as session:
        rows = list(session.scalars(select(JournalEntry).order_by(JournalEntry.id)))
        session.expunge_all()  # plain values for the test, after the read transaction ends
        return rows


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, what: str = "it") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@contextlib.contextmanager
def folder_sync(state: State, account: ImapAccountConfig, **options: Any) -> Iterator[FolderSync]:
    """A logged-in FolderSync of the account's folder, prepared; logged out afterwards."""
    client = connect(account, None)
    try:
        sync = FolderSync(
            client,
            account,
            mailbox_key(account),
            state.journal,
            Checkpoints(state.db, state.clock),
            state.clock,
            lambda: None,
            threading.Event(),
            **options,
        )
        sync.prepare()
        yield sync
    finally:
        client.logout()


def sync_once(state: State, account: ImapAccountConfig) -> None:
    """One pass over the folder, as the account loop makes after each connect or IDLE wake."""
    with folder_sync(state, account) as sync:
        sync.run()


@contextlib.contextmanager
def running(state: State, account: ImapAccountConfig, **kwargs: Any) -> Iterator[AccountRunner]:
    runner = AccountRunner(account, state.db, state.journal, state.clock, **kwargs)
    thread = threading.Thread(target=runner.run, name=f"imap-{account.name}")
    thread.start()
    try:
        yield runner
    finally:
        runner.stop.set()
        thread.join(timeout=10)
        assert not thread.is_alive(), "the account loop did not stop within 10 s"


@pytest.mark.parametrize("security", ["tls", "starttls", "none"])
def test_login_and_a_message_becomes_a_ticket(
    dovecot: Dovecot, state: State, security: str
) -> None:
    dovecot.deliver("destek", customer_mail(subject=f"over {security}"))
    sync_once(state, account_for(dovecot, security))
    rows = journal_rows(state)
    assert [(r.source, r.acknowledge) for r in rows] == [("imap:destek", True)]
    assert rows[0].origin is not None and ";UID=1" in rows[0].origin
    assert [r.state for r in state.worker.drain()] == ["done"]
    with state.db.read() as session:
        assert session.scalar(select(TicketMessage.subject)) == f"over {security}"


def test_a_tls_server_we_do_not_trust_is_refused(dovecot: Dovecot, state: State) -> None:
    from ingest.imap_session import ImapUnavailable

    with pytest.raises(ImapUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
        connect(account_for(dovecot, "tls", ca_file=None), None)


@pytest.mark.parametrize("after", ["seen", "delete", "move:Processed"])
def test_after_action(dovecot: Dovecot, state: State, after: str) -> None:
    dovecot.deliver("destek", customer_mail(subject="one"))
    dovecot.deliver("destek", customer_mail(subject="two"))
    action, _, target = after.partition(":")
    account = account_for(dovecot, after=action, move_to=target or None)
    sync_once(state, account)
    assert len(journal_rows(state)) == 2
    inbox = dovecot.folder_state("destek")
    if action == "seen":
        assert all(SEEN in flags for flags in inbox.values()) and len(inbox) == 2
    else:
        assert inbox == {}
    if action == "move":
        assert len(dovecot.folder_state("destek", "Processed")) == 2
    sync_once(state, account)  # nothing new: the checkpoint holds
    assert len(journal_rows(state)) == 2


def test_mail_read_in_another_client_is_still_taken(dovecot: Dovecot, state: State) -> None:
    dovecot.deliver("destek", customer_mail(subject="read elsewhere"))
    client = dovecot.client("destek")
    client.select_folder("INBOX")
    client.add_flags(client.search(["ALL"]), [SEEN])
    client.logout()
    sync_once(state, account_for(dovecot))
    assert len(journal_rows(state)) == 1


def test_idle_picks_up_new_mail_within_seconds(dovecot: Dovecot, state: State) -> None:
    woken = threading.Event()
    account = account_for(dovecot, poll_interval=300)  # polling alone would take 5 minutes
    with running(state, account, on_journaled=woken.set):
        wait_for(lambda: Checkpoints(state.db, state.clock).load(mailbox_key(account)), what="sync")
        time.sleep(0.3)  # in IDLE now
        started = time.monotonic()
        dovecot.deliver("destek", customer_mail(subject="idle"))
        wait_for(lambda: journal_rows(state), timeout=10, what="the IDLE pickup")
        delay = time.monotonic() - started
        assert woken.wait(1)
    assert delay < 5, f"IDLE pickup took {delay:.1f} s"


def test_polling_without_idle(dovecot: Dovecot, state: State) -> None:
    account = account_for(dovecot, idle=False, poll_interval=1)
    with running(state, account):
        wait_for(lambda: Checkpoints(state.db, state.clock).load(mailbox_key(account)), what="sync")
        dovecot.deliver("destek", customer_mail(subject="polled"))
        wait_for(lambda: journal_rows(state), timeout=10, what="the poll")


def test_server_restart_in_the_middle_of_a_sync(
    dovecot: Dovecot, state: State, caplog: pytest.LogCaptureFixture
) -> None:
    count = 300
    dovecot.drop_in("destek", [customer_mail(subject=f"bulk {i}") for i in range(count)])
    account = account_for(dovecot, batch_size=10)
    key = mailbox_key(account)
    caplog.set_level(logging.INFO, logger="ticketd.imap")
    with running(state, account, backoff_max=0.5):

        def progressed() -> bool:
            checkpoint = Checkpoints(state.db, state.clock).load(key)
            return checkpoint is not None and 0 < checkpoint.last_uid < count

        wait_for(progressed, what="part of the sync")
        dovecot.restart()
        wait_for(lambda: len(journal_rows(state)) >= count, timeout=60, what="the whole sync")
        wait_for(lambda: all(SEEN in f for f in dovecot.folder_state("destek").values()))
    rows = journal_rows(state)
    assert len(rows) == count
    assert len({r.blob_key for r in rows}) == count
    failures = [r for r in caplog.records if "retrying with backoff" in r.getMessage()]
    assert len(failures) <= 1, "an outage is logged once, not per try"


def test_sigkill_between_fetch_and_mark_re_fetches_without_a_duplicate(
    dovecot: Dovecot, state: State, tmp_path: Path
) -> None:
    dovecot.deliver("destek", customer_mail(subject="crash"))
    account = account_for(dovecot)
    # A ticketd process that journals the batch and is SIGKILLed before it marks it.
    script = CRASH_SCRIPT.format(
        folder=str(tmp_path),
        port=account.port,
        ca=str(account.ca_file),
        password=str(account.password_file),
    )
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, cwd=os.getcwd())
    assert killed.returncode == -9, killed.stderr.decode()
    assert len(journal_rows(state)) == 1  # durable before the kill
    assert all(SEEN not in f for f in dovecot.folder_state("destek").values())  # not marked
    sync_once(state, account)  # the restart re-fetches: recognised, then marked
    assert len(journal_rows(state)) == 1
    assert all(SEEN in f for f in dovecot.folder_state("destek").values())
    assert [r.state for r in state.worker.drain()] == ["done"]


def test_uidvalidity_change_neither_loses_nor_duplicates(dovecot: Dovecot, state: State) -> None:
    for index in range(3):
        dovecot.deliver("destek", customer_mail(subject=f"before {index}"))
    account = account_for(dovecot)
    sync_once(state, account)
    key = mailbox_key(account)
    before = Checkpoints(state.db, state.clock).load(key)
    assert before is not None and before.last_uid == 3
    dovecot.renumber("destek")
    dovecot.deliver("destek", customer_mail(subject="after"))
    sync_once(state, account)
    after = Checkpoints(state.db, state.clock).load(key)
    assert after is not None and after.uidvalidity != before.uidvalidity
    assert after.last_uid == 4
    rows = journal_rows(state)
    assert len(rows) == 4  # the three old ones recognised by their bytes, one new
    assert len({r.origin for r in rows}) == 4


def test_a_broken_account_never_stops_the_others(
    dovecot: Dovecot, state: State, caplog: pytest.LogCaptureFixture
) -> None:
    dovecot.add_user("satis", "right")
    caplog.set_level(logging.DEBUG, logger="ticketd.imap")
    good = account_for(dovecot, poll_interval=300)
    bad = replace(account_for(dovecot, user="satis"), name="satis")
    (dovecot.folder / "satis.pass").write_text("wrong\n")
    with running(state, bad, backoff_max=0.2) as broken, running(state, good):
        dovecot.deliver("destek", customer_mail(subject="still working"))
        wait_for(lambda: journal_rows(state), what="the good account")
        wait_for(
            lambda: broken.backoff.failures >= 3,
            timeout=30,
            what=f"retries of the bad account ({broken.backoff.failures} so far)",
        )
        assert broken.last_error is not None and "AUTHENTICATIONFAILED" in broken.last_error
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].startswith("imap satis: login failed"), errors


def test_first_sync_and_old_mail_are_not_acknowledged(dovecot: Dovecot, state: State) -> None:
    dovecot.deliver("destek", customer_mail(subject="old"))
    account = account_for(dovecot, quiet_first_sync=True)
    sync_once(state, account)
    dovecot.deliver("destek", customer_mail(subject="new"))
    sync_once(state, account)
    assert [r.acknowledge for r in journal_rows(state)] == [False, True]
    # Mail that reached the server long ago is historical too, whatever the first sync.
    assert isinstance(state.clock, FixedClock)
    state.clock.current = datetime.now(UTC) + timedelta(hours=100)
    dovecot.deliver("destek", customer_mail(subject="late"))
    sync_once(state, account)
    assert [r.acknowledge for r in journal_rows(state)] == [False, True, False]


def test_a_message_the_server_will_not_give_is_quarantined_and_passed_over(
    dovecot: Dovecot, state: State, monkeypatch: pytest.MonkeyPatch
) -> None:
    for subject in ("first", "broken", "third"):
        dovecot.deliver("destek", customer_mail(subject=subject))
    from imapclient import IMAPClient

    real_fetch = IMAPClient.fetch

    def fetch(self: IMAPClient, messages: list[int], data: list[str]) -> Any:
        result = dict(real_fetch(self, messages, data))
        result.pop(2, None)  # as if the server had no body for UID 2
        return result

    monkeypatch.setattr(IMAPClient, "fetch", fetch)
    account = account_for(dovecot)
    sync_once(state, account)
    rows = journal_rows(state)
    assert [r.state for r in rows] == ["pending", JOURNAL_QUARANTINED, "pending"]
    assert "UID 2" in (rows[1].reason or "")
    monkeypatch.undo()  # get_flags fetches too
    flags = dovecot.folder_state("destek")
    assert SEEN not in flags[2] and SEEN in flags[1] and SEEN in flags[3]
    monkeypatch.setattr(IMAPClient, "fetch", fetch)
    sync_once(state, account)  # passed over: no loop on the bad one
    assert len(journal_rows(state)) == 3


def test_the_same_mail_over_smtp_and_two_mailboxes_lands_once(
    dovecot: Dovecot, state: State
) -> None:
    dovecot.add_user("satis", "right")
    raw = customer_mail(subject="everywhere", message_id="<same@musteri.com.tr>")
    state.journal.accept(Arrival(raw=b"Received: from x\r\n" + raw, source="smtp:127.0.0.1"))
    dovecot.deliver("destek", raw)
    dovecot.deliver("satis", b"Delivered-To: satis\r\n" + raw)
    sync_once(state, account_for(dovecot))
    sync_once(state, replace(account_for(dovecot, user="satis"), name="satis"))
    results = [r.state for r in state.worker.drain()]
    assert sorted(results) == ["done", "ignored", "ignored"]
    with state.db.read() as session:
        assert session.scalar(select(func.count(TicketMessage.id))) == 2  # the mail + our ack


def test_xoauth2_with_a_token_command(dovecot: Dovecot, state: State, tmp_path: Path) -> None:
    # Dovecot hands an XOAUTH2 token to its passdb like a password, so a passwd-file entry
    # whose password is the token stands in for Microsoft's or Google's token check.
    dovecot.add_user("o365", "tok-123")
    dovecot.deliver("o365", customer_mail(subject="oauth"))
    script = tmp_path / "token.sh"
    script.write_text('#!/bin/sh\necho \'{"access_token": "tok-123", "expires_in": 3600}\'\n')
    script.chmod(0o755)
    account = replace(
        account_for(dovecot, user="o365"),
        auth="xoauth2",
        password_file=None,
        token_command=(str(script),),
    )
    with running(state, account):
        wait_for(lambda: journal_rows(state), what="mail over XOAUTH2")
    assert "method=XOAUTH2" in dovecot.log()


def test_check_connect_names_the_failing_account(dovecot: Dovecot, tmp_path: Path) -> None:
    from tests.helpers import write_config

    (tmp_path / "good.pass").write_text("s3cret\n")
    (tmp_path / "bad.pass").write_text("nope\n")
    extra = ""
    for name, password in (("good", "good.pass"), ("bad", "bad.pass")):
        extra += textwrap.dedent(
            f"""
            [[imap]]
            name = "{name}"
            host = "127.0.0.1"
            port = {dovecot.imaps_port}
            ca_file = "{dovecot.ca_file}"
            username = "destek"
            password_file = "{password}"
            folder = "{"INBOX" if name == "good" else "Other"}"
            """
        )
    config = write_config(tmp_path, extra=extra)
    result = subprocess.run(
        [sys.executable, "-m", "ticketd.cli", "--config", str(config), "check", "--connect"],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "imap good: ok" in result.stdout
    assert "imap bad: FAILED: login failed" in result.stdout
    assert "AUTHENTICATIONFAILED" in result.stdout


def imap_section(dovecot: Dovecot, folder: Path, name: str, user: str, password: str) -> str:
    (folder / f"{name}.pass").write_text(password + "\n")
    return textwrap.dedent(
        f"""
        [[imap]]
        name = "{name}"
        host = "127.0.0.1"
        port = {dovecot.imaps_port}
        security = "tls"
        ca_file = "{dovecot.ca_file}"
        username = "{user}"
        password_file = "{name}.pass"
        after = "move:Processed"
        """
    )


@pytest.mark.slow
def test_the_daemon_takes_mail_from_imap_and_stops_promptly(
    dovecot: Dovecot, tmp_path: Path
) -> None:
    from tests.daemon import DaemonProcess, daemon_config

    extra = imap_section(dovecot, tmp_path, "destek", "destek", "s3cret")
    dovecot.add_user("satis", "right")
    extra += imap_section(dovecot, tmp_path, "broken", "satis", "wrong")
    daemon = DaemonProcess(daemon_config(tmp_path, None, extra))
    daemon.start()
    try:
        dovecot.deliver("destek", customer_mail(subject="from the mailbox"))
        tickets = daemon.wait_until(
            lambda: daemon.cli("tickets", "list", "--json"), what="the IMAP ticket"
        )
        assert [t["subject"] for t in tickets] == ["from the mailbox"]
        daemon.wait_until(lambda: not dovecot.folder_state("destek"), what="the move")

        def failing_accounts() -> list[str]:
            # --imap-minutes 0: any recorded failure counts, so no waiting for a threshold.
            health = subprocess.run(
                [*daemon_cli, "health", "--imap-minutes", "0", "--json"],
                capture_output=True,
                text=True,
            )
            failing: list[str] = json.loads(health.stdout)["imap_accounts_failing"]
            assert health.returncode == (1 if failing else 0), health.stdout + health.stderr
            return failing

        daemon_cli = [sys.executable, "-m", "ticketd.cli", "--config", str(daemon.config_path)]
        assert daemon.wait_until(failing_accounts, what="the broken account's state") == ["broken"]
        started = time.monotonic()
    finally:
        code = daemon.stop()
    assert code == 0, daemon.log()
    assert time.monotonic() - started < 5
    log = daemon.log()
    assert log.count("imap broken: login failed") == 1, log
    assert "imap destek: connected" in log


def test_health_connect_names_a_failing_account(dovecot: Dovecot, tmp_path: Path) -> None:
    from tests.helpers import write_config

    extra = imap_section(dovecot, tmp_path, "good", "destek", "s3cret")
    config = write_config(tmp_path, extra=extra)
    command = [sys.executable, "-m", "ticketd.cli", "--config", str(config), "health"]
    subprocess.run([*command[:-1], "db", "upgrade"], check=True, capture_output=True)
    healthy = subprocess.run([*command, "--connect"], capture_output=True, text=True)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    bad = imap_section(dovecot, tmp_path, "bad", "destek", "nope") + 'folder = "Other"\n'
    broken = config.read_text() + bad
    config.write_text(broken)
    failing = subprocess.run([*command, "--connect", "--json"], capture_output=True, text=True)
    assert failing.returncode == 1
    report = json.loads(failing.stdout)
    [problem] = report["problems"]
    assert (
        problem["check"] == "imap_account"
        and "imap bad: FAILED: login failed" in (problem["reason"])
    )


def test_health_reports_an_account_failing_past_the_threshold_and_clears(
    dovecot: Dovecot, state: State, clock: FixedClock, tmp_path: Path
) -> None:
    """Without --connect: the account loops record their state, `ticketd health` (another
    process, the system clock) reads it. The loops' clock starts 30 min back, so the wrong
    password has failed for 30 min by the time health looks."""
    from storage.models import ImapAccountStatus
    from tests.helpers import write_config

    dovecot.add_user("satis", "right")
    good = account_for(dovecot, name="good", poll_interval=300)
    bad = replace(account_for(dovecot, user="satis"), name="bad")
    wrong = "not-the-right-password"
    (dovecot.folder / "satis.pass").write_text(wrong + "\n")
    extra = "".join(
        textwrap.dedent(
            f"""
            [[imap]]
            name = "{a.name}"
            host = "127.0.0.1"
            port = {a.port}
            ca_file = "{a.ca_file}"
            username = "{a.username}"
            password_file = "{a.password_file}"
            """
        )
        for a in (good, bad)
    )
    config = write_config(tmp_path, extra=extra)  # the database of the `state` fixture
    command = [sys.executable, "-m", "ticketd.cli", "--config", str(config), "health"]

    def health(*options: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*command, *options], capture_output=True, text=True, timeout=60)

    fresh = health()
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr

    def status(name: str) -> ImapAccountStatus | None:
        with state.db.read() as session:
            row = session.scalar(select(ImapAccountStatus).where(ImapAccountStatus.account == name))
            session.expunge_all()
            return row

    clock.current = datetime.now(UTC) - timedelta(minutes=30)
    with running(state, bad, backoff_max=0.2), running(state, good):
        wait_for(lambda: (s := status("bad")) and s.failing_since, what="the bad account's row")
        wait_for(lambda: (s := status("good")) and s.last_ok_at, what="the good account's row")

        failing = health()
        assert failing.returncode == 1, failing.stdout + failing.stderr
        [line] = failing.stdout.splitlines()
        assert line.startswith("imap_account: imap bad: failing for 30 min (limit 10)"), line
        assert "login failed" in line and "AUTHENTICATIONFAILED" in line, line
        assert wrong not in failing.stdout
        # Under a threshold longer than the outage it is not (yet) a problem.
        assert health("--imap-minutes", "45").returncode == 0

        (dovecot.folder / "satis.pass").write_text("right\n")  # the admin fixes the password
        wait_for(lambda: (s := status("bad")) and s.failing_since is None, what="the recovery")
        healthy = health("--json")
        assert healthy.returncode == 0, healthy.stdout + healthy.stderr
        assert json.loads(healthy.stdout)["imap_accounts_failing"] == []
