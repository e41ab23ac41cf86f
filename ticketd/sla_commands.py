"""`ticketd sla tick|digest [--at TIME] [--dry-run] [--json]`, `ticketd sla report [--json]`,
`ticketd sla recompute [--dry-run] [--json]`
and `ticketd survey report [--json]`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from domain.clock import FixedClock

EX_OK = 0
EX_USAGE = 64
Handler = Callable[[argparse.Namespace], int]
StateBody = Callable[[Any, argparse.Namespace], int]


def _at(value: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    # A time without an offset is read as UTC, the zone every stored time is in.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _tick(state: Any, args: argparse.Namespace) -> int:
    from outbound.sla import tick
    from outbound.sla_digest import send_digests

    clock = state.clock
    if args.at is not None:
        moment = _at(args.at)
        if moment is None:
            print(
                f"ticketd sla {args.sla_command}: --at {args.at!r} is not an ISO 8601 time",
                file=sys.stderr,
            )
            return EX_USAGE
        clock = FixedClock(moment)
    # `sla digest` is the daily digest alone; `sla tick` the reminders and escalations (the
    # daemon's minute tick runs both).
    run = send_digests if args.sla_command == "digest" else tick
    # Decided as of --at, but what it mails goes now: nobody waits until TIME for a reminder.
    actions = run(
        state.db,
        state.config,
        clock,
        state.templates,
        dry_run=args.dry_run,
        outbox_clock=state.clock,
    )
    if args.json:
        print(json.dumps([a.as_dict() for a in actions], ensure_ascii=False, indent=2))
        return EX_OK
    for action in actions:
        print(f"{action.ref} {action.kind} {action.target} ({action.deadline}): {action.outcome}")
    events = "1 due SLA event" if len(actions) == 1 else f"{len(actions)} due SLA events"
    print(f"{events} {'would be ' if args.dry_run else ''}settled")
    return EX_OK


def _report(state: Any, args: argparse.Namespace) -> int:
    from outbound.sla import report

    rows = report(state.db, state.config, state.clock)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return EX_OK
    for row in rows:
        print(
            f"{row['queue']}: {row['open']} open, {len(row['at_risk'])} at risk"
            f" ({' '.join(row['at_risk']) or '-'}), {len(row['breached'])} breached"
            f" ({' '.join(row['breached']) or '-'})"
        )
    return EX_OK


def _recompute(state: Any, args: argparse.Namespace) -> int:
    from outbound.sla_recompute import recompute

    moved = recompute(state.db, state.config.sla, dry_run=args.dry_run)
    if args.json:
        print(json.dumps([m.as_dict() for m in moved], ensure_ascii=False, indent=2))
        return EX_OK
    for m in moved:
        before = m.before.isoformat() if m.before else "-"
        after = m.after.isoformat() if m.after else "-"
        print(f"{m.ref} {m.target}: {before} -> {after}")
    verb = "would move" if args.dry_run else "moved"
    print(f"{len(moved)} deadline(s) {verb}")
    return EX_OK


def _survey_report(state: Any, args: argparse.Namespace) -> int:
    from outbound.survey import survey_report

    report = survey_report(state.db)
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
        return EX_OK
    for name in ("queue", "agent"):
        for row in report[f"per_{name}"]:
            print(f"{name} {row[name]}: {row['average']:.2f} average of {row['count']} answer(s)")
    if not report["per_queue"]:
        print("no survey answers yet")
    return EX_OK


def add_sla_commands(
    commands: Any,
    with_state: Callable[[StateBody], Handler],
    reading: Callable[[StateBody], Handler] | None = None,
) -> None:
    """`reading` wraps the commands that only read (the reports): they create nothing."""
    reading = reading or with_state
    sla = commands.add_parser("sla", help="the SLA clock: reminders and escalations")
    s_commands = sla.add_subparsers(dest="sla_command", required=True, metavar="COMMAND")
    s_tick = s_commands.add_parser("tick", help="one pass of the SLA clock")
    s_tick.add_argument("--at", help="as if it were this ISO 8601 time (UTC without an offset)")
    s_tick.add_argument("--dry-run", action="store_true", help="show what would be sent")
    s_tick.add_argument("--json", action="store_true")
    s_tick.set_defaults(handler=with_state(_tick))
    s_digest = s_commands.add_parser("digest", help="the daily digest per queue, when due")
    s_digest.add_argument("--at", help="as if it were this ISO 8601 time (UTC without an offset)")
    s_digest.add_argument("--dry-run", action="store_true", help="show what would be sent")
    s_digest.add_argument("--json", action="store_true")
    s_digest.set_defaults(handler=with_state(_tick))
    s_report = s_commands.add_parser("report", help="at-risk and breached tickets per queue")
    s_report.add_argument("--json", action="store_true")
    s_report.set_defaults(handler=reading(_report))
    s_recompute = s_commands.add_parser(
        "recompute", help="recompute open tickets' deadlines from the current [sla]"
    )
    s_recompute.add_argument("--dry-run", action="store_true", help="show what would move")
    s_recompute.add_argument("--json", action="store_true")
    s_recompute.set_defaults(handler=with_state(_recompute))
    survey = commands.add_parser("survey", help="the satisfaction survey")
    v_commands = survey.add_subparsers(dest="survey_command", required=True, metavar="COMMAND")
    v_report = v_commands.add_parser("report", help="average score per queue and agent")
    v_report.add_argument("--json", action="store_true")
    v_report.set_defaults(handler=reading(_survey_report))
