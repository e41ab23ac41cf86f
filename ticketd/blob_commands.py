"""`ticketd blobs sweep [--dry-run] [--grace-hours N]`: remove blobs nothing refers to.

The daemon runs the same sweep once a day (ticketd/maintenance_service.py); see storage/sweep.py
for where orphans come from and why a blob younger than the grace period is never taken.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from datetime import timedelta

from storage.sweep import SWEEP_GRACE, sweep
from ticketd.commands import EX_OK, EX_USAGE, print_json
from ticketd.state import State


def sweep_blobs(state: State, args: argparse.Namespace) -> int:
    grace = SWEEP_GRACE if args.grace_hours is None else timedelta(hours=args.grace_hours)
    try:
        report = sweep(state.db, state.blobs, grace=grace, dry_run=args.dry_run)
    except ValueError as error:  # the grace is too short: a commit may be in flight
        print(f"ticketd blobs sweep: --grace-hours {args.grace_hours:g}: {error}", file=sys.stderr)
        return EX_USAGE
    if args.json:
        print_json(dataclasses.asdict(report))
        return EX_OK
    for name in report.removed:
        print(name)
    verb = "would be removed" if args.dry_run else "removed"
    print(
        f"{len(report.removed)} orphan blob(s) {verb} ({report.removed_bytes} bytes); "
        f"{report.referenced} referenced, {report.young} younger than {grace} left alone"
        + (f", {report.temporary} stale temporary file(s)" if report.temporary else "")
        + (f", {report.restored} put back" if report.restored else "")
    )
    return EX_OK
