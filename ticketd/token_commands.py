"""`ticketd tokens create --agent EMAIL [--name TEXT] | --admin`, `tokens list [--json]` and
`tokens revoke ID`: the bearer tokens of the HTTP API (web/tokens.py)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from ticketd.views import print_table
from web.tokens import TokenError, create_token, list_tokens, revoke_token

EX_OK = 0
EX_DATAERR = 65
Handler = Callable[[argparse.Namespace], int]
StateBody = Callable[[Any, argparse.Namespace], int]


def _create(state: Any, args: argparse.Namespace) -> int:
    agent = None if args.admin else args.agent
    try:
        token_id, token = create_token(state.db, state.config, state.clock.now(), agent, args.name)
    except TokenError as error:
        print(f"ticketd tokens create: {error}", file=sys.stderr)
        return EX_DATAERR
    whose = "an admin token (every ticket)" if agent is None else f"a token for {agent}"
    print(f"token {token_id}: {whose}; shown this once, only its hash is kept:", file=sys.stderr)
    print(token)
    return EX_OK


def _list(state: Any, args: argparse.Namespace) -> int:
    rows = list_tokens(state.db)
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
    else:
        columns = ["id", "agent", "name", "created_at", "last_used_at", "revoked_at"]
        print_table(columns, [{**row, "agent": row["agent"] or "(admin)"} for row in rows])
    return EX_OK


def _revoke(state: Any, args: argparse.Namespace) -> int:
    if not revoke_token(state.db, args.id, state.clock.now()):
        print(f"ticketd tokens revoke: no token {args.id}", file=sys.stderr)
        return EX_DATAERR
    print(f"token {args.id} revoked: requests with it get 401 from now on")
    return EX_OK


def add_token_commands(
    commands: Any,
    with_state: Callable[[StateBody], Handler],
    reading: Callable[[StateBody], Handler],
) -> None:
    tokens = commands.add_parser("tokens", help="bearer tokens of the HTTP API")
    t_commands = tokens.add_subparsers(dest="tokens_command", required=True, metavar="COMMAND")
    create = t_commands.add_parser("create", help="a new token, printed once")
    who = create.add_mutually_exclusive_group(required=True)
    who.add_argument("--agent", metavar="EMAIL", help="acts as this agent: their queues only")
    who.add_argument("--admin", action="store_true", help="sees and changes every ticket")
    create.add_argument("--name", help="what the token is for (shown by `tokens list`)")
    create.set_defaults(handler=with_state(_create))
    t_list = t_commands.add_parser("list", help="the tokens (never the tokens themselves)")
    t_list.add_argument("--json", action="store_true")
    t_list.set_defaults(handler=reading(_list))
    revoke = t_commands.add_parser("revoke", help="a token stops working at once")
    revoke.add_argument("id", type=int)
    revoke.set_defaults(handler=with_state(_revoke))
