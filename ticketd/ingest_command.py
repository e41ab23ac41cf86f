"""`ticketd ingest [FILE] [--sender S] [--recipient R]... [--process]`: one raw message through
the durable path, for an MTA pipe.

Exit 0 once the message is durable, 75 (EX_TEMPFAIL: the MTA tries again) when it could not be
stored, 65 when it never will be (over the size limit, empty, not a regular file). An MTA starts
this once a message, so it imports what the journal needs and nothing more (ticketd/commands.py,
bench/cli_startup.py): of the configuration it reads the journal's keys only, and runs the full
validation when they are not plainly sound (domain/config_journal.py). `--process` validates
everything and opens the full state, as the worker needs it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from domain.config_journal import JournalConfig, read_journal_config
from ingest.journal import Arrival, StorageFailure
from ingest.oversize import header_summary, read_bounded, too_big
from ingest.regular_files import NotRegular, open_regular
from ticketd.commands import EX_DATAERR, EX_OK, EX_TEMPFAIL, config_path
from ticketd.journal_state import open_journal

if TYPE_CHECKING:
    from domain.config import Config


def ingest(args: argparse.Namespace) -> int:
    journal, config = _configuration(config_path(args), full=args.process)
    raw = _read_message(args.file, journal.max_message_size)
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
        state = open_journal(journal)
    except Exception as error:
        print(f"ticketd ingest: storage unavailable: {error}", file=sys.stderr)
        return EX_TEMPFAIL
    try:
        print(f"stored as message {state.journal.accept(arrival)}")
        if config is not None:  # --process
            _process_pending(config)
    except StorageFailure as error:
        print(f"ticketd ingest: not stored: {error}", file=sys.stderr)
        return EX_TEMPFAIL
    finally:
        state.close()
    return EX_OK


def _configuration(path: Path, full: bool) -> tuple[JournalConfig, Config | None]:
    """The journal's keys, and the whole configuration when `full` or when those keys alone
    cannot be judged: then every problem of the file is a ConfigError naming its key, as in
    `ticketd check` (exit 78 from ticketd/cli.py main)."""
    if not full:
        journal = read_journal_config(path)
        if journal is not None:
            return journal, None
    # Here, not at the top: the full validation imports pydantic and every section's schema.
    from domain.config import load_config

    config = load_config(path)
    return config.journal, (config if full else None)


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
