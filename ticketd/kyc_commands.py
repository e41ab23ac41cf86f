"""`ticketd kyc list REF | export REF --to DIR --agent EMAIL | audit | purge [--dry-run] [--at]`,
`ticketd kyc status [CUSTOMER] | request REF --agent EMAIL` (the customers' verification states).

Output is metadata only (names, types, sizes, hashes, decisions); document content goes to the
export folder and nowhere else.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from ticketd.commands import EX_OK, EX_USAGE, parse_time, print_json
from ticketd.documents_admin import (
    DocumentAdminError,
    audit,
    export_documents,
    list_documents,
    purge,
)
from ticketd.state import ReadState, State
from ticketd.verification_admin import request_from_command_line, verification_states
from ticketd.views import print_table


def _print(rows: Sequence[Mapping[str, object]], as_json: bool, columns: list[str]) -> None:
    if as_json:
        print_json(rows)
    else:
        print_table(columns, rows)


def list_kyc(state: ReadState, args: argparse.Namespace) -> int:
    try:
        rows = list_documents(state.db, args.ref)
    except DocumentAdminError as error:
        print(f"ticketd kyc list: {error}", file=sys.stderr)
        return 1
    _print(rows, args.json, ["id", "filename", "type", "size", "state", "decided_by", "purged_at"])
    return EX_OK


def export_kyc(state: State, args: argparse.Namespace) -> int:
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


def audit_kyc(state: ReadState, args: argparse.Namespace) -> int:
    rows = audit(state.db)
    _print(rows, args.json, ["at", "actor", "action", "ticket", "document", "filename"])
    return EX_OK


def purge_kyc(state: State, args: argparse.Namespace) -> int:
    now = state.clock.now()
    if args.at is not None:
        moment = parse_time(args.at)
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


def verification_status(state: ReadState, args: argparse.Namespace) -> int:
    rows = verification_states(state.db, args.customer)
    if args.customer is not None and not rows:
        print(f"ticketd kyc status: no verification for {args.customer}", file=sys.stderr)
        return 1
    columns = ["customer", "state", "reason", "ticket", "decided_by", "expires_at"]
    _print(rows, args.json, columns)
    return EX_OK


def request_verification(state: State, args: argparse.Namespace) -> int:
    try:
        print(request_from_command_line(state, args.ref, args.agent))
    except DocumentAdminError as error:
        print(f"ticketd kyc request: {error}", file=sys.stderr)
        return 1
    return EX_OK
