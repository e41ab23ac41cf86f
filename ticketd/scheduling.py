"""The one way the daemon runs a periodic job: APScheduler 3 on the daemon's event loop.

Each service (the SLA clock, KYC housekeeping, the blob sweep) adds its jobs and runs until the
daemon stops. Jobs never overlap themselves (`max_instances=1`) and a run missed while the
daemon was busy or asleep happens once, not once per missed interval (`coalesce`). Nothing lives
in APScheduler's job store: a restart only moves the next run, which is why every job either
runs at start or soon after it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler


def add_periodic(
    scheduler: Any,
    job: Callable[..., Awaitable[None]],
    every: timedelta,
    first_after: timedelta,
    *args: Any,
    job_id: str | None = None,
) -> None:
    scheduler.add_job(
        job,
        "interval",
        seconds=every.total_seconds(),
        args=list(args),
        id=job_id,
        next_run_time=datetime.now(UTC) + first_after,
        max_instances=1,
        coalesce=True,
    )


async def run_until_stopped(stopping: asyncio.Event, add_jobs: Callable[[Any], None]) -> None:
    """A scheduler with the jobs `add_jobs` adds, running until `stopping` is set."""
    scheduler = AsyncIOScheduler(event_loop=asyncio.get_running_loop(), timezone=UTC)
    add_jobs(scheduler)
    scheduler.start()
    try:
        await stopping.wait()
    finally:
        scheduler.shutdown(wait=False)
