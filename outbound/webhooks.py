"""Posting webhook events (issue 20): signed the Standard Webhooks way, retried with backoff,
once per event and endpoint across daemons.

A delivery is claimed like an outbox row (outbound/sender.py): in one transaction, under `FOR
UPDATE SKIP LOCKED` on PostgreSQL (SQLite serialises writers), its next attempt is pushed one
lease ahead and its owner written, and the POST happens only after that commit; a second
daemon skips it while the lease runs, and takes it up if the lease runs out (a daemon killed
mid-POST: the receiver may then see it twice, with the same `webhook-id` to tell).

Headers (https://www.standardwebhooks.com): `webhook-id` (the event's id, the same on every
retry), `webhook-timestamp` (seconds since the epoch, of this attempt) and `webhook-signature`,
`v1,` and the base64 of HMAC-SHA256 over `id.timestamp.body` with the endpoint's key: the bytes
after `whsec_` base64-decoded, as the Standard Webhooks libraries make and check it, or any
other secret's UTF-8 bytes. A 2xx answer delivers; anything else (a redirect too) is tried again
after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h, then the delivery is failed.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta

import requests
from sqlalchemy import select

from domain.clock import Clock
from storage.db import Database
from storage.models import WEBHOOK_DELIVERED, WEBHOOK_FAILED, WEBHOOK_QUEUED, WebhookDelivery

log = logging.getLogger("ticketd.webhooks")
# The retry schedule of the Standard Webhooks specification: eight tries over about 28 hours.
RETRY_DELAYS = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
TIMEOUT_SECONDS = 15.0
# Longer than one POST can take (connect and read timeouts), so a live sender keeps its claim.
LEASE = timedelta(seconds=4 * TIMEOUT_SECONDS)
ERROR_LIMIT = 500  # characters of an error kept on the row


def signing_key(secret: str) -> bytes:
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except binascii.Error:
            pass  # not base64 after all: the text itself is the key
    return secret.encode("utf-8")


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header's value."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


# url, headers, body, timeout -> the HTTP status; raises requests.RequestException.
Post = Callable[[str, dict[str, str], bytes, float], int]


def post_http(url: str, headers: dict[str, str], body: bytes, timeout: float) -> int:
    response = requests.post(
        url, data=body, headers=headers, timeout=timeout, allow_redirects=False
    )
    response.close()
    return response.status_code


@dataclass(frozen=True)
class Claimed:
    delivery_id: int
    webhook_id: str
    event: str
    url: str
    body: bytes


@dataclass(frozen=True)
class WebhookResult:
    delivery_id: int
    event: str
    url: str
    state: str
    detail: str


class WebhookSender:
    """`secrets` gives the configured endpoints (URL -> secret) at each claim: deliveries for
    an endpoint no longer configured wait, and a SIGHUP's new secret signs the next try."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        secrets: Callable[[], Mapping[str, str]],
        owner: str | None = None,
        post: Post = post_http,
    ) -> None:
        self.db = db
        self.clock = clock
        self.secrets = secrets
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        self.post = post

    def _claim(self, urls: list[str]) -> Claimed | None:
        now = self.clock.now()
        with self.db.transaction() as session:
            row = session.scalar(
                select(WebhookDelivery)
                .where(
                    WebhookDelivery.state == WEBHOOK_QUEUED,
                    WebhookDelivery.next_attempt_at <= now,
                    WebhookDelivery.url.in_(urls),
                )
                .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            if row is None:
                return None
            row.attempts += 1
            row.next_attempt_at = now + LEASE
            row.claimed_by = self.owner
            return Claimed(row.id, row.webhook_id, row.event, row.url, row.body.encode("utf-8"))

    def _post(self, claimed: Claimed, secret: str) -> str | None:
        """None when the endpoint took it; otherwise what went wrong."""
        timestamp = int(self.clock.now().timestamp())
        headers = {
            "content-type": "application/json",
            "user-agent": "ticketd-webhooks",
            "webhook-id": claimed.webhook_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret, claimed.webhook_id, timestamp, claimed.body),
        }
        try:
            status = self.post(claimed.url, headers, claimed.body, TIMEOUT_SECONDS)
        except requests.RequestException as error:
            return f"no answer: {type(error).__name__}: {error}"[:ERROR_LIMIT]
        return None if 200 <= status < 300 else f"HTTP {status}"

    def _record(self, claimed: Claimed, error: str | None) -> WebhookResult:
        now = self.clock.now()
        with self.db.transaction() as session:
            row = session.get(WebhookDelivery, claimed.delivery_id)
            assert row is not None
            row.claimed_by = None
            if error is None:
                row.state, row.delivered_at, row.last_error = WEBHOOK_DELIVERED, now, None
            elif row.attempts <= len(RETRY_DELAYS):
                row.last_error = error
                row.next_attempt_at = now + RETRY_DELAYS[row.attempts - 1]
            else:
                row.state, row.last_error = WEBHOOK_FAILED, error
            detail = error or "delivered"
            return WebhookResult(row.id, row.event, row.url, row.state, detail)

    async def send_one(self) -> WebhookResult | None:
        """One due delivery posted and recorded; None when nothing is due."""
        secrets = dict(self.secrets())
        if not secrets:
            return None
        claimed = await asyncio.to_thread(self._claim, list(secrets))
        if claimed is None:
            return None
        error = await asyncio.to_thread(self._post, claimed, secrets[claimed.url])
        result = await asyncio.to_thread(self._record, claimed, error)
        log.log(
            logging.INFO if error is None else logging.WARNING,
            "webhook=%s %s to %s: %s%s",
            claimed.webhook_id,
            claimed.event,
            claimed.url,
            result.state,
            "" if error is None else f" ({error})",
        )
        return result

    async def send_due(self) -> list[WebhookResult]:
        results: list[WebhookResult] = []
        while (result := await self.send_one()) is not None:
            results.append(result)
        return results
