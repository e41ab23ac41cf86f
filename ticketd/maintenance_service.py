"""The daemon's daily maintenance on APScheduler 3: the orphan blob sweep (storage/sweep.py) and
the retention pass (`[retention]`, ticketd/retention.py).

Every daemon sweeps, a first time a few minutes after it starts (so a daemon restarted often
still sweeps) and then once a day. Several daemons sweeping one folder at once is safe: each file
is set aside by one of them and the others find it gone. Nothing lives in APScheduler's job store,
so a restart only moves the next sweep. The retention pass runs 10 seconds after start (to catch
up after downtime) and then once a day; what is due is read from the rows each time, and a row
another daemon already changed is left as it is, so two daemons never strip a copy twice.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any, Protocol

from storage.sweep import sweep
from ticketd.erasure import resume_erasures
from ticketd.retention import run_retention
from ticketd.scheduling import add_periodic, run_until_stopped
from ticketd.state import State

log = logging.getLogger("ticketd.maintenance")
SWEEP_EVERY = timedelta(days=1)
FIRST_SWEEP_AFTER = timedelta(minutes=10)
RETENTION_EVERY = timedelta(days=1)
FIRST_RETENTION_AFTER = timedelta(seconds=10)


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


async def apply_retention(daemon: _Daemon) -> None:
    state = daemon.state  # read each time: a SIGHUP may have replaced the configuration
    try:
        now = state.clock.now()
        resumed = await asyncio.to_thread(resume_erasures, state.db, state.config, state.blobs, now)
        report = await asyncio.to_thread(run_retention, state.db, state.blobs, state.config, now)
    except Exception:
        log.exception("retention pass failed; what is due stays due for the next one")
        return
    for pseudonym in resumed:
        log.info("an interrupted erasure finished: %s", pseudonym)
    log.info(
        "retention: %d raw message(s) and %d outbox mail(s) keep their text only, "
        "%d closed ticket(s) emptied, %d removed blob(s) deleted",
        len(report.raw_stripped),
        len(report.outbox_changed),
        len(report.tickets),
        report.blobs_deleted,
    )


def _add_jobs(scheduler: Any, daemon: _Daemon) -> None:
    add_periodic(scheduler, sweep_blobs, SWEEP_EVERY, FIRST_SWEEP_AFTER, daemon)
    add_periodic(scheduler, apply_retention, RETENTION_EVERY, FIRST_RETENTION_AFTER, daemon)


async def run_maintenance(daemon: _Daemon) -> None:
    await run_until_stopped(daemon.stopping, lambda scheduler: _add_jobs(scheduler, daemon))
