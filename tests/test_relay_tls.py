"""Delivery through a relay that demands STARTTLS and AUTH, as real submission servers do."""

from __future__ import annotations

import asyncio
from pathlib import Path

from domain.clock import FixedClock
from ingest.journal import Arrival
from outbound.sender import Sender
from outbound.transports import make_transport
from tests.daemon import Authenticator, RelayHandler
from tests.helpers import customer_mail, make_config
from ticketd.state import State, open_state


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
