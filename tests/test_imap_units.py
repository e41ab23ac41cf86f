"""IMAP pieces without a server: `[[imap]]` configuration, XOAUTH2 tokens, backoff, the lock.

Token endpoints (Microsoft's, Google's) cannot run here: the token provider is tested with a
command and a file and a moved clock; the XOAUTH2 login itself runs against Dovecot in
test_imap.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from domain.clock import FixedClock
from domain.config import ConfigError, load_config
from domain.token_source import TokenError, TokenProvider, parse_token, xoauth2_string
from ingest.imap_accounts import Backoff
from ingest.imap_checkpoints import MailboxLock, lock_key
from storage.db import Database
from storage.migrate import upgrade
from tests.helpers import write_config

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def imap_problems(tmp_path: Path, section: str) -> dict[str, str]:
    with pytest.raises(ConfigError) as error:
        load_config(write_config(tmp_path, extra=section))
    return dict(error.value.problems)


def test_an_imap_account_with_defaults(tmp_path: Path) -> None:
    (tmp_path / "imap.pass").write_text("secret\n")
    config = load_config(
        write_config(
            tmp_path,
            extra='[[imap]]\nname = "destek"\nhost = "imap.example.com"\n'
            'username = "destek@example.com"\npassword_file = "imap.pass"\n'
            'after = "move:Processed"\n',
        )
    )
    (account,) = config.imap
    assert (account.port, account.security, account.folder) == (993, "tls", "INBOX")
    assert (account.after, account.move_to) == ("move", "Processed")
    assert account.password_file == tmp_path / "imap.pass"
    assert account.idle and account.quiet_older_than_hours == 72
    assert not account.quiet_first_sync


@pytest.mark.parametrize(
    ("section", "key", "reason"),
    [
        ('name = "a"\nhost = "h"\nusername = "u"\n', "imap[0].password_file", "is required"),
        (
            'name = "a"\nhost = "h"\nusername = "u"\npassword_file = "missing"\n',
            "imap[0].password_file",
            "does not exist",
        ),
        (
            'name = "a"\nhost = "h"\nusername = "u"\nauth = "xoauth2"\n',
            "imap[0].oauth",
            "exactly one of",
        ),
        ('host = "h"\nusername = "u"\nauth = "xoauth2"\ntoken_command = "x"\n', "imap[0].name", ""),
        (
            'name = "a"\nhost = "h"\nusername = "u"\nauth = "xoauth2"\ntoken_command = "x"\n'
            'security = "ssl"\n',
            "imap[0].security",
            "not tls, starttls or none",
        ),
        (
            'name = "a"\nhost = "h"\nusername = "u"\nauth = "xoauth2"\ntoken_command = "x"\n'
            'after = "archive"\n',
            "imap[0].after",
            "seen, delete or move:FOLDER",
        ),
        (
            'name = "a"\nhost = "h"\nusername = "u"\nauth = "xoauth2"\ntoken_command = "x"\n'
            "poll_interval = 0\n",
            "imap[0].poll_interval",
            "at least 1",
        ),
        (
            'name = "a"\nhost = "h"\nusername = "u"\nauth = "xoauth2"\ntoken_command = "x"\n'
            "pasword_file = 'typo'\n",
            "imap[0].pasword_file",
            "unknown key",
        ),
    ],
)
def test_imap_configuration_errors_name_the_key(
    tmp_path: Path, section: str, key: str, reason: str
) -> None:
    problems = imap_problems(tmp_path, "[[imap]]\n" + section)
    assert key in problems, problems
    assert reason in problems[key]


def test_two_accounts_with_one_name_are_refused(tmp_path: Path) -> None:
    account = (
        '[[imap]]\nname = "a"\nhost = "h"\nusername = "{}"\nauth = "xoauth2"\ntoken_command = "x"\n'
    )
    problems = imap_problems(tmp_path, account.format("u1") + account.format("u2"))
    assert "used twice" in problems["imap[1].name"]


def test_sasl_xoauth2_string() -> None:
    assert xoauth2_string("ayse@example.com", "ya29.abc") == (
        "user=ayse@example.com\x01auth=Bearer ya29.abc\x01\x01"
    )


def test_token_formats() -> None:
    assert parse_token("bare-token\n", NOW).value == "bare-token"
    assert parse_token("bare-token\n", NOW).expires_at is None
    token = parse_token('{"access_token": "t", "expires_in": 3600}', NOW)
    assert token.expires_at == NOW + timedelta(hours=1)
    stamp = parse_token(json.dumps({"access_token": "t", "expires_at": NOW.timestamp()}), NOW)
    assert stamp.expires_at == NOW
    iso = parse_token('{"access_token": "t", "expires_at": "2026-11-23T10:00:00+00:00"}', NOW)
    assert iso.expires_at == NOW + timedelta(hours=1)
    with pytest.raises(TokenError):
        parse_token("", NOW)
    with pytest.raises(TokenError):
        parse_token('{"token": "t"}', NOW)


def test_a_command_token_is_refreshed_before_it_expires(tmp_path: Path) -> None:
    counter = tmp_path / "count"
    script = tmp_path / "token.sh"
    script.write_text(
        "#!/bin/sh\n"
        f"n=$(($(cat {counter} 2>/dev/null || echo 0) + 1)); echo $n > {counter}\n"
        'echo "{\\"access_token\\": \\"tok-$n\\", \\"expires_in\\": 3600}"\n'
    )
    script.chmod(0o755)
    clock = FixedClock(NOW)
    provider = TokenProvider("o365", (str(script),), None, clock)
    assert provider.token().value == "tok-1"
    clock.advance(timedelta(minutes=50))
    assert provider.token().value == "tok-1"  # still 10 minutes left: cached
    assert not provider.needs_refresh()
    clock.advance(timedelta(minutes=6))
    assert provider.needs_refresh()
    assert provider.token().value == "tok-2"  # 4 minutes left: refreshed first
    assert provider.expiry_warning() is None


def test_a_token_source_that_gives_no_fresh_token_is_reported(tmp_path: Path) -> None:
    token_file = tmp_path / "token.json"
    token_file.write_text(json.dumps({"access_token": "t", "expires_at": NOW.isoformat()}))
    clock = FixedClock(NOW - timedelta(minutes=3))
    provider = TokenProvider("gmail", (), token_file, clock)
    assert provider.token().value == "t"
    warning = provider.expiry_warning()
    assert warning is not None and "expires at 2026-11-23T09:00:00+00:00 (in 3 min)" in warning


def test_a_failing_token_command_says_why(tmp_path: Path) -> None:
    script = tmp_path / "token.sh"
    script.write_text("#!/bin/sh\necho 'refresh token revoked' >&2\nexit 3\n")
    script.chmod(0o755)
    provider = TokenProvider("o365", (str(script),), None, FixedClock(NOW))
    with pytest.raises(TokenError, match="exited 3: refresh token revoked"):
        provider.token()


def test_backoff_doubles_and_logs_once() -> None:
    backoff = Backoff(maximum=10)
    steps = [backoff.fail() for _ in range(6)]
    assert steps == [(True, 1), (False, 2), (False, 4), (False, 8), (False, 10), (False, 10)]
    assert backoff.succeed() and not backoff.succeed()


def test_the_lock_key_is_stable_and_64_bit() -> None:
    key = lock_key("destek@imap.example.com:993/INBOX")
    assert key == lock_key("destek@imap.example.com:993/INBOX")
    assert -(2**63) <= key < 2**63
    assert key != lock_key("destek@imap.example.com:993/Other")


@pytest.mark.postgresql
def test_one_daemon_at_a_time_polls_a_mailbox(pg_database: str) -> None:
    first, second = Database(pg_database), Database(pg_database)
    try:
        upgrade(first)
        mine, theirs = MailboxLock(first, "m"), MailboxLock(second, "m")
        assert mine.acquire()
        assert not theirs.acquire()
        assert mine.held()
        mine.release()
        assert theirs.acquire()  # released for real, not left on a pooled connection
        theirs.release()
    finally:
        first.dispose()
        second.dispose()
