"""The HTTP API under test: the daemon as a process with `[http] listen`, tokens made by the
real `tickets tokens create`, and requests over a real socket (requests)."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.daemon import DaemonProcess, Relay
from tests.helpers import free_port, write_config

PAYMENT_AGENT = "ayse@destek.example.com"
GENERAL_AGENT = "mert@destek.example.com"
IDENTITY_AGENT = "kyc@destek.example.com"
TEAM = f"""
[[queues]]
name = "odeme"
categories = ["payment"]

[[queues]]
name = "kimlik"
categories = ["kyc"]

[[queues]]
name = "genel"
categories = ["other", "account", "bonus", "technical", "complaint"]

[[agents]]
email = "{PAYMENT_AGENT}"
name = "Ayşe Yılmaz"
queues = ["odeme"]

[[agents]]
email = "{GENERAL_AGENT}"
name = "Mert Demir"
queues = ["genel"]

[[agents]]
email = "{IDENTITY_AGENT}"
name = "Kader Kimlik"
queues = ["kimlik"]
"""


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


@dataclass
class ApiDesk:
    daemon: DaemonProcess
    http_port: int

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def token(self, *who: str) -> str:
        """`ticketd tokens create` with these options (`--agent EMAIL`, `--admin`)."""
        config = str(self.daemon.config_path)
        result = subprocess.run(
            [sys.executable, "-m", "ticketd.cli", "--config", config, "tokens", "create", *who],
            capture_output=True,
            check=True,
            text=True,
        )
        return result.stdout.strip()

    def call(self, method: str, path: str, token: str | None, **options: Any) -> Any:
        headers = {**options.pop("headers", {})}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return requests.request(method, self.base + path, headers=headers, timeout=30, **options)

    def get(self, path: str, token: str | None, **params: Any) -> Any:
        return self.call("GET", path, token, params=params)


def start_api_desk(
    folder: Path, relay: Relay, extra: str = "", database: str | None = None
) -> ApiDesk:
    http_port = free_port()
    text = f'[http]\nlisten = "127.0.0.1:{http_port}"\npublic_url = "https://destek.example.com"\n'
    smtp_out = f'[smtp_out]\nrelay = "127.0.0.1:{relay.port}"\n'
    config = write_config(folder, database, extra=smtp_out + text + TEAM + extra)
    daemon = DaemonProcess(config)
    daemon.start(timeout=60)  # a loaded machine: the parsing process takes seconds to start
    wait_for_port(http_port)
    return ApiDesk(daemon, http_port)


@pytest.fixture
def api_desk(tmp_path: Path, relay: Relay) -> Iterator[ApiDesk]:
    desk = start_api_desk(tmp_path, relay)
    yield desk
    if desk.daemon.process is not None:
        assert desk.daemon.stop() == 0, desk.daemon.log()


ADMIN = "guvenlik@destek.example.com"
SIGN_IN_LINK = re.compile(r"https?://\S+/console/link\?t=\S+")


def with_admin(config: Path) -> Path:
    """The configuration with ADMIN in `[desk] admins`."""
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("[desk]\n", f'[desk]\nadmins = ["{ADMIN}"]\n', 1), "utf-8")
    return config


def sign_in_links(relay: Relay, address: str) -> list[str]:
    found = []
    for mail in relay.handler.messages():
        if parseaddr(str(mail["To"]))[1] != address or not isinstance(mail, EmailMessage):
            continue
        body = mail.get_body(preferencelist=("plain",))
        match = SIGN_IN_LINK.search(body.get_content()) if isinstance(body, EmailMessage) else None
        if match:
            found.append(match.group())
    return found


def mailed_sign_in_link(relay: Relay, address: str, before: int, timeout: float = 30) -> str:
    """The sign-in link of the mail after the `before` ones `address` had."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        links = sign_in_links(relay, address)
        if len(links) > before:
            return links[before]
        time.sleep(0.05)
    raise AssertionError(f"no sign-in link reached {address} at the relay")


def console_session(base: str, relay: Relay, address: str) -> requests.Session:
    """A browser's session signed in as `address` by the mailed link (without a browser)."""
    before = len(sign_in_links(relay, address))
    browser = requests.Session()
    assert browser.post(base + "/console/sign-in", data={"address": address}, timeout=30).ok
    token = mailed_sign_in_link(relay, address, before).partition("?t=")[2]
    answer = browser.post(
        base + "/console/link", data={"t": token}, timeout=30, allow_redirects=False
    )
    assert answer.status_code == 303, answer.text
    return browser
