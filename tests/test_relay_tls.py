"""Delivery through a relay that demands STARTTLS and AUTH, as real submission servers do."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from ingest.journal import Arrival
from outbound.sender import Sender
from outbound.transports import make_transport
from tests.daemon import RelayHandler
from tests.helpers import customer_mail, free_port, make_config
from ticketd.clock import FixedClock
from ticketd.state import State, open_state


def make_certificate(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "relay.pem", folder / "relay.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


class Authenticator:
    def __init__(self) -> None:
        self.logins: list[str] = []

    def __call__(
        self, server: SMTP, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        ok = auth_data.login == b"ticketd" and auth_data.password == b"s3cret"
        if ok:
            self.logins.append(auth_data.login.decode())
        return AuthResult(success=ok, handled=False)  # let aiosmtpd answer 535 on failure


@pytest.fixture
def secure_relay(tmp_path: Path) -> Iterator[tuple[int, RelayHandler, Authenticator, Path]]:
    cert, key = make_certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    handler, authenticator, port = RelayHandler(), Authenticator(), free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        auth_required=True,
        authenticator=authenticator,
    )
    controller.start()
    try:
        yield port, handler, authenticator, cert
    finally:
        controller.stop()


def test_mail_goes_out_over_starttls_with_auth(
    tmp_path: Path,
    secure_relay: tuple[int, RelayHandler, Authenticator, Path],
    clock: FixedClock,
) -> None:
    port, handler, authenticator, cert = secure_relay
    (tmp_path / "relay.pass").write_text("s3cret\n")
    extra = (
        f'[smtp_out]\nrelay = "127.0.0.1:{port}"\nstarttls = true\nusername = "ticketd"\n'
        f'password_file = "relay.pass"\nca_file = "{cert.name}"\n'
    )
    state = open_state(make_config(tmp_path, extra=extra), clock=clock)
    try:
        state.journal.accept(Arrival(raw=customer_mail(), source="test"))
        state.worker.drain()
        sender = Sender(state.db, make_transport(state.config.smtp_out), clock)
        [result] = asyncio.run(sender.send_due())
        assert result.state == "sent", result.detail
        assert authenticator.logins == ["ticketd"]
        assert len(handler.messages()) == 1
    finally:
        state.close()


def _state_with_one_ack(
    tmp_path: Path, port: int, cert: Path, password: str, clock: FixedClock, ca: bool = True
) -> State:
    (tmp_path / "relay.pass").write_text(password + "\n")
    extra = (
        f'[smtp_out]\nrelay = "127.0.0.1:{port}"\nstarttls = true\nusername = "ticketd"\n'
        f'password_file = "relay.pass"\n' + (f'ca_file = "{cert.name}"\n' if ca else "")
    )
    state = open_state(make_config(tmp_path, extra=extra), clock=clock)
    state.journal.accept(Arrival(raw=customer_mail(), source="test"))
    state.worker.drain()
    return state


def test_wrong_password_is_a_permanent_failure(
    tmp_path: Path,
    secure_relay: tuple[int, RelayHandler, Authenticator, Path],
    clock: FixedClock,
) -> None:
    port, handler, authenticator, cert = secure_relay
    state = _state_with_one_ack(tmp_path, port, cert, "wrong", clock)
    try:
        sender = Sender(state.db, make_transport(state.config.smtp_out), clock)
        [result] = asyncio.run(sender.send_due())
        assert result.state == "failed" and "535" in result.detail
        assert authenticator.logins == [] and handler.messages() == []
    finally:
        state.close()


def test_untrusted_relay_certificate_is_a_temporary_failure(
    tmp_path: Path,
    secure_relay: tuple[int, RelayHandler, Authenticator, Path],
    clock: FixedClock,
) -> None:
    port, handler, _authenticator, cert = secure_relay
    state = _state_with_one_ack(tmp_path, port, cert, "s3cret", clock, ca=False)
    try:
        sender = Sender(state.db, make_transport(state.config.smtp_out), clock)
        [result] = asyncio.run(sender.send_due())
        assert result.state == "queued"
        assert "certificate verify failed" in result.detail
        assert handler.messages() == []
    finally:
        state.close()
