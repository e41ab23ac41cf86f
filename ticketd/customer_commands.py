"""`ticketd customer export ADDRESS --to DIR [--agent EMAIL]` and `ticketd customer erase
ADDRESS [--dry-run] [--json]` (issue 16): a customer's right of access and right to erasure.

What each writes and removes is in ticketd/customer_export.py and ticketd/erasure.py; here only
the output, which names files and counts, never content.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ticketd.access import AccessRefused
from ticketd.commands import EX_OK, print_json
from ticketd.customer_export import export_customer
from ticketd.erasure import erase_customer, report_json
from ticketd.state import State


def export(state: State, args: argparse.Namespace) -> int:
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


def erase(state: State, args: argparse.Namespace) -> int:
    report = erase_customer(
        state.db, state.config, state.blobs, state.clock.now(), args.address, dry_run=args.dry_run
    )
    if not report.found and not report.erased_before:
        # As `tickets show` of an unknown reference: said on standard error, exit 1.
        address = args.address.strip().lower()
        print(
            f"ticketd customer erase: no data found for {address}: nothing erased", file=sys.stderr
        )
        return 1
    if args.json:
        print_json(report_json(report))
        return EX_OK
    if not report.found:
        print(f"nothing more held about the address: erased before, as {report.customer}")
        return EX_OK
    verb = "would be erased" if args.dry_run else "erased"
    print(
        f"{len(report.tickets)} ticket(s), {report.messages} message(s), "
        f"{report.raw_messages} raw message(s), {report.documents} document(s) and "
        f"{report.outbox} outgoing mail(s) {verb}"
    )
    if report.maildir:
        rewritten = "would be rewritten" if args.dry_run else "rewritten"
        print(f"{report.maildir} file(s) in the Maildir {rewritten}")
    if not args.dry_run:
        print(f"the customer is now {report.customer}; no automatic mail goes to the address")
    return EX_OK
