"""`ticketd customer export ADDRESS --to DIR [--agent EMAIL]` and `ticketd customer erase
ADDRESS [--dry-run] [--json]` (issue 16): a customer's right of access and right to erasure.

What each writes and removes is in ticketd/customer_export.py and ticketd/erasure.py; here only
the output, which names files and counts, never content.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

EX_OK = 0
Handler = Callable[[argparse.Namespace], int]
StateBody = Callable[[Any, argparse.Namespace], int]


def _export(state: Any, args: argparse.Namespace) -> int:
    from ticketd.access import AccessRefused
    from ticketd.customer_export import export_customer

    try:
        export = export_customer(
            state.db, state.config, state.blobs, state.clock.now(), args.address,
            Path(args.to), args.agent,
        )  # fmt: skip
    except AccessRefused as error:
        print(f"ticketd customer export: {error}", file=sys.stderr)
        return 1
    tickets = len({f["ticket"] for f in export.files if f["ticket"]})
    where = f"{export.folder} ({tickets} ticket(s))"
    print(f"{len(export.files)} file(s) for {export.customer} in {where}")
    print(f"manifest: {export.folder / 'manifest.json'}; the export is recorded")
    return EX_OK


def _erase(state: Any, args: argparse.Namespace) -> int:
    from ticketd.erasure import erase_customer, report_json

    report = erase_customer(
        state.db, state.config, state.blobs, state.clock.now(), args.address, dry_run=args.dry_run
    )
    if args.json:
        print(json.dumps(report_json(report), indent=2))
        return EX_OK
    verb = "would be erased" if args.dry_run else "erased"
    print(
        f"{len(report.tickets)} ticket(s), {report.messages} message(s), "
        f"{report.raw_messages} raw message(s), {report.documents} document(s) and "
        f"{report.outbox} outgoing mail(s) {verb}"
    )
    if not args.dry_run:
        print(f"the customer is now {report.customer}; no automatic mail goes to the address")
    return EX_OK


def add_customer_commands(commands: Any, with_state: Callable[[StateBody], Handler]) -> None:
    customer = commands.add_parser("customer", help="a customer's data: export, erase")
    c_commands = customer.add_subparsers(dest="customer_command", required=True, metavar="COMMAND")
    c_export = c_commands.add_parser("export", help="everything held about a customer, in clear")
    c_export.add_argument("address")
    c_export.add_argument("--to", required=True, metavar="DIR", help="a new or empty folder")
    c_export.add_argument(
        "--agent", metavar="EMAIL", help="the agent asking (audited); default: the admin"
    )
    c_export.set_defaults(handler=with_state(_export))
    c_erase = c_commands.add_parser("erase", help="erase a customer's data (a pseudonym stays)")
    c_erase.add_argument("address")
    c_erase.add_argument("--dry-run", action="store_true", help="count, change nothing")
    c_erase.add_argument("--json", action="store_true")
    c_erase.set_defaults(handler=with_state(_erase))
