"""OAuth2 end to end, through the command line and the daemon as a process: mail fetched from a
Dovecot that checks tokens by introspection, the acknowledgement sent through a relay that takes
only AUTH XOAUTH2, both with one token ticketd got itself; `oauth login` and `check --connect`."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ingest.oauth_client import RefreshTokenStore
from tests.daemon import DaemonProcess
from tests.dovecot import Dovecot
from tests.helpers import DESK, customer_mail, write_config
from tests.oauth_server import CLIENT_SECRET, TokenServer, XOAuth2Relay
from tests.test_oauth import provider_block


def imap_section(dovecot: Dovecot) -> str:
    return textwrap.dedent(
        f"""
        [[imap]]
        name = "destek"
        host = "127.0.0.1"
        port = {dovecot.imaps_port}
        ca_file = "{dovecot.ca_file}"
        username = "{DESK}"
        auth = "xoauth2"
        oauth = "relay"
        """
    )


def ticketd(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "ticketd.cli", "--config", str(config), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_the_daemon_fetches_and_sends_with_one_token_it_never_logs(
    oauth_dovecot: Dovecot, token_server: TokenServer, xoauth2_relay: XOAuth2Relay, tmp_path: Path
) -> None:
    extra = xoauth2_relay.smtp_out() + imap_section(oauth_dovecot)
    config = write_config(tmp_path, extra=extra + provider_block(tmp_path, token_server))
    daemon = DaemonProcess(config, options=("-v",))  # debug lines too must mask the token
    daemon.start()
    try:
        oauth_dovecot.deliver(DESK, customer_mail(subject="Şifremi unuttum"))
        daemon.wait_until(lambda: daemon.cli("tickets", "list", "--json"), what="the ticket")
        [ack] = xoauth2_relay.wait_for(1, timeout=30)
        assert "ayse@musteri.com.tr" in str(ack["To"])
    finally:
        assert daemon.stop() == 0, daemon.log()
    assert token_server.grants == ["client_credentials"]  # one token for IMAP and SMTP
    assert xoauth2_relay.handler.auths == [True]
    log = daemon.log()
    assert "oauth relay: new access token" in log
    for secret in (*token_server.tokens(), CLIENT_SECRET):
        assert secret not in log


@pytest.mark.slow
def test_oauth_login_then_check_connect_proves_both_sides_and_names_a_revoked_grant(
    oauth_dovecot: Dovecot, token_server: TokenServer, xoauth2_relay: XOAuth2Relay, tmp_path: Path
) -> None:
    device = f'device_authorization_url = "{token_server.base}/device"\n'
    extra = xoauth2_relay.smtp_out() + imap_section(oauth_dovecot)
    extra += provider_block(tmp_path, token_server, grant="refresh_token") + device
    config = write_config(tmp_path, extra=extra)

    signed_in = ticketd(config, "oauth", "login", "relay")
    assert signed_in.returncode == 0, signed_in.stdout + signed_in.stderr
    assert "enter the code WDJB-MJHT" in signed_in.stdout and "signed in" in signed_in.stdout
    stored = tmp_path / "var" / "oauth" / "relay.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert RefreshTokenStore(stored).load() in token_server.refresh_tokens

    checked = ticketd(config, "check", "--connect")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "imap destek: ok" in checked.stdout
    relay = f"smtp_out 127.0.0.1:{xoauth2_relay.port}: ok: AUTH XOAUTH2 as {DESK} accepted"
    assert relay in checked.stdout
    assert token_server.grants.count("refresh_token") == 1  # one token for both sides
    assert not xoauth2_relay.handler.received  # nothing was sent

    token_server.refresh_tokens.clear()  # the grant is revoked
    refused = ticketd(config, "check", "--connect")
    assert refused.returncode == 69
    lines = refused.stdout.splitlines()
    for side in ("imap destek: FAILED", f"smtp_out 127.0.0.1:{xoauth2_relay.port}: FAILED"):
        [line] = [line for line in lines if line.startswith(side)]
        assert "grant failed" in line and "invalid_grant" in line, line
        assert "ticketd oauth login relay" in line
    assert ticketd(config, "db", "upgrade").returncode == 0
    health = ticketd(config, "health", "--connect", "--json")
    assert health.returncode == 1, health.stdout + health.stderr
    problems = {p["check"]: p["reason"] for p in json.loads(health.stdout)["problems"]}
    assert "invalid_grant" in problems["imap_account"] and "imap destek" in problems["imap_account"]
    assert "invalid_grant" in problems["relay_login"] and "smtp_out" in problems["relay_login"]
