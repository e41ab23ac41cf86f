"""A webhook endpoint on loopback for the tests: it verifies every request the way a Standard
Webhooks library does (its own code, not ticketd's), records what it got, and can be down (not
listening) or answer an error for a while."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from tests.helpers import free_port

SECRET = "whsec_" + base64.b64encode(b"ticketd-test-webhook-key-0123456789").decode()


@dataclass(frozen=True)
class Received:
    webhook_id: str
    timestamp: int
    body: dict[str, Any]

    @property
    def type(self) -> str:
        return str(self.body["type"])


def expected_signature(secret: str, webhook_id: str, timestamp: str, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


class Receiver:
    def __init__(self, secret: str = SECRET, max_skew: float | None = None) -> None:
        self.secret = secret
        self.max_skew = max_skew  # seconds the timestamp may be off the real clock
        self.port = free_port()
        self.status = 204  # what it answers
        self.received: list[Received] = []
        self.answered: list[int] = []  # every request's answer, in order
        self.forged: list[str] = []  # requests whose signature or timestamp was wrong
        self.lock = threading.Lock()
        self.server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/ticketd"

    def start(self) -> None:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = receiver.take(dict(self.headers.items()), body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def take(self, headers: dict[str, str], body: bytes) -> int:
        lower = {k.lower(): v for k, v in headers.items()}
        webhook_id = lower.get("webhook-id", "")
        timestamp = lower.get("webhook-timestamp", "")
        want = expected_signature(self.secret, webhook_id, timestamp, body)
        got = [s.partition(",")[2] for s in lower.get("webhook-signature", "").split()]
        fresh = self.max_skew is None or abs(time.time() - int(timestamp or 0)) <= self.max_skew
        with self.lock:
            if want not in got or not fresh or lower.get("content-type") != "application/json":
                self.forged.append(webhook_id)
                self.answered.append(401)
                return 401
            self.answered.append(self.status)
            if 200 <= self.status < 300:
                self.received.append(Received(webhook_id, int(timestamp), json.loads(body)))
            return self.status

    def events(self) -> list[Received]:
        with self.lock:
            return list(self.received)

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.events()) >= count:
                return self.events()
            time.sleep(0.1)
        answers = Counter(self.answered)
        raise AssertionError(
            f"received {len(self.events())} webhooks, expected {count}; answers {dict(answers)}"
        )
