"""`ticketd ingest [FILE] [--sender S] [--recipient R]... [--process]`: one raw message through
the durable path, for an MTA pipe.

Exit 0 once the message is durable, 75 (EX_TEMPFAIL: the MTA tries again) when it could not be
stored, 65 when it never will be (over the size limit, empty, not a regular file). An MTA starts
this once a message, so it imports what the journal needs and nothing more (ticketd/commands.py,
bench/cli_startup.py); `--process` opens the full state, as the worker needs it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from domain.config import Config, load_config
from ingest.journal import Arrival, StorageFailure
from ingest.oversize import header_summary, read_bounded, too_big
from ingest.regular_files import NotRegular, open_regular
from ticketd.commands import EX_DATAERR, EX_OK, EX_TEMPFAIL, config_path
from ticketd.journal_state import open_journal


def ingest(args: argparse.Namespace) -> int:
    config = load_config(config_path(args))
    raw = _read_message(args.file, config.smtp_in.max_message_size)
    if isinstance(raw, int):
        return raw
    if not raw.strip():
        print("ticketd ingest: empty input, nothing stored", file=sys.stderr)
        return EX_DATAERR
    arrival = Arrival(
        raw=raw,
        source="ingest",
        envelope_from=args.sender,
        envelope_to=tuple(args.recipient or ()),
    )
    try:
        state = open_journal(config)
    except Exception as error:
        print(f"ticketd ingest: storage unavailable: {error}", file=sys.stderr)
        return EX_TEMPFAIL
    try:
        print(f"stored as message {state.journal.accept(arrival)}")
        if args.process:
            _process_pending(config)
    except StorageFailure as error:
        print(f"ticketd ingest: not stored: {error}", file=sys.stderr)
        return EX_TEMPFAIL
    finally:
        state.close()
    return EX_OK


def _process_pending(config: Config) -> None:
    # The worker, the pipeline and the templates only for --process.
    from ticketd.state import open_state

    state = open_state(config)
    try:
        state.isolate()  # each message parsed within [limits] max_parse_seconds
        for result in state.worker.drain():
            print(f"message {result.journal_id} {result.state}: {result.detail}")
    finally:
        state.close()


def _read_message(file: str | None, limit: int) -> bytes | int:
    """The message in bounded memory (ingest/oversize.py), or the exit status that refuses it."""
    try:
        if file:
            with open_regular(Path(file)) as stream:
                read = read_bounded(stream, limit)
        else:
            read = read_bounded(sys.stdin.buffer, limit)
    except NotRegular as error:  # a folder, a FIFO, a device, a link: no retry makes it mail
        print(f"ticketd ingest: not stored: {error}", file=sys.stderr)
        return EX_DATAERR
    except OSError as error:
        print(f"ticketd ingest: cannot read {file}: {error}", file=sys.stderr)
        permanent = isinstance(error, FileNotFoundError | NotADirectoryError | PermissionError)
        return EX_DATAERR if permanent else EX_TEMPFAIL
    if isinstance(read, tuple):
        head, size = read
        print(
            f"ticketd ingest: not stored, {too_big(size, limit)}; {header_summary(head)}",
            file=sys.stderr,
        )
        return EX_DATAERR
    return read
