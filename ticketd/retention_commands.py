"""`ticketd retention run [--at TIME] [--dry-run] [--json]`: one pass of `[retention]`.

The daemon runs the same pass once a day (ticketd/maintenance_service.py); ticketd/retention.py
says what each copy keeps and for how long.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from ticketd.commands import EX_OK, EX_USAGE, parse_time, print_json
from ticketd.erasure import resume_erasures
from ticketd.retention import run_retention
from ticketd.state import State


def run_pass(state: State, args: argparse.Namespace) -> int:
    now = state.clock.now()
    if args.at is not None:
        moment = parse_time(args.at)
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
        print_json(dataclasses.asdict(report))
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
