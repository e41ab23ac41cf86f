"""OAuth2 for the relay and the providers: a token endpoint on loopback (tests/oauth_server.py),
an aiosmtpd relay that takes only AUTH XOAUTH2 with a token that endpoint issued, and msal and
google-auth pointed at the same endpoint. The token server counts what it hands out, so caching,
sharing and refreshing are proved by the count."""

from __future__ import annotations

import asyncio
import json
import logging
import stat
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from domain.account_status import RELAY_ACCOUNT, AccountStatus
from domain.clock import FixedClock
from domain.config import Config, ConfigError
from domain.logs import redact
from ingest.journal import Arrival
from ingest.oauth_client import OAuthError, RefreshTokenStore
from ingest.oauth_login import login
from ingest.oauth_tokens import OAuthBroker
from outbound.sender import Sender
from outbound.transports import make_transport
from tests.helpers import DESK, customer_mail, make_config
from tests.oauth_server import CLIENT_ID, CLIENT_SECRET, TokenServer, XOAuth2Relay
from ticketd.health import Thresholds, check
from ticketd.state import State, open_state
from ticketd.views import list_outbox

OUTLOOK = "https://outlook.office365.com/.default"


def provider_block(
    folder: Path, server: TokenServer, name: str = "relay", grant: str = "client_credentials"
) -> str:
    """`[oauth.NAME]` for the generic provider at the test's token endpoint."""
    (folder / "client.secret").write_text(CLIENT_SECRET + "\n")
    return (
        f'\n[oauth.{name}]\nkind = "generic"\ntoken_url = "{server.token_url}"\n'
        f'client_id = "{CLIENT_ID}"\nclient_secret_file = "client.secret"\n'
        f'grant = "{grant}"\nscope = "{OUTLOOK}"\n'
    )


def relay_state(folder: Path, relay: XOAuth2Relay, extra: str, clock: FixedClock) -> State:
    """State whose outbox holds one acknowledgement for the relay."""
    state = open_state(make_config(folder, extra=relay.smtp_out() + extra), clock=clock)
    queue_mail(state)
    return state


def queue_mail(state: State, subject: str = "Para çekme talebim") -> None:
    """A customer's mail, processed: its acknowledgement waits in the outbox. Each from its
    own sender, or the automatic-mail rate limit would hold the second acknowledgement back."""
    sender = f"Müşteri <musteri-{abs(hash(subject)) % 10_000}@musteri.com.tr>"
    raw = customer_mail(sender=sender, subject=subject)
    state.journal.accept(Arrival(raw=raw, source="test"))
    assert [r.state for r in state.worker.drain()] == ["done"]


def relay_sender(state: State, broker: OAuthBroker) -> Sender:
    out = state.config.smtp_out
    assert out.oauth is not None and out.username is not None
    status = AccountStatus(state.db, state.clock, RELAY_ACCOUNT, f"{out.username} via relay")
    transport = make_transport(out, broker.tokens(out.oauth, out.username), status)
    return Sender(state.db, transport, state.clock)


def test_one_token_for_both_sides_kept_until_shortly_before_it_expires(
    token_server: TokenServer, tmp_path: Path, clock: FixedClock
) -> None:
    config = make_config(tmp_path, extra=provider_block(tmp_path, token_server))
    broker = OAuthBroker(config.oauth, clock)
    imap_side, smtp_side = broker.tokens("relay", DESK), broker.tokens("relay", DESK.upper())
    assert imap_side is smtp_side
    first = imap_side.token()
    assert smtp_side.token() == first and token_server.grants == ["client_credentials"]
    form = token_server.forms[0]
    assert form["client_secret"] == CLIENT_SECRET and form["scope"] == OUTLOOK
    clock.advance(timedelta(minutes=54))  # 6 min left: still good
    assert imap_side.token() == first and len(token_server.grants) == 1
    clock.advance(timedelta(minutes=2))  # 4 min left: inside the 5 min margin
    second = smtp_side.token()
    assert second.value != first.value and len(token_server.grants) == 2
    assert second.value in broker.secrets() and first.value in broker.secrets()
    # Whatever logs a line with them, the log filter masks both (domain/logs.py).
    assert redact(f"Bearer {second.value} / {first.value}") == "Bearer *** / ***"


