"""`ticketd block ADDRESS|DOMAIN [--reason TEXT]`, `ticketd unblock ADDRESS|DOMAIN` and
`ticketd blocked list [--json]`: the senders whose mail is ignored (ingest/blocking.py)."""

from __future__ import annotations

import argparse
import sys

from ingest.blocking import block, blocked_list, pattern_of, unblock
from ticketd.commands import EX_DATAERR, EX_OK, EX_USAGE, print_json
from ticketd.state import ReadState, State


def _pattern(command: str, text: str) -> str | None:
    pattern = pattern_of(text)
    if pattern is None:
        print(
            f"ticketd {command}: {text!r} is neither an email address nor a domain", file=sys.stderr
        )
    return pattern


def block_sender(state: State, args: argparse.Namespace) -> int:
    pattern = _pattern("block", args.sender)
    if pattern is None:
        return EX_USAGE
    with state.db.transaction() as session:
        added = block(session, pattern, args.reason, state.clock.now())
    print(f"{pattern}: blocked" if added else f"{pattern}: already blocked")
    return EX_OK


def unblock_sender(state: State, args: argparse.Namespace) -> int:
    pattern = _pattern("unblock", args.sender)
    if pattern is None:
        return EX_USAGE
    with state.db.transaction() as session:
        removed = unblock(session, pattern)
    if not removed:
        print(f"ticketd unblock: {pattern} is not blocked", file=sys.stderr)
        return EX_DATAERR
    print(f"{pattern}: unblocked")
    return EX_OK


def list_blocked(state: ReadState, args: argparse.Namespace) -> int:
    with state.db.read() as session:
        rows = blocked_list(session)
    if args.json:
        print_json(rows)
        return EX_OK
    for row in rows:
        print(f"{row['pattern']}\t{row['since']}\t{row['reason'] or ''}")
    return EX_OK
