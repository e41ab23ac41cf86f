"""The HTTP API under test: the daemon as a process with `[http] listen`, tokens made by the
real `tickets tokens create`, and requests over a real socket (requests)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
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
