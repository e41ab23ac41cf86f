"""`ticketd retention run [--at TIME] [--dry-run] [--json]`: one pass of `[retention]`.

The daemon runs the same pass once a day (ticketd/maintenance_service.py); ticketd/retention.py
says what each copy keeps and for how long.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable
from typing import Any

from ticketd.sla_commands import _at

EX_OK = 0
EX_USAGE = 64
Handler = Callable[[argparse.Namespace], int]
StateBody = Callable[[Any, argparse.Namespace], int]


def _run(state: Any, args: argparse.Namespace) -> int:
    from ticketd.erasure import resume_erasures
    from ticketd.retention import run_retention

    now = state.clock.now()
    if args.at is not None:
        moment = _at(args.at)
        if moment is None:
            print(
                f"ticketd retention run: --at {args.at!r} is not an ISO 8601 time", file=sys.stderr
            )
            return EX_USAGE
        now = moment
    resumed = [] if args.dry_run else resume_erasures(state.db, state.config, state.blobs, now)
    report = run_retention(state.db, state.blobs, state.config, now, dry_run=args.dry_run)
    for pseudonym in resumed:
        print(f"an interrupted erasure finished: {pseudonym}")
    if args.json:
        print(json.dumps(dataclasses.asdict(report), indent=2))
        return EX_OK
    verb = "would keep" if args.dry_run else "keep"
    print(f"{len(report.raw_stripped)} raw message(s) {verb} their text only")
    print(f"{len(report.outbox_changed)} outbox mail(s) {verb} their text only")
    removed = "would be removed" if args.dry_run else "removed"
    print(f"{len(report.tickets)} closed ticket(s): text and raw copies {removed}")
    if not args.dry_run and (report.blobs_deleted or report.temporary):
        print(
            f"{report.blobs_deleted} removed blob(s) deleted, {report.temporary} temporary file(s)"
        )
    return EX_OK


def add_retention_commands(commands: Any, with_state: Callable[[StateBody], Handler]) -> None:
    retention = commands.add_parser("retention", help="retention of raw mail and closed tickets")
    r_commands = retention.add_subparsers(
        dest="retention_command", required=True, metavar="COMMAND"
    )
    r_run = r_commands.add_parser("run", help="one pass of [retention] (the daemon runs it daily)")
    r_run.add_argument("--at", help="as if at this ISO 8601 time")
    r_run.add_argument(
        "--dry-run", action="store_true", help="say what would change, change nothing"
    )
    r_run.add_argument("--json", action="store_true")
    r_run.set_defaults(handler=with_state(_run))
