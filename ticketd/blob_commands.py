"""`ticketd blobs sweep [--dry-run] [--grace-hours N]`: remove blobs nothing refers to.

The daemon runs the same sweep once a day (ticketd/maintenance_service.py); see storage/sweep.py
for where orphans come from and why a blob younger than the grace period is never taken.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import Any

EX_OK = 0
EX_USAGE = 64
Handler = Callable[[argparse.Namespace], int]
StateBody = Callable[[Any, argparse.Namespace], int]


def _sweep(state: Any, args: argparse.Namespace) -> int:
    from storage.sweep import SWEEP_GRACE, sweep

    grace = SWEEP_GRACE if args.grace_hours is None else timedelta(hours=args.grace_hours)
    try:
        report = sweep(state.db, state.blobs, grace=grace, dry_run=args.dry_run)
    except ValueError as error:  # the grace is too short: a commit may be in flight
        print(f"ticketd blobs sweep: --grace-hours {args.grace_hours:g}: {error}", file=sys.stderr)
        return EX_USAGE
    if args.json:
        print(json.dumps(dataclasses.asdict(report), indent=2))
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


def add_blob_commands(commands: Any, with_state: Callable[[StateBody], Handler]) -> None:
    blobs = commands.add_parser("blobs", help="the blob store: remove orphans")
    b_commands = blobs.add_subparsers(dest="blobs_command", required=True, metavar="COMMAND")
    b_sweep = b_commands.add_parser(
        "sweep", help="delete blobs no journal row and no document refers to"
    )
    b_sweep.add_argument("--dry-run", action="store_true", help="list, delete nothing")
    b_sweep.add_argument(
        "--grace-hours",
        type=float,
        default=None,
        help="leave blobs younger than this alone (default 24, at least 1)",
    )
    b_sweep.add_argument("--json", action="store_true")
    b_sweep.set_defaults(handler=with_state(_sweep))