def test_a_refused_token_is_renewed_once_and_the_mail_leaves(
    token_server: TokenServer, xoauth2_relay: XOAuth2Relay, tmp_path: Path, clock: FixedClock
) -> None:
    state = relay_state(tmp_path, xoauth2_relay, provider_block(tmp_path, token_server), clock)
    try:
        sender = relay_sender(state, OAuthBroker(state.config.oauth, clock))
        [first] = asyncio.run(sender.send_due())
        assert first.state == "sent", first.detail
        queue_mail(state, "İkinci talep")
        token_server.revoke_all()  # revoked before its time: the relay answers 535
        [second] = asyncio.run(sender.send_due())
        assert second.state == "sent", second.detail
        assert xoauth2_relay.handler.auths == [True, False, True]
        assert token_server.grants == ["client_credentials"] * 2  # one refresh, not more
        assert len(xoauth2_relay.handler.messages()) == 2
    finally:
        state.close()


def test_a_token_refused_twice_is_reported_as_the_mailbox_not_the_token(
    token_server: TokenServer, xoauth2_relay: XOAuth2Relay, tmp_path: Path, clock: FixedClock
) -> None:
    xoauth2_relay.handler.mailbox = "someone-else@example.com"  # the app may not send as us
    state = relay_state(tmp_path, xoauth2_relay, provider_block(tmp_path, token_server), clock)
    try:
        [result] = asyncio.run(
            relay_sender(state, OAuthBroker(state.config.oauth, clock)).send_due()
        )
        assert result.state == "queued"  # waits: an admin can grant the permission
        assert "refused with a new token" in result.detail and "535" in result.detail
        assert len(token_server.grants) == 2
    finally:
        state.close()


