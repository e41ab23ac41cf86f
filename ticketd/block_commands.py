"""`ticketd block ADDRESS|DOMAIN [--reason TEXT]`, `ticketd unblock ADDRESS|DOMAIN` and
`ticketd blocked list [--json]`: the senders whose mail is ignored (ingest/blocking.py)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from ingest.blocking import block, blocked_list, pattern_of, unblock

EX_OK = 0
EX_DATAERR = 65
EX_USAGE = 64
Handler = Callable[[argparse.Namespace], int]
StateBody = Callable[[Any, argparse.Namespace], int]


def _pattern(command: str, text: str) -> str | None:
    pattern = pattern_of(text)
    if pattern is None:
        print(
            f"ticketd {command}: {text!r} is neither an email address nor a domain", file=sys.stderr
        )
    return pattern


def _block(state: Any, args: argparse.Namespace) -> int:
    pattern = _pattern("block", args.sender)
    if pattern is None:
        return EX_USAGE
    with state.db.transaction() as session:
        added = block(session, pattern, args.reason, state.clock.now())
    print(f"{pattern}: blocked" if added else f"{pattern}: already blocked")
    return EX_OK


def _unblock(state: Any, args: argparse.Namespace) -> int:
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


def _list(state: Any, args: argparse.Namespace) -> int:
    with state.db.read() as session:
        rows = blocked_list(session)
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
    for row in [] if args.json else rows:
        print(f"{row['pattern']}\t{row['since']}\t{row['reason'] or ''}")
    return EX_OK


def add_block_commands(commands: Any, with_state: Callable[[StateBody], Handler]) -> None:
    blocking = commands.add_parser("block", help="ignore mail from an address or a domain")
    blocking.add_argument("sender", metavar="ADDRESS|DOMAIN")
    blocking.add_argument("--reason", help="why, for `blocked list`")
    blocking.set_defaults(handler=with_state(_block))
    unblocking = commands.add_parser("unblock", help="take an address or a domain off the list")
    unblocking.add_argument("sender", metavar="ADDRESS|DOMAIN")
    unblocking.set_defaults(handler=with_state(_unblock))
    blocked = commands.add_parser("blocked", help="the blocked senders")
    b_commands = blocked.add_subparsers(dest="blocked_command", required=True, metavar="COMMAND")
    b_list = b_commands.add_parser("list")
    b_list.add_argument("--json", action="store_true")
    b_list.set_defaults(handler=with_state(_list))
