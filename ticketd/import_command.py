"""`ticketd import PATH [--acknowledge] [--no-process] [--json]`: a mbox, a Maildir or a folder
of .eml files (ingest/importer.py), with a progress bar and a summary."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ingest.importer import import_path
from ingest.regular_files import NotRegular
from ticketd.commands import EX_DATAERR, EX_OK, print_json
from ticketd.state import State


def import_mail(state: State, args: argparse.Namespace) -> int:
    state.isolate()  # each message parsed within [limits] max_parse_seconds
    try:
        summary = import_path(
            state,
            Path(args.path),
            acknowledge=args.acknowledge,
            process=not args.no_process,
            progress=not args.json,
        )
    except NotRegular as error:
        print(f"ticketd import: nothing imported: {error}", file=sys.stderr)
        return EX_DATAERR
    if args.json:
        print_json(summary)
    else:
        print(", ".join(f"{key}: {value}" for key, value in summary.items()))
    return EX_OK if summary["failed"] == 0 and not summary.get("refused") else EX_DATAERR