def test_a_revoked_grant_keeps_mail_waiting_with_one_log_line_and_health_names_the_mailbox(
    token_server: TokenServer,
    xoauth2_relay: XOAuth2Relay,
    tmp_path: Path,
    clock: FixedClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    extra = provider_block(tmp_path, token_server, grant="refresh_token")
    state = relay_state(tmp_path, xoauth2_relay, extra, clock)
    provider = state.config.oauth_provider("relay")
    RefreshTokenStore(provider.refresh_token_file).save("rt-initial-for-tests", clock.now())
    token_server.refresh_tokens.clear()  # the user revoked the app's access
    queue_mail(state, "İkinci talep")
    try:
        sender = relay_sender(state, OAuthBroker(state.config.oauth, clock))
        with caplog.at_level(logging.INFO):
            results = asyncio.run(sender.send_due())
            clock.advance(timedelta(minutes=20))
            results += asyncio.run(sender.send_due())
        assert [r.state for r in results] == ["queued"] * 4
        errors = [
            r for r in caplog.records if r.levelno >= logging.WARNING and r.name != "mail.log"
        ]
        assert len(errors) == 1, [r.getMessage() for r in errors]
        line = errors[0].getMessage()
        assert "invalid_grant" in line and "oauth login relay" in line and "waits" in line
        assert all(row["state"] == "queued" for row in list_outbox(state.db))
        report = check(state.db, clock, Thresholds(imap_minutes=10), relay_login=True)
        [problem] = [p for p in report.problems if p.check == "relay_login"]
        assert "destek@example.com" in problem.reason and "invalid_grant" in problem.reason
        assert report.facts["relay_login_failing"] is True

        token_server.refresh_tokens.add("rt-initial-for-tests")  # signed in again
        clock.advance(timedelta(hours=1))
        with caplog.at_level(logging.INFO):
            assert {r.state for r in asyncio.run(sender.send_due())} == {"sent"}
        assert len(xoauth2_relay.handler.messages()) == 2
        assert "logging in works again" in caplog.text
        assert not check(state.db, clock, Thresholds(), relay_login=True).facts[
            "relay_login_failing"
        ]
    finally:
        state.close()


def test_a_rotated_refresh_token_replaces_the_stored_one_in_a_0600_file(
    token_server: TokenServer, tmp_path: Path, clock: FixedClock
) -> None:
    token_server.rotate = True
    config = make_config(
        tmp_path, extra=provider_block(tmp_path, token_server, grant="refresh_token")
    )
    provider = config.oauth_provider("relay")
    store = RefreshTokenStore(provider.refresh_token_file)
    store.save("rt-initial-for-tests", clock.now())
    tokens = OAuthBroker(config.oauth, clock).tokens("relay", DESK)
    tokens.token()
    stored = store.load()
    assert stored in token_server.refresh_tokens and stored != "rt-initial-for-tests"
    assert stat.S_IMODE(provider.refresh_token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(provider.refresh_token_file.parent.stat().st_mode) == 0o700
    tokens.token(force=True)  # the rotated one works, and is replaced in turn
    assert store.load() != stored and len(token_server.grants) == 2


def microsoft_block(server: TokenServer, folder: Path, grant: str, credential: str) -> str:
    return (
        f'\n[oauth.m365]\nkind = "microsoft"\ntenant = "contoso.onmicrosoft.com"\n'
        f'authority = "{server.base}/contoso"\nca_file = "{server.ca_file}"\n'
        f'client_id = "{CLIENT_ID}"\ngrant = "{grant}"\n{credential}'
        'scope = ["https://outlook.office.com/IMAP.AccessAsUser.All", "offline_access"]\n'
    )


def test_microsoft_client_credentials_through_msal_with_a_secret_and_a_certificate(
    tls_token_server: TokenServer, tmp_path: Path, clock: FixedClock
) -> None:
    (tmp_path / "m365.secret").write_text(CLIENT_SECRET)
    pem = tmp_path / "m365.pem"
    pem.write_bytes(certificate_pem())
    for credential in ('client_secret_file = "m365.secret"\n', 'certificate_file = "m365.pem"\n'):
        config = make_config(
            tmp_path,
            extra=microsoft_block(tls_token_server, tmp_path, "client_credentials", credential),
        )
        token = OAuthBroker(config.oauth, clock).tokens("m365", DESK).token()
        assert tls_token_server.valid(token.value)
        form = tls_token_server.forms[-1]
        assert form["client_id"] == CLIENT_ID and "IMAP.AccessAsUser.All" in form["scope"]
        assert "offline_access" not in form["scope"].split()  # msal adds its own; ours dropped
    secret_form, certificate_form = tls_token_server.forms
    assert secret_form["client_secret"] == CLIENT_SECRET
    assert "client_assertion" in certificate_form and "client_secret" not in certificate_form


def test_microsoft_device_login_then_refresh_through_msal(
    tls_token_server: TokenServer, tmp_path: Path, clock: FixedClock
) -> None:
    config = make_config(
        tmp_path, extra=microsoft_block(tls_token_server, tmp_path, "refresh_token", "")
    )
    provider = config.oauth_provider("m365")
    said: list[str] = []
    login(provider, clock.now, said.append)
    assert "WDJB-MJHT" in said[0]
    stored = RefreshTokenStore(provider.refresh_token_file).load()
    assert stored in tls_token_server.refresh_tokens
    token = OAuthBroker(config.oauth, clock).tokens("m365", DESK).token()
    assert tls_token_server.valid(token.value)
    assert tls_token_server.forms[-1]["refresh_token"] == stored


def test_google_service_account_gets_a_token_for_each_mailbox(
    token_server: TokenServer, tmp_path: Path, clock: FixedClock
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    account = {
        "type": "service_account",
        "client_email": "ticketd@project.iam.gserviceaccount.com",
        "client_id": "1234",
        "private_key_id": "k1",
        "private_key": pem.decode(),
        "token_uri": token_server.token_url,
    }
    (tmp_path / "google.json").write_text(json.dumps(account))
    extra = (
        '\n[oauth.gw]\nkind = "google"\ngrant = "service_account"\n'
        'service_account_file = "google.json"\nscope = "https://mail.google.com/"\n'
    )
    broker = OAuthBroker(make_config(tmp_path, extra=extra).oauth, clock)
    desk = broker.tokens("gw", DESK).token()
    assert broker.tokens("gw", DESK).token() == desk
    other = broker.tokens("gw", "satis@example.com").token()
    assert desk != other and len(token_server.grants) == 2
    [first, second] = [i.subject for i in token_server.issued]
    assert (first, second) == (DESK, "satis@example.com")
    assert token_server.valid(desk.value, DESK)


def test_the_token_endpoint_being_down_is_named(tmp_path: Path, clock: FixedClock) -> None:
    (tmp_path / "client.secret").write_text("x")
    extra = (
        '\n[oauth.relay]\nkind = "generic"\ntoken_url = "http://127.0.0.1:9/token"\n'
        'client_id = "a"\nclient_secret_file = "client.secret"\ngrant = "client_credentials"\n'
        'scope = "s"\n'
    )
    broker = OAuthBroker(make_config(tmp_path, extra=extra).oauth, clock)
    with pytest.raises(OAuthError) as raised:
        broker.tokens("relay", DESK).token()
    assert raised.value.stage == "endpoint" and "http://127.0.0.1:9/token" in str(raised.value)


def certificate_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ticketd")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime(2026, 1, 1))
        .not_valid_after(datetime(2028, 1, 1))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem + certificate.public_bytes(serialization.Encoding.PEM)


def config_problems(folder: Path, extra: str) -> dict[str, str]:
    try:
        make_config(folder, extra=extra)
    except ConfigError as error:
        return dict(error.problems)
    return {}


@pytest.mark.parametrize(
    ("extra", "key", "reason"),
    [
        ('[oauth.a]\nkind = "aws"\n', "oauth.a.kind", "not one of microsoft, google, generic"),
        ('[oauth.a]\nkind = "generic"\ngrant = "x"\n', "oauth.a.grant", "not one of"),
        ('[oauth.a]\nkind = "generic"\n', "oauth.a.scope", "is required"),
        (
            '[oauth.a]\nkind = "generic"\ngrant = "client_credentials"\nscope = "s"\n'
            'client_id = "c"\nclient_secret_file = "client.secret"\n',
            "oauth.a.token_url",
            "is required",
        ),
        (
            '[oauth.a]\nkind = "microsoft"\ngrant = "client_credentials"\nscope = "s"\n'
            'client_id = "c"\nclient_secret_file = "client.secret"\n',
            "oauth.a.tenant",
            "is required",
        ),
        (
            '[oauth.a]\nkind = "microsoft"\ntenant = "t"\ngrant = "client_credentials"\n'
            'scope = "s"\nclient_id = "c"\n',
            "oauth.a.client_secret_file",
            "or certificate_file",
        ),
        (
            '[oauth.a]\nkind = "google"\ngrant = "client_credentials"\nscope = "s"\n'
            'client_id = "c"\nclient_secret_file = "client.secret"\n',
            "oauth.a.grant",
            "use service_account",
        ),
        ('[oauth.a]\nkind = "generic"\nsecret = "x"\n', "oauth.a.secret", "unknown key"),
        (
            '[smtp_out]\nrelay = "127.0.0.1:25"\nauth = "xoauth2"\nusername = "d@example.com"\n',
            "smtp_out.oauth",
            "is required",
        ),
        (
            '[smtp_out]\nrelay = "127.0.0.1:25"\nauth = "xoauth2"\noauth = "nope"\n'
            'username = "d@example.com"\n',
            "smtp_out.oauth",
            "no [oauth.nope] block",
        ),
        (
            '[smtp_out]\nrelay = "127.0.0.1:25"\nauth = "xoauth2"\noauth = "nope"\n',
            "smtp_out.username",
            "the mailbox of the token",
        ),
        (
            '[smtp_out]\nrelay = "127.0.0.1:25"\noauth = "x"\n',
            "smtp_out.oauth",
            'needs auth = "xoauth2"',
        ),
        (
            '[[imap]]\nname = "a"\nhost = "h"\nusername = "u"\nauth = "xoauth2"\n'
            'oauth = "x"\ntoken_file = "client.secret"\n',
            "imap[0].oauth",
            "exactly one of oauth, token_command, token_file",
        ),
        (
            '[[imap]]\nname = "a"\nhost = "h"\nusername = "u"\nauth = "xoauth2"\noauth = "x"\n',
            "imap[0].oauth",
            "no [oauth.x] block",
        ),
    ],
)
def test_configuration_errors_name_the_key(
    tmp_path: Path, extra: str, key: str, reason: str
) -> None:
    (tmp_path / "client.secret").write_text("s")
    problems = config_problems(tmp_path, extra)
    assert key in problems, problems
    assert reason in problems[key]


def test_a_sound_xoauth2_configuration(tmp_path: Path, token_server: TokenServer) -> None:
    extra = (
        '[smtp_out]\nrelay = "smtp.office365.com:587"\nstarttls = true\nauth = "xoauth2"\n'
        'oauth = "relay"\nusername = "destek@example.com"\n'
        '[[imap]]\nname = "destek"\nhost = "outlook.office365.com"\n'
        'username = "destek@example.com"\nauth = "xoauth2"\noauth = "relay"\n'
    ) + provider_block(tmp_path, token_server)
    config: Config = make_config(tmp_path, extra=extra)
    assert config.smtp_out.auth == "xoauth2" and config.smtp_out.oauth == "relay"
    assert config.imap[0].oauth == "relay"
    provider = config.oauth_provider("relay")
    assert (
        provider.scope == (OUTLOOK,) and provider.client_secret_file == tmp_path / "client.secret"
    )
    assert provider.refresh_token_file == tmp_path / "var" / "oauth" / "relay.json"


def test_google_refresh_token_through_google_auth(
    token_server: TokenServer, tmp_path: Path, clock: FixedClock
) -> None:
    (tmp_path / "client.secret").write_text(CLIENT_SECRET)
    extra = (
        f'\n[oauth.gmail]\nkind = "google"\ngrant = "refresh_token"\n'
        f'token_url = "{token_server.token_url}"\nclient_id = "{CLIENT_ID}"\n'
        'client_secret_file = "client.secret"\nscope = "https://mail.google.com/"\n'
    )
    config = make_config(tmp_path, extra=extra)
    tokens = OAuthBroker(config.oauth, clock).tokens("gmail", DESK)
    with pytest.raises(OAuthError) as raised:  # before anyone put a refresh token there
        tokens.token()
    assert raised.value.stage == "setup" and token_server.grants == []
    store = RefreshTokenStore(config.oauth_provider("gmail").refresh_token_file)
    store.save("rt-initial-for-tests", clock.now())
    assert token_server.valid(tokens.token().value)
    form = token_server.forms[-1]
    assert form["refresh_token"] == "rt-initial-for-tests"
    assert form["client_secret"] == CLIENT_SECRET
    token_server.refresh_tokens.clear()
    with pytest.raises(OAuthError) as revoked:
        tokens.token(force=True)
    assert revoked.value.stage == "grant" and "invalid_grant" in str(revoked.value)
