"""`ticketd kyc list REF | export REF --to DIR --agent EMAIL | audit | purge [--dry-run] [--at]`,
`ticketd kyc status [CUSTOMER] | request REF --agent EMAIL` (the customers' verification states).

Output is metadata only (names, types, sizes, hashes, decisions); document content goes to the
export folder and nowhere else.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ticketd.key_commands import add_key_commands
from ticketd.sla_commands import _at

EX_OK = 0
EX_USAGE = 64
Handler = Callable[[argparse.Namespace], int]
StateBody = Callable[[Any, argparse.Namespace], int]


def _print(rows: list[dict[str, Any]], as_json: bool, columns: list[str]) -> None:
    if as_json:
        print(json.dumps(rows, ensure_ascii=False, indent=2, default=str))
        return
    from ticketd.views import print_table

    print_table(columns, rows)


def _list(state: Any, args: argparse.Namespace) -> int:
    from ticketd.documents_admin import DocumentAdminError, list_documents

    try:
        rows = list_documents(state.db, args.ref)
    except DocumentAdminError as error:
        print(f"ticketd kyc list: {error}", file=sys.stderr)
        return 1
    _print(rows, args.json, ["id", "filename", "type", "size", "state", "decided_by", "purged_at"])
    return EX_OK


def _export(state: Any, args: argparse.Namespace) -> int:
    from ticketd.documents_admin import DocumentAdminError, export_documents

    try:
        written = export_documents(
            state.db, state.config, state.blobs, state.clock.now(), args.ref, Path(args.to),
            args.agent,
        )  # fmt: skip
    except DocumentAdminError as error:
        print(f"ticketd kyc export: {error}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    print(f"{len(written)} document(s) exported; the access is recorded")
    return EX_OK


def _audit(state: Any, args: argparse.Namespace) -> int:
    from ticketd.documents_admin import audit

    rows = audit(state.db)
    _print(rows, args.json, ["at", "actor", "action", "ticket", "document", "filename"])
    return EX_OK


def _purge(state: Any, args: argparse.Namespace) -> int:
    from ticketd.documents_admin import purge

    now = state.clock.now()
    if args.at is not None:
        moment = _at(args.at)
        if moment is None:
            print(f"ticketd kyc purge: --at {args.at!r} is not an ISO 8601 time", file=sys.stderr)
            return EX_USAGE
        now = moment
    found = purge(state.db, state.config, state.blobs, now, dry_run=args.dry_run)
    for item in found:
        when = item.decided_at or "never decided: abandoned"
        print(f"{item.ticket} document {item.document} ({item.state} {when})")
    verb = "would be" if args.dry_run else "were"
    print(f"{len(found)} document(s) {verb} purged")
    return EX_OK


def _status(state: Any, args: argparse.Namespace) -> int:
    from ticketd.verification_admin import verification_states

    rows = verification_states(state, args.customer)
    if args.customer is not None and not rows:
        print(f"ticketd kyc status: no verification for {args.customer}", file=sys.stderr)
        return 1
    columns = ["customer", "state", "reason", "ticket", "decided_by", "expires_at"]
    _print(rows, args.json, columns)
    return EX_OK


def _request(state: Any, args: argparse.Namespace) -> int:
    from ticketd.documents_admin import DocumentAdminError
    from ticketd.verification_admin import request_from_command_line

    try:
        print(request_from_command_line(state, args.ref, args.agent))
    except DocumentAdminError as error:
        print(f"ticketd kyc request: {error}", file=sys.stderr)
        return 1
    return EX_OK


def add_verification_commands(
    k_commands: Any,
    with_state: Callable[[StateBody], Handler],
    reading: Callable[[StateBody], Handler] | None = None,
) -> None:
    k_status = k_commands.add_parser("status", help="customers' verification states")
    k_status.add_argument("customer", nargs="?", help="one customer's address")
    k_status.add_argument("--json", action="store_true")
    k_status.set_defaults(handler=(reading or with_state)(_status))
    k_request = k_commands.add_parser("request", help="ask a ticket's customer for documents")
    k_request.add_argument("ref")
    k_request.add_argument(
        "--agent", required=True, metavar="EMAIL", help="the identity agent asking (recorded)"
    )
    k_request.set_defaults(handler=with_state(_request))


def add_kyc_commands(
    commands: Any,
    with_state: Callable[[StateBody], Handler],
    reading: Callable[[StateBody], Handler] | None = None,
) -> None:
    """`reading` wraps the commands that only read (list, audit, status): they create nothing
    against a missing database."""
    reading = reading or with_state
    kyc = commands.add_parser("kyc", help="identity documents: list, export, audit, purge")
    k_commands = kyc.add_subparsers(dest="kyc_command", required=True, metavar="COMMAND")
    k_list = k_commands.add_parser("list", help="a ticket's documents (metadata only)")
    k_list.add_argument("ref")
    k_list.add_argument("--json", action="store_true")
    k_list.set_defaults(handler=reading(_list))
    k_export = k_commands.add_parser("export", help="decrypt a ticket's documents to a folder")
    k_export.add_argument("ref")
    k_export.add_argument("--to", required=True, metavar="DIR")
    k_export.add_argument(
        "--agent", required=True, metavar="EMAIL", help="the identity agent asking (audited)"
    )
    k_export.set_defaults(handler=with_state(_export))
    k_audit = k_commands.add_parser("audit", help="every access to a document")
    k_audit.add_argument("--json", action="store_true")
    k_audit.set_defaults(handler=reading(_audit))
    k_purge = k_commands.add_parser("purge", help="delete content whose retention ended")
    k_purge.add_argument("--dry-run", action="store_true", help="show what would go")
    k_purge.add_argument("--at", help="as if at this ISO 8601 time")
    k_purge.set_defaults(handler=with_state(_purge))
    add_verification_commands(k_commands, with_state, reading)
    add_key_commands(k_commands, with_state)
