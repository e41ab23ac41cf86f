"""`ticketd sla tick|digest [--at TIME] [--dry-run] [--json]`, `ticketd sla report [--json]`,
`ticketd sla recompute [--dry-run] [--json]`
and `ticketd survey report [--json]`."""

from __future__ import annotations

import argparse
import sys

from domain.clock import FixedClock
from outbound.sla import SlaAction, report, tick
from outbound.sla_digest import send_digests
from outbound.sla_recompute import recompute
from outbound.survey import survey_report
from ticketd.commands import EX_OK, EX_USAGE, parse_time, print_json
from ticketd.state import ReadState, State


def sla_tick(state: State, args: argparse.Namespace) -> int:
    """The reminders and escalations due (the daemon's minute tick runs these and the digest)."""
    return _settle(state, args, "tick")


def sla_digest(state: State, args: argparse.Namespace) -> int:
    """The daily digest per queue, alone."""
    return _settle(state, args, "digest")


def _settle(state: State, args: argparse.Namespace, command: str) -> int:
    clock = state.clock
    if args.at is not None:
        moment = parse_time(args.at)
        if moment is None:
            print(
                f"ticketd sla {command}: --at {args.at!r} is not an ISO 8601 time",
                file=sys.stderr,
            )
            return EX_USAGE
        clock = FixedClock(moment)
    run = send_digests if command == "digest" else tick
    # Decided as of --at, but what it mails goes now: nobody waits until TIME for a reminder.
    actions: list[SlaAction] = run(
        state.db,
        state.config,
        clock,
        state.templates,
        dry_run=args.dry_run,
        outbox_clock=state.clock,
    )
    if args.json:
        print_json([a.as_dict() for a in actions])
        return EX_OK
    for action in actions:
        print(f"{action.ref} {action.kind} {action.target} ({action.deadline}): {action.outcome}")
    events = "1 due SLA event" if len(actions) == 1 else f"{len(actions)} due SLA events"
    print(f"{events} {'would be ' if args.dry_run else ''}settled")
    return EX_OK


def sla_report(state: ReadState, args: argparse.Namespace) -> int:
    rows = report(state.db, state.config, state.clock)
    if args.json:
        print_json(rows)
        return EX_OK
    for row in rows:
        print(
            f"{row['queue']}: {row['open']} open, {len(row['at_risk'])} at risk"
            f" ({' '.join(row['at_risk']) or '-'}), {len(row['breached'])} breached"
            f" ({' '.join(row['breached']) or '-'})"
        )
    return EX_OK


def sla_recompute(state: State, args: argparse.Namespace) -> int:
    moved = recompute(state.db, state.config.sla, dry_run=args.dry_run)
    if args.json:
        print_json([m.as_dict() for m in moved])
        return EX_OK
    for m in moved:
        before = m.before.isoformat() if m.before else "-"
        after = m.after.isoformat() if m.after else "-"
        print(f"{m.ref} {m.target}: {before} -> {after}")
    verb = "would move" if args.dry_run else "moved"
    print(f"{len(moved)} deadline(s) {verb}")
    return EX_OK


def survey(state: ReadState, args: argparse.Namespace) -> int:
    answers = survey_report(state.db)
    if args.json:
        print_json(answers)
        return EX_OK
    for name in ("queue", "agent"):
        for row in answers[f"per_{name}"]:
            print(f"{name} {row[name]}: {row['average']:.2f} average of {row['count']} answer(s)")
    if not answers["per_queue"]:
        print("no survey answers yet")
    return EX_OK
