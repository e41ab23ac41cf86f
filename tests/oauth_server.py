"""An OAuth2 provider on loopback for the OAuth tests, and a relay that takes only its tokens.

`TokenServer` speaks the token protocol (RFC 6749: client_credentials, refresh_token; RFC 8628:
the device code; RFC 7523: Google's service-account JWT), serves the OpenID configuration msal
reads for a Microsoft authority, and answers token introspection (RFC 7662) for Dovecot's
`oauth2` passdb. It counts every token it hands out, so a test proves caching and refreshing by
the count, and can revoke a token, refuse a refresh token (a revoked grant) or make tokens die
early. With `tls=True` it serves HTTPS with a certificate from tests/daemon.py (msal refuses a
plain-HTTP authority).

`XOAuth2Relay` is an aiosmtpd relay that accepts `AUTH XOAUTH2` for a mailbox only with a token
the server considers valid, and mail only after that.
"""

from __future__ import annotations

import base64
import http.server
import json
import secrets
import shutil
import ssl
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

from tests.daemon import Relay, RelayHandler, make_certificate
from tests.dovecot import Dovecot, start_dovecot
from tests.helpers import free_port

CLIENT_ID, CLIENT_SECRET = "ticketd-app", "app-secret-for-tests"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


@dataclass
class Issued:
    token: str
    subject: str
    expires: float  # time.time() when the server stops accepting it


@dataclass
class TokenServer:
    port: int
    base: str
    ca_file: Path | None
    lifetime: int = 3600  # expires_in the server announces
    real_life: float | None = None  # seconds it really accepts a token (None: lifetime)
    refresh_tokens: set[str] = field(default_factory=lambda: {"rt-initial-for-tests"})
    rotate: bool = False  # hand out a new refresh token with each refresh
    issued: list[Issued] = field(default_factory=list)
    grants: list[str] = field(default_factory=list)  # grant_type of each token request
    forms: list[dict[str, str]] = field(default_factory=list)
    revoked: set[str] = field(default_factory=set)
    pending_polls: int = 1  # device flow: "authorization_pending" this many times first
    mailbox: str = "destek@example.com"  # whose tokens introspection says they are
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def token_url(self) -> str:
        return f"{self.base}/token"

    @property
    def introspection_url(self) -> str:
        return f"{self.base}/introspect"

    def valid(self, token: str, subject: str | None = None) -> bool:
        now = time.time()
        with self.lock:
            return any(
                i.token == token
                and i.expires > now
                and token not in self.revoked
                and (subject is None or not i.subject or i.subject == subject)
                for i in self.issued
            )

    def tokens(self) -> list[str]:
        with self.lock:
            return [i.token for i in self.issued]

    def revoke_all(self) -> None:
        with self.lock:
            self.revoked.update(i.token for i in self.issued)

    def issue(self, subject: str = "", refresh: bool = False) -> dict[str, Any]:
        token = f"at-{len(self.issued) + 1}-{secrets.token_hex(12)}"
        life = self.real_life if self.real_life is not None else self.lifetime
        self.issued.append(Issued(token, subject, time.time() + life))
        answer: dict[str, Any] = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self.lifetime,
        }
        if refresh:
            new = f"rt-{secrets.token_hex(12)}"
            self.refresh_tokens.add(new)
            answer["refresh_token"] = new
        return answer

    def answer_token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        grant = form.get("grant_type", "")
        self.grants.append(grant)
        self.forms.append(form)
        client_ok = form.get("client_id") == CLIENT_ID
        if grant == "client_credentials":
            secret_ok = form.get("client_secret") == CLIENT_SECRET or "client_assertion" in form
            if not (client_ok and secret_ok):
                return 401, {"error": "invalid_client", "error_description": "bad secret"}
            return 200, self.issue()
        if grant == "refresh_token":
            if form.get("refresh_token") not in self.refresh_tokens:
                return 400, {"error": "invalid_grant", "error_description": "AADSTS70008 revoked"}
            if self.rotate:
                self.refresh_tokens.discard(form["refresh_token"])
            return 200, self.issue(refresh=self.rotate)
        if grant == DEVICE_GRANT:
            if self.pending_polls > 0:
                self.pending_polls -= 1
                return 400, {"error": "authorization_pending"}
            return 200, self.issue(refresh=True)
        if grant == JWT_GRANT:
            claims = _jwt_claims(form.get("assertion", ""))
            return 200, {**self.issue(subject=str(claims.get("sub", ""))), "claims": claims}
        return 400, {"error": "unsupported_grant_type"}

    def openid(self, tenant: str) -> dict[str, Any]:
        root = f"{self.base}/{tenant}"
        return {
            "issuer": f"{root}/v2.0",
            "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
            "token_endpoint": f"{root}/oauth2/v2.0/token",
            "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
        }


