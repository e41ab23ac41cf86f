"""The daemon's daily maintenance on APScheduler 3: the orphan blob sweep (storage/sweep.py).

Every daemon sweeps, a first time a few minutes after it starts (so a daemon restarted often
still sweeps) and then once a day. Several daemons sweeping one folder at once is safe: each file
is set aside by one of them and the others find it gone. Nothing lives in APScheduler's job store,
so a restart only moves the next sweep.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Protocol

from storage.sweep import sweep
from ticketd.scheduling import add_periodic, run_until_stopped
from ticketd.state import State

log = logging.getLogger("ticketd.maintenance")
SWEEP_EVERY = timedelta(days=1)
FIRST_SWEEP_AFTER = timedelta(minutes=10)


class _Daemon(Protocol):
    state: State
    stopping: asyncio.Event


async def sweep_blobs(daemon: _Daemon) -> None:
    state = daemon.state
    try:
        report = await asyncio.to_thread(sweep, state.db, state.blobs)
    except Exception:
        log.exception("blob sweep failed; orphans wait for the next one")
        return
    log.info(
        "blob sweep: %d orphan blob(s) removed (%d bytes), %d stale temporary file(s)",
        len(report.removed),
        report.removed_bytes,
        report.temporary,
    )


async def run_maintenance(daemon: _Daemon) -> None:
    await run_until_stopped(
        daemon.stopping,
        lambda scheduler: add_periodic(
            scheduler, sweep_blobs, SWEEP_EVERY, FIRST_SWEEP_AFTER, daemon
        ),
    )
