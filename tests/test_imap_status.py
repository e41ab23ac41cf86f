"""IMAP account state in the database (domain/account_status.py) and what `ticketd health` makes
of it: written on changes and at most a minute apart, never in intake's way, read newest first.

The end-to-end test against a real Dovecot, a wrong password and the `ticketd health` command
is in tests/test_imap.py; here the account loop's side is driven directly.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import select

from domain.account_status import AccountStatus
from domain.clock import FixedClock
from domain.config import ImapAccountConfig
from storage.db import Database
from storage.migrate import alembic_config, upgrade
from storage.models import ImapAccountStatus
from ticketd.health import Thresholds, check
from ticketd.state import State


def rows(db: Database) -> list[ImapAccountStatus]:
    with db.read() as session:
        found = list(session.scalars(select(ImapAccountStatus).order_by(ImapAccountStatus.id)))
        session.expunge_all()  # plain values for the test, after the read transaction ends
        return found


def account(name: str) -> ImapAccountConfig:
    return ImapAccountConfig(
        name=name, host="imap.example.com", port=993, security="tls", username=name
    )


def test_written_on_changes_and_at_most_once_a_minute_otherwise(
    state: State, clock: FixedClock
) -> None:
    status = AccountStatus(state.db, clock, "destek", "destek@imap:993/INBOX", host="a")
    started = clock.now()
    status.ok()
    [row] = rows(state.db)
    assert (row.last_ok_at, row.failing_since, row.updated_at) == (started, None, started)

    clock.advance(timedelta(seconds=30))
    status.ok()  # a poll like the last: nothing written
    assert rows(state.db)[0].updated_at == started
    clock.advance(timedelta(seconds=31))
    status.ok()  # a minute on: the heartbeat
    assert rows(state.db)[0].updated_at == clock.now()

    clock.advance(timedelta(seconds=5))
    failed_at = clock.now()
    status.failed("login failed: AUTHENTICATIONFAILED")  # the outage begins: written at once
    [row] = rows(state.db)
    assert row.failing_since == failed_at and row.updated_at == failed_at
    assert row.last_error == "login failed: AUTHENTICATIONFAILED"
    assert row.last_ok_at == failed_at - timedelta(seconds=5)

    clock.advance(timedelta(seconds=2))
    status.failed("login failed: AUTHENTICATIONFAILED")  # the same again: not written
    assert rows(state.db)[0].updated_at == failed_at
    clock.advance(timedelta(seconds=2))
    status.failed("connection refused")  # another reason: written, same outage
    [row] = rows(state.db)
    assert row.last_error == "connection refused" and row.failing_since == failed_at

    clock.advance(timedelta(seconds=2))
    status.ok()  # the end of the outage: written at once
    [row] = rows(state.db)
    assert row.failing_since is None and row.last_error is None
    assert row.last_ok_at == clock.now() == row.updated_at


def test_a_database_error_is_logged_once_and_never_raised(
    tmp_path: Path, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="ticketd.imap")
    db = Database(f"sqlite:///{tmp_path}/unmigrated.sqlite3")  # no table yet: every write fails
    try:
        status = AccountStatus(db, clock, "destek", "destek@imap:993/INBOX", host="a")
        status.failed("login failed")
        status.ok()
        status.failed("login failed again")
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 1 and "could not record the account's state" in warnings[0]

        upgrade(db)  # the database is back: the next call writes what is current
        clock.advance(timedelta(seconds=1))
        status.failed("login failed again")
        [row] = rows(db)
        assert row.last_error == "login failed again" and row.failing_since is not None
        assert "recording the account's state again" in caplog.text
    finally:
        db.dispose()


def test_credentials_are_masked_in_the_stored_error(state: State, clock: FixedClock) -> None:
    status = AccountStatus(
        state.db, clock, "destek", "m", secrets=lambda: ["hunter2-secret", ""], host="a"
    )
    status.failed("server said: bad password hunter2-secret for destek")
    [row] = rows(state.db)
    assert row.last_error == "server said: bad password *** for destek"


def test_a_restarted_daemon_keeps_the_start_of_the_outage(state: State, clock: FixedClock) -> None:
    began = clock.now()
    AccountStatus(state.db, clock, "destek", "m", host="a").failed("login failed")
    clock.advance(timedelta(minutes=7))
    AccountStatus(state.db, clock, "destek", "m", host="a").failed("login failed")
    [row] = rows(state.db)
    assert row.failing_since == began and row.updated_at == clock.now()


def test_health_reports_an_account_failing_past_the_threshold(
    state: State, clock: FixedClock
) -> None:
    accounts = [account("destek"), account("satis")]
    assert check(state.db, clock, Thresholds(), accounts).healthy  # a fresh state

    AccountStatus(state.db, clock, "destek", "m", host="a").ok()
    AccountStatus(state.db, clock, "satis", "m", host="a").failed("login failed: NO [AUTH]")
    clock.advance(timedelta(minutes=10))
    report = check(state.db, clock, Thresholds(imap_minutes=10), accounts)
    assert report.healthy, report.problems  # failing for exactly the limit: not yet

    clock.advance(timedelta(minutes=1))
    report = check(state.db, clock, Thresholds(imap_minutes=10), accounts)
    [problem] = report.problems
    assert problem.check == "imap_account"
    assert problem.reason.startswith("imap satis: failing for 11 min (limit 10) on a")
    assert problem.reason.endswith(": login failed: NO [AUTH]")
    assert report.as_json()["imap_accounts_failing"] == ["satis"]
    assert check(state.db, clock, Thresholds(imap_minutes=30), accounts).healthy

    # An account taken out of the configuration is no one's concern any more.
    assert check(state.db, clock, Thresholds(), [account("destek")]).healthy


def check_takeover(db: Database, clock: FixedClock) -> None:
    accounts = [account("destek")]
    on_a = AccountStatus(db, clock, "destek", "m", host="host-a")
    on_a.failed("connection refused")
    clock.advance(timedelta(minutes=20))
    [problem] = check(db, clock, Thresholds(), accounts).problems
    assert "on host-a" in problem.reason and "connection refused" in problem.reason

    # host-a died; host-b took the mailbox over and gets through: its newer row decides.
    AccountStatus(db, clock, "destek", "m", host="host-b").ok()
    assert check(db, clock, Thresholds(), accounts).healthy
    assert len(rows(db)) == 2

    # host-b fails now and host-a's older row (failing long ago) does not count.
    clock.advance(timedelta(minutes=1))
    AccountStatus(db, clock, "destek", "m", host="host-b").failed("login failed")
    assert check(db, clock, Thresholds(), accounts).healthy
    clock.advance(timedelta(minutes=11))
    [problem] = check(db, clock, Thresholds(), accounts).problems
    assert "failing for 11 min" in problem.reason and "on host-b" in problem.reason


def test_health_reads_the_newest_row_of_an_account(state: State, clock: FixedClock) -> None:
    check_takeover(state.db, clock)


def test_on_postgresql_schema_matches_and_the_newest_row_wins(
    pg_database: str, clock: FixedClock
) -> None:
    db = Database(pg_database)
    try:
        upgrade(db)
        command.check(alembic_config(db))  # migration 0009 builds what the model says
        check_takeover(db, clock)
    finally:
        db.dispose()
