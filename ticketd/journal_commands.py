"""`ticketd journal list`, `ticketd quarantine list|retry|dismiss` and `ticketd outbox list`:
what was received and what became of it, what could not be processed, and the mail going out."""

from __future__ import annotations

import argparse
import getpass
import sys

from ticketd import views
from ticketd.commands import EX_OK, print_json
from ticketd.journal_view import COLUMNS, list_journal
from ticketd.state import ReadState, State


def journal_list(state: ReadState, args: argparse.Namespace) -> int:
    rows = list_journal(state.db, state=args.state, limit=args.limit)
    if args.json:
        print_json(rows)
    else:
        views.print_table(COLUMNS, rows)
    return EX_OK


def quarantine_list(state: ReadState, args: argparse.Namespace) -> int:
    rows = views.list_quarantine(state.db)
    if args.json:
        print_json(rows)
    else:
        views.print_table(["id", "received_at", "source", "attempts", "step", "reason"], rows)
    return EX_OK


def quarantine_retry(state: State, args: argparse.Namespace) -> int:
    actor = f"{getpass.getuser()} (command line)"
    if not views.requeue(state.db, args.id, actor, state.clock.now()):
        print(f"no quarantined message {args.id}", file=sys.stderr)
        return 1
    print(f"message {args.id} is pending again")
    if args.now:
        state.isolate()
        for result in state.worker.drain():
            print(f"message {result.journal_id} {result.state}: {result.detail}")
    return EX_OK


def quarantine_dismiss(state: State, args: argparse.Namespace) -> int:
    actor = args.actor or f"{getpass.getuser()} (command line)"
    before = views.dismiss(state.db, state.clock, args.id, args.reason, actor)
    if before is None:
        print(f"no quarantined message {args.id}", file=sys.stderr)
        return 1
    print(f"message {args.id} dismissed ({before}); `health` no longer counts it")
    return EX_OK


def outbox_list(state: ReadState, args: argparse.Namespace) -> int:
    rows = views.list_outbox(state.db)
    if args.json:
        print_json(rows)
    else:
        views.print_table(["id", "state", "kind", "to", "subject", "attempts", "last_error"], rows)
    return EX_OK