def _jwt_claims(assertion: str) -> dict[str, Any]:
    try:
        payload = assertion.split(".")[1]
        claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * 4))
        return claims
    except (IndexError, ValueError):
        return {}


def _handler(server: TokenServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def reply(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if path.endswith("/v2.0/.well-known/openid-configuration"):
                self.reply(200, server.openid(path.strip("/").split("/")[0]))
            else:
                self.reply(404, {"error": "not_found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
            path = self.path.split("?")[0]
            with server.lock:
                if path.endswith("/introspect"):
                    self.introspect(form)
                    return
                if path.endswith(("/device", "/devicecode")):
                    self.reply(200, _device_flow(server))
                    return
                code, body = server.answer_token(form)
            self.reply(code, body)

        def introspect(self, form: dict[str, str]) -> None:
            token = form.get("token", "")
            now = time.time()
            found = [i for i in server.issued if i.token == token]
            active = bool(found) and found[0].expires > now and token not in server.revoked
            body: dict[str, Any] = {"active": active}
            if active:
                body["username"] = found[0].subject or server.mailbox
            self.reply(200, body)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


def _device_flow(server: TokenServer) -> dict[str, Any]:
    return {
        "device_code": "dc-" + secrets.token_hex(8),
        "user_code": "WDJB-MJHT",
        "verification_uri": f"{server.base}/activate",
        "expires_in": 60,
        "interval": 1,
        "message": f"To sign in, open {server.base}/activate and enter WDJB-MJHT",
    }


def start_token_server(folder: Path, tls: bool = False) -> tuple[TokenServer, Any]:
    port = free_port()
    ca_file = None
    if tls:
        cert, key = make_certificate(folder)
        ca_file = cert
    scheme = "https" if tls else "http"
    state = TokenServer(port, f"{scheme}://127.0.0.1:{port}", ca_file)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), _handler(state))
    if tls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return state, httpd


@pytest.fixture
def token_server(tmp_path: Path) -> Iterator[TokenServer]:
    server, httpd = start_token_server(tmp_path)
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def tls_token_server(tmp_path: Path) -> Iterator[TokenServer]:
    folder = tmp_path / "tls-token-server"
    folder.mkdir()
    server, httpd = start_token_server(folder, tls=True)
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()


class XOAuth2Handler(RelayHandler):
    """A relay handler that offers AUTH XOAUTH2 and checks the token with the token server."""

    def __init__(self, server: TokenServer, mailbox: str) -> None:
        super().__init__()
        self.server = server
        self.mailbox = mailbox
        self.auths: list[bool] = []

    async def auth_XOAUTH2(self, smtp: SMTP, args: list[str]) -> AuthResult:
        blob = args[1] if len(args) > 1 else ""  # ticketd sends the initial response
        text = base64.b64decode(blob).decode(errors="replace")
        user, _, rest = text.partition("\x01auth=Bearer ")
        token = rest.removesuffix("\x01\x01")
        ok = user == f"user={self.mailbox}" and self.server.valid(token)
        self.auths.append(ok)
        return AuthResult(success=ok, handled=False)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if not session.authenticated:
            return "530 5.7.0 Authentication required"
        return await super().handle_DATA(server, session, envelope)


@dataclass
class XOAuth2Relay(Relay):
    handler: XOAuth2Handler
    ca_file: Path

    def smtp_out(self, oauth: str = "relay") -> str:
        """The `[smtp_out]` section that sends through this relay with XOAUTH2."""
        return (
            f'[smtp_out]\nrelay = "127.0.0.1:{self.port}"\nstarttls = true\n'
            f'ca_file = "{self.ca_file}"\nauth = "xoauth2"\noauth = "{oauth}"\n'
            'username = "destek@example.com"\n'
        )


@pytest.fixture
def xoauth2_relay(token_server: TokenServer, tmp_path: Path) -> Iterator[XOAuth2Relay]:
    """Submission as Microsoft 365 and Gmail do it: STARTTLS first, then AUTH XOAUTH2."""
    folder = tmp_path / "relay-tls"
    folder.mkdir()
    cert, key = make_certificate(folder)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    handler = XOAuth2Handler(token_server, "destek@example.com")
    port = free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        auth_required=True,
    )
    controller.start()
    try:
        yield XOAuth2Relay(port, handler, cert)
    finally:
        controller.stop()


@pytest.fixture
def oauth_dovecot(token_server: TokenServer) -> Iterator[Dovecot]:
    """Dovecot that takes XOAUTH2 tokens the token server says are active (introspection)."""
    server = start_dovecot(token_server.introspection_url)
    # Known to the passwd-file too, for doveadm's user lookup; its password is never used.
    server.add_user(token_server.mailbox, secrets.token_hex(16))
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.folder, ignore_errors=True)
