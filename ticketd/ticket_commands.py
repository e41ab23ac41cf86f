"""`ticketd tickets list|show|merge|split` and `ticketd stats`: tickets, one ticket's history,
the two corrections an admin makes (merge, split), and counts per status and category."""

from __future__ import annotations

import argparse
import sys

from ingest.ticket_ops import TicketOperationError, merge, split
from ticketd import views
from ticketd.access import AccessRefused, check_ticket
from ticketd.commands import EX_OK, print_json
from ticketd.state import ReadState, State
from ticketd.stats import print_stats, ticket_stats

LIST_COLUMNS = ["ref", "status", "category", "queue", "assignee", "priority", "customer"]


def list_tickets(state: ReadState, args: argparse.Namespace) -> int:
    rows = views.list_tickets(
        state.db,
        status=args.status,
        queue=args.queue,
        assignee=args.assignee,
        customer=args.customer,
    )
    if args.json:
        print_json(rows)
    else:
        views.print_table([*LIST_COLUMNS, "messages", "subject"], rows)
    return EX_OK


def show_ticket(state: ReadState, args: argparse.Namespace) -> int:
    ticket = views.show_ticket(state.db, args.ref)
    if ticket is None:
        print(f"no ticket {args.ref}", file=sys.stderr)
        return 1
    try:  # the acting agent's queues only; every access audited (ticketd/access.py)
        check_ticket(
            state.db, state.config, state.clock.now(), ticket["ref"], args.agent, "tickets show"
        )
    except AccessRefused as error:
        print(f"ticketd tickets show: {error}", file=sys.stderr)
        return 1
    if args.json:
        print_json(ticket)
    else:
        views.print_ticket(ticket)
    return EX_OK


def merge_tickets(state: State, args: argparse.Namespace) -> int:
    try:
        survivor = merge(state.db, state.clock, args.ref, args.into, state.config.sla)
    except TicketOperationError as error:
        print(f"ticketd tickets merge: {error}", file=sys.stderr)
        return 1
    print(f"{args.ref} merged into {survivor}; its reference now leads there")
    return EX_OK


def split_ticket(state: State, args: argparse.Namespace) -> int:
    try:
        new_ref = split(state.db, state.clock, args.ref, args.positions, state.config.sla)
    except TicketOperationError as error:
        print(f"ticketd tickets split: {error}", file=sys.stderr)
        return 1
    print(new_ref)
    return EX_OK


def stats(state: ReadState, args: argparse.Namespace) -> int:
    counts = ticket_stats(state.db)
    if args.json:
        print_json(counts)
    else:
        print_stats(counts)
    return EX_OK
