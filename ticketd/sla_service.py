"""The daemon's SLA clock: APScheduler 3 ticks every minute, and that is all it does.

What is due lives in ticketd's `sla_events` table, never in APScheduler's job store, so a
restart, a missed minute or a second daemon changes nothing: the next tick finds what is due
and each row goes out once (outbound/sla.py).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Protocol

from outbound.sla import tick
from outbound.sla_digest import send_digests
from ticketd.metrics import Metrics
from ticketd.scheduling import add_periodic, run_until_stopped
from ticketd.state import State

log = logging.getLogger("ticketd.sla")
TICK_SECONDS = 60


class _Daemon(Protocol):
    state: State
    stopping: asyncio.Event
    mail_ready: asyncio.Event
    metrics: Metrics


async def _tick(daemon: _Daemon) -> None:
    state = daemon.state  # read each time: a SIGHUP may have replaced config and templates
    try:
        actions = await asyncio.to_thread(
            tick, state.db, state.config, state.clock, state.templates
        )
        # The daily digests ride on the minute tick: after the first tick of the day that
        # sent them, this is one small query (outbound/sla_digest.py).
        actions += await asyncio.to_thread(
            send_digests, state.db, state.config, state.clock, state.templates
        )
    except Exception:
        log.exception("SLA tick failed; what is due stays due for the next tick")
        return
    daemon.metrics.sla_settled(actions)
    sent = [a for a in actions if a.recipients]
    if actions:
        log.info("SLA tick: %d due, %d mails queued", len(actions), len(sent))
    if sent:
        daemon.mail_ready.set()


async def run_sla_clock(daemon: _Daemon) -> None:
    if not daemon.state.config.sla.enabled:
        return
    # A first tick at start: catch up after downtime.
    await run_until_stopped(
        daemon.stopping,
        lambda scheduler: add_periodic(
            scheduler, _tick, timedelta(seconds=TICK_SECONDS), timedelta(0), daemon
        ),
    )
