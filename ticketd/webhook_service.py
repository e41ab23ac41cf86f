"""The daemon's webhook loop (issue 20): posts the due deliveries of `[[webhooks]]`.

The endpoints and their secrets are read from the running configuration at each claim, so a
SIGHUP that adds, removes or re-keys an endpoint applies to the next delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from sqlalchemy.exc import OperationalError

from outbound.webhooks import WebhookSender
from ticketd.state import State

log = logging.getLogger("ticketd.webhooks")
IDLE_POLL_SECONDS = 1.0  # how often to look for events other processes wrote
OUTAGE_POLL_SECONDS = 5.0


class _Daemon(Protocol):
    state: State
    stopping: asyncio.Event

    def beat(self, name: str) -> None: ...


async def run_webhooks(daemon: _Daemon) -> None:
    state = daemon.state
    sender = WebhookSender(
        state.db, state.clock, lambda: {h.url: h.secret for h in daemon.state.config.webhooks}
    )
    outage = False
    while not daemon.stopping.is_set():
        daemon.beat("webhooks")
        try:
            result = await sender.send_one()
        except OperationalError as error:
            if not outage:
                log.error("database unavailable for webhooks, events wait: %s", error)
            outage = True
            await _pause(daemon, OUTAGE_POLL_SECONDS)
            continue
        outage = False
        if result is None:
            await _pause(daemon, IDLE_POLL_SECONDS)


async def _pause(daemon: _Daemon, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(daemon.stopping.wait(), seconds)
