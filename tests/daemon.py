"""Fixtures that run real peers: the daemon as a process, and aiosmtpd as the relay."""

from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from domain.config import load_config
from tests.helpers import free_port, write_config


@dataclass
class RelayHandler:
    """Collects what ticketd sends; `replies` scripts answers to DATA (e.g. a 451, then 250)."""

    received: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.lock:
            if self.replies:
                return self.replies.pop(0)
            assert isinstance(envelope.content, bytes)
            self.received.append(
                (envelope.mail_from or "", list(envelope.rcpt_tos), envelope.content)
            )
        return "250 2.0.0 OK"

    def messages(self) -> list[Message]:
        with self.lock:
            return [message_from_bytes(raw, policy=default) for _, _, raw in self.received]


@dataclass
class Relay:
    port: int
    handler: RelayHandler

    def wait_for(self, count: int, timeout: float = 15.0) -> list[Message]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            messages = self.handler.messages()
            if len(messages) >= count:
                return messages
            time.sleep(0.05)
        raise AssertionError(f"relay received {len(self.handler.messages())}, expected {count}")


@pytest.fixture
def relay() -> Iterator[Relay]:
    handler = RelayHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield Relay(port, handler)
    finally:
        controller.stop()


# Every daemon a test started: killed when the test process exits, so a test that failed before
# stopping its daemon (an assertion, a timeout) does not leave it running for the rest of the run.
_STARTED: list[subprocess.Popen[bytes]] = []


@atexit.register
def _kill_leftovers() -> None:
    for process in _STARTED:
        if process.poll() is None:
            process.kill()
            process.wait()


class DaemonProcess:
    """`ticketd run` as a child process, driven the way an admin or systemd would."""

    def __init__(self, config_path: Path, options: tuple[str, ...] = ()) -> None:
        self.config_path = config_path
        self.options = options  # global options such as "-v", placed before `run`
        self.config = load_config(config_path)
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = config_path.parent / "daemon.log"

    @property
    def port(self) -> int:
        return self.config.smtp_in.listen.port

    def start(self, timeout: float = 60.0) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ticketd.cli",
                "--config",
                str(self.config_path),
                *self.options,
                "run",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.config_path.parent,
        )
        log.close()
        _STARTED.append(self.process)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"daemon exited {self.process.returncode}: {self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        # Never leave a daemon behind a failed start: each one left holds ~100 MB and its ports
        # for the rest of the run, and a loaded machine then fails every later test.
        self.process.kill()
        self.process.wait()
        self.process = None
        raise AssertionError(f"daemon did not listen on {self.port}: {self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()  # the test fails on the timeout; the process must not outlive it
            self.process.wait()
            raise
        finally:
            if self.process.poll() is not None:
                self.process = None
        return code

    def cli(self, *args: str) -> Any:
        """Run a `--json` command of the real CLI and return the decoded output."""
        result = subprocess.run(
            [sys.executable, "-m", "ticketd.cli", "--config", str(self.config_path), *args],
            capture_output=True,
            check=True,
            env={**os.environ, "COLUMNS": "200"},
        )
        return json.loads(result.stdout)

    def wait_until(self, predicate: Any, timeout: float = 20.0, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; last value {value!r}\n{self.log()}")


def daemon_config(folder: Path, relay_port: int | None, extra: str = "") -> Path:
    smtp_out = "[smtp_out]\n"
    smtp_out += f'relay = "127.0.0.1:{relay_port}"\n' if relay_port else 'maildir = "var/outbox"\n'
    return write_config(folder, extra=smtp_out + extra)


@pytest.fixture
def daemon(tmp_path: Path, relay: Relay) -> Iterator[DaemonProcess]:
    process = DaemonProcess(daemon_config(tmp_path, relay.port))
    process.start()
    try:
        yield process
    finally:
        if process.process is not None:
            code = process.stop()
            assert code == 0, f"daemon exit status {code} on SIGTERM:\n{process.log()}"


Start = Callable[[str], DaemonProcess]


@pytest.fixture
def start(tmp_path: Path, relay: Relay) -> Iterator[Start]:
    """Starts the daemon with these `[smtp_in]` lines (on a free port); stops every daemon it
    started after the test and asserts each exits 0 on SIGTERM."""
    started: list[DaemonProcess] = []

    def run(smtp_in: str) -> DaemonProcess:
        extra = f'[smtp_in]\nlisten = "127.0.0.1:{free_port()}"\n{smtp_in}\n'
        process = DaemonProcess(daemon_config(tmp_path, relay.port, extra=extra))
        process.start()
        started.append(process)
        return process

    yield run
    for process in started:
        assert process.stop() == 0, process.log()


# A relay that demands STARTTLS and AUTH, as real submission servers do.
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
