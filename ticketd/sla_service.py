"""The daemon's SLA clock: APScheduler 3 ticks every minute, and that is all it does.

What is due lives in ticketd's `sla_events` table, never in APScheduler's job store, so a
restart, a missed minute or a second daemon changes nothing: the next tick finds what is due
and each row goes out once (outbound/sla.py).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Protocol

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from outbound.sla import tick
from outbound.sla_digest import send_digests
from ticketd.metrics import Metrics
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
    scheduler = AsyncIOScheduler(event_loop=asyncio.get_running_loop(), timezone=UTC)
    scheduler.add_job(
        _tick,
        "interval",
        seconds=TICK_SECONDS,
        args=[daemon],
        next_run_time=datetime.now(UTC),  # a first tick at start: catch up after downtime
        max_instances=1,
        coalesce=True,
    )
    scheduler.start()
    try:
        await daemon.stopping.wait()
    finally:
        scheduler.shutdown(wait=False)
