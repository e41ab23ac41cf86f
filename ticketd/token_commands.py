"""`ticketd tokens create --agent EMAIL [--name TEXT] | --admin`, `tokens list [--json]` and
`tokens revoke ID`: the bearer tokens of the HTTP API (web/tokens.py)."""

from __future__ import annotations

import argparse
import sys

from ticketd.commands import EX_DATAERR, EX_OK, print_json
from ticketd.state import ReadState, State
from ticketd.views import print_table
from web.tokens import TokenError, create_token, list_tokens, revoke_token


def create(state: State, args: argparse.Namespace) -> int:
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


def list_all(state: ReadState, args: argparse.Namespace) -> int:
    rows = list_tokens(state.db)
    if args.json:
        print_json(rows)
    else:
        columns = ["id", "agent", "name", "created_at", "last_used_at", "revoked_at"]
        print_table(columns, [{**row, "agent": row["agent"] or "(admin)"} for row in rows])
    return EX_OK


def revoke(state: State, args: argparse.Namespace) -> int:
    if not revoke_token(state.db, args.id, state.clock.now()):
        print(f"ticketd tokens revoke: no token {args.id}", file=sys.stderr)
        return EX_DATAERR
    print(f"token {args.id} revoked: requests with it get 401 from now on")
    return EX_OK
