"""IMAP with tokens ticketd gets itself, against a real Dovecot whose oauth2 passdb asks the
test's token server whether a token is active (introspection), as Microsoft's or Google's
servers check theirs. The account loop runs in a thread of the test, as in tests/test_imap.py."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest

from domain.clock import FixedClock
from domain.config import ImapAccountConfig
from ingest.oauth_client import RefreshTokenStore
from ingest.oauth_tokens import OAuthBroker
from tests.dovecot import Dovecot
from tests.helpers import DESK, customer_mail, make_config
from tests.oauth_server import TokenServer
from tests.test_imap import journal_rows, running, wait_for
from tests.test_oauth import provider_block
from ticketd.health import Thresholds, check
from ticketd.state import State


def oauth_account(dovecot: Dovecot) -> ImapAccountConfig:
    return ImapAccountConfig(
        name="destek",
        host="127.0.0.1",
        port=dovecot.imaps_port,
        security="tls",
        username=DESK,
        ca_file=dovecot.ca_file,
        auth="xoauth2",
        oauth="relay",
        poll_interval=30,
        timeout=10,
    )


def broker_for(tmp_path: Path, server: TokenServer, clock: FixedClock, grant: str) -> OAuthBroker:
    config = make_config(
        tmp_path / "oauth", extra=provider_block(tmp_path / "oauth", server, grant=grant)
    )
    return OAuthBroker(config.oauth, clock)


@pytest.fixture
def broker(tmp_path: Path, token_server: TokenServer, clock: FixedClock) -> OAuthBroker:
    (tmp_path / "oauth").mkdir()
    return broker_for(tmp_path, token_server, clock, "client_credentials")


def test_mail_is_fetched_with_a_token_from_the_endpoint_and_renewed_before_it_expires(
    oauth_dovecot: Dovecot,
    token_server: TokenServer,
    broker: OAuthBroker,
    state: State,
    clock: FixedClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    oauth_dovecot.deliver(DESK, customer_mail(subject="first"))
    with caplog.at_level(logging.INFO), running(state, oauth_account(oauth_dovecot), broker=broker):
        wait_for(lambda: len(journal_rows(state)) == 1, what="mail over XOAUTH2")
        assert len(token_server.grants) == 1
        # Fifty-six minutes on: the token has four left. The server lets it die now; the loop
        # must log in again with a new one at its next wake, and no mail may be lost.
        clock.advance(timedelta(minutes=56))
        oauth_dovecot.deliver(DESK, customer_mail(subject="second"))
        wait_for(lambda: len(journal_rows(state)) == 2, what="the second mail")
        wait_for(lambda: len(token_server.grants) == 2, what="the renewal")
        token_server.revoke_all()
        token_server.revoked.discard(token_server.tokens()[-1])
        oauth_dovecot.deliver(DESK, customer_mail(subject="third"))
        wait_for(lambda: len(journal_rows(state)) == 3, what="mail with the new token")
    assert "access token due for refresh" in caplog.text
    assert "login failed" not in caplog.text
    assert "method=XOAUTH2" in oauth_dovecot.log() or "xoauth2" in oauth_dovecot.log().lower()


def test_a_token_the_server_refuses_is_renewed_once_on_the_next_login(
    oauth_dovecot: Dovecot,
    token_server: TokenServer,
    broker: OAuthBroker,
    state: State,
    caplog: pytest.LogCaptureFixture,
) -> None:
    oauth_dovecot.deliver(DESK, customer_mail(subject="first"))
    account = oauth_account(oauth_dovecot)
    with running(state, account, broker=broker):
        wait_for(lambda: len(journal_rows(state)) == 1, what="the first mail")
    # Revoked before its time (the user's password changed): the cached token still looks
    # good for an hour, and the next login (here a new session, as after a network break)
    # is refused with it.
    token_server.revoke_all()
    oauth_dovecot.deliver(DESK, customer_mail(subject="after the refusal"))
    with caplog.at_level(logging.INFO), running(state, account, broker=broker):
        wait_for(lambda: len(journal_rows(state)) == 2, what="mail after the refusal")
    assert len(token_server.grants) == 2  # one renewal, not one per retry
    assert "login failed" not in caplog.text


def test_a_revoked_grant_stops_the_account_with_one_line_and_health_names_it(
    oauth_dovecot: Dovecot,
    token_server: TokenServer,
    tmp_path: Path,
    state: State,
    clock: FixedClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    (tmp_path / "oauth").mkdir()
    broker = broker_for(tmp_path, token_server, clock, "refresh_token")
    provider = broker.providers["relay"]
    RefreshTokenStore(provider.refresh_token_file).save("rt-revoked", clock.now())
    oauth_dovecot.deliver(DESK, customer_mail(subject="waits on the server"))
    account = oauth_account(oauth_dovecot)
    with caplog.at_level(logging.INFO), running(state, account, broker=broker, backoff_max=0.2):
        wait_for(lambda: len(token_server.grants) >= 3, what="retries")
        clock.advance(timedelta(minutes=11))
        wait_for(lambda: len(token_server.grants) >= 4, what="a retry after the clock moved")
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(lines) == 1, lines
    assert "imap destek: login failed: no access token" in lines[0]
    assert "invalid_grant" in lines[0] and "oauth login relay" in lines[0]
    assert journal_rows(state) == []  # the mail stays on the server
    report = check(state.db, clock, Thresholds(imap_minutes=10), [account])
    assert report.facts["imap_accounts_failing"] == ["destek"]
    [problem] = [p for p in report.problems if p.check == "imap_account"]
    assert "invalid_grant" in problem.reason
