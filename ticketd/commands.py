"""How a command of `ticketd` is declared and run: one shape for every command.

A command is one entry of the table in ticketd/cli.py, a `Command` (inside a `Group` for
`ticketd GROUP NAME`):

    Command(
        "list",
        "ticketd.ticket_commands:list_tickets",  # module:function, imported when it runs
        Opens.READ,
        help="tickets, oldest first",
        arguments=(Arg("--status"), Arg("--queue", help="only the tickets of this queue")),
        json=True,  # adds --json; the handler prints with print_json
    )

`opens` says what the handler is given, and so what running the command may create:

- `Opens.FULL`: `handler(state: State, args) -> int`, the state of `ticketd.state.open_state`,
  which creates a missing state folder and migrates the schema;
- `Opens.READ`: `handler(state: ReadState, args) -> int`, the database as it is: when there is
  none, the command says so and exits 1, creating nothing (no file, no folder, no key);
- `Opens.NONE`: `handler(args) -> int`, nothing opened: the handler loads what it needs
  (`load_config(config_path(args))`).

The handler's module is imported only when its command runs, so the table is cheap to read and
a short command pays for its own imports only: `ticketd ingest`, an MTA pipe started once a
message, never loads the pipeline, the daemon or the table printer. tests/test_command_shape.py
imports every handler and checks that its signature is the one its `opens` promises, and runs
every `Opens.READ` command against a missing database.

Adding a command group, e.g. `ticketd tokens create|list|revoke`: write the handlers in a module
of their own (any package ticketd may import), one function per command, then add one entry to
`COMMANDS` in ticketd/cli.py:

    Group("tokens", "bearer tokens for the HTTP API", (
        Command("create", "ticketd.token_commands:create", Opens.FULL,
                help="a new token, printed once",
                arguments=(Arg("--agent", required=True, metavar="EMAIL"),)),
        Command("list", "ticketd.token_commands:list_tokens", Opens.READ,
                help="the tokens", json=True),
        Command("revoke", "ticketd.token_commands:revoke", Opens.FULL,
                help="a token stops working at once", arguments=(Arg("id"),)),
    )),

and a line to the README's command table. Errors: a handler prints its own refusal to standard
error (`ticketd GROUP NAME: why`) and returns its exit status; a ConfigError it raises becomes
exit 78 with the key named, anything else one line and exit 1 (ticketd/cli.py main).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path

# The exit statuses of sysexits.h that scripts and MTAs read.
EX_OK = 0
EX_USAGE = 64
EX_DATAERR = 65
EX_UNAVAILABLE = 69
EX_TEMPFAIL = 75
EX_CONFIG = 78


class Opens(Enum):
    """What a command's handler is given (see the table in the module docstring)."""

    FULL = "full"
    READ = "read"
    NONE = "none"


@dataclass(frozen=True)
class Arg:
    """One argument of a command: a positional (`ref`) or an option (`--status`)."""

    name: str
    help: str | None = None
    metavar: str | None = None
    # The value's type: int, float, or any function of the text (a bad value: exit 2).
    type: Callable[[str], object] = str
    default: object = None
    flag: bool = False  # an option without a value: True when given
    repeat: bool = False  # an option given several times: the list of its values
    nargs: str | None = None  # a positional: "?" may be left out, "+" one or more
    choices: tuple[str, ...] | None = None
    required: bool = False  # an option that must be given

    def add_to(self, add_argument: Callable[..., object]) -> None:
        """Add it with `add_argument` of a parser (or of a group of exclusive options)."""
        if self.flag:
            add_argument(self.name, action="store_true", help=self.help)
        elif self.repeat:
            add_argument(self.name, action="append", metavar=self.metavar, help=self.help)
        elif not self.name.startswith("-"):  # argparse refuses `required` for positionals
            add_argument(
                self.name, nargs=self.nargs, type=self.type, metavar=self.metavar, help=self.help
            )
        else:
            add_argument(
                self.name,
                type=self.type,
                default=self.default,
                choices=self.choices,
                required=self.required,
                metavar=self.metavar,
                help=self.help,
            )


@dataclass(frozen=True)
class OneOf:
    """Options of which at most one may be given; exactly one when `required`."""

    options: tuple[Arg, ...]
    required: bool = False


JSON = Arg("--json", flag=True)


@dataclass(frozen=True)
class Command:
    """A command: its name, its handler ("module:function"), what it opens, its arguments."""

    name: str
    handler: str
    opens: Opens
    # The one line beside its name in the group's `--help` (argparse lists a command only
    # when it has one: tests/test_cli_help.py).
    help: str
    arguments: tuple[Arg | OneOf, ...] = ()
    json: bool = False  # takes --json (every listing does)
    description: str | None = None  # the longer text of `ticketd ... NAME --help`
    # Whether the command, given these arguments, parses mail in the parsing process
    # (ingest/isolation.py): `run` (below) starts that process's forkserver before it imports the
    # handler's modules, so both imports run at once, one on each core.
    parses: Callable[[argparse.Namespace], bool] | None = None

    def load(self) -> Callable[..., object]:
        """The handler, its module imported now (and only now)."""
        module, _, name = self.handler.partition(":")
        found: object = getattr(importlib.import_module(module), name)
        if not callable(found):
            raise TypeError(f"{self.handler} (the handler of {self.name}) is not a function")
        return found


@dataclass(frozen=True)
class Group:
    """`ticketd NAME COMMAND`: commands under one word."""

    name: str
    help: str
    commands: tuple[Command, ...]


Entry = Command | Group


def every_command(table: Sequence[Entry]) -> Iterator[tuple[tuple[str, ...], Command]]:
    """Each command with the words that name it: (("tickets", "list"), Command(...))."""
    for entry in table:
        if isinstance(entry, Group):
            for command in entry.commands:
                yield (entry.name, command.name), command
        else:
            yield (entry.name,), entry


def build_parser(table: Sequence[Entry]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ticketd", description="Email ticket ingestion daemon.")
    parser.add_argument(
        "--config", help="configuration file (default: $TICKETD_CONFIG, else ./ticketd.toml)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    _add_commands(parser, "command", table)
    return parser


def _add_commands(parser: argparse.ArgumentParser, dest: str, entries: Sequence[Entry]) -> None:
    subparsers = parser.add_subparsers(dest=dest, required=True, metavar="COMMAND")
    for entry in entries:
        if isinstance(entry, Group):
            group = subparsers.add_parser(entry.name, help=entry.help)
            _add_commands(group, "subcommand", entry.commands)
            continue
        command = subparsers.add_parser(entry.name, help=entry.help, description=entry.description)
        for argument in entry.arguments:
            if isinstance(argument, OneOf):
                exclusive = command.add_mutually_exclusive_group(required=argument.required)
                for option in argument.options:
                    option.add_to(exclusive.add_argument)
            else:
                argument.add_to(command.add_argument)
        if entry.json:
            JSON.add_to(command.add_argument)
        command.set_defaults(declared=entry)


def config_path(args: argparse.Namespace) -> Path:
    value = args.config or os.environ.get("TICKETD_CONFIG") or "ticketd.toml"
    return Path(value)


# The module of the function the parsing process runs (ticketd/state.py: prepare_stored),
# imported by its forkserver before the first message (tests/test_command_shape.py).
PARSING_MODULE = "ingest.prepare"


def run(command: Command, args: argparse.Namespace) -> int:
    """Open what the command declares, call its handler, close what was opened."""
    if command.parses is not None and command.parses(args):
        from ingest.isolation import start_forkserver

        start_forkserver([PARSING_MODULE])
    handler = command.load()
    if command.opens is Opens.NONE:
        return _status(handler(args))
    # Here, not at the top: ticketd.state brings the worker and the migrations, and the full
    # validation of the configuration pydantic and every section's schema, which neither
    # `--help` nor the commands that open nothing need (`ingest`: domain/config_journal.py).
    from domain.config import load_config
    from ticketd.state import DatabaseMissing, open_for_reading, open_state

    config = load_config(config_path(args))
    if command.opens is Opens.FULL:
        state = open_state(config)
        try:
            return _status(handler(state, args))
        finally:
            state.close()
    try:
        reading = open_for_reading(config)
    except DatabaseMissing as error:
        print(f"ticketd {args.command}: {error}", file=sys.stderr)
        return 1
    try:
        return _status(handler(reading, args))
    finally:
        reading.close()


def _status(result: object) -> int:
    if not isinstance(result, int):
        raise TypeError(f"a command returned {result!r}, not an exit status")
    return result


# The C1 controls JSON leaves raw (it escapes only U+0000-U+001F): a terminal showing the
# output would obey U+009B (CSI) and U+009D (OSC). Escaped, the decoded text is the same.
_C1 = re.compile("[\x7f-\x9f]")


def print_json(value: object) -> None:
    """Every command's --json: UTF-8 as it is, times and other values as their text."""
    text = json.dumps(value, ensure_ascii=False, indent=2, default=str)
    sys.stdout.write(_C1.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n")


def parse_time(value: str) -> datetime | None:
    """An `--at TIME` value: ISO 8601, read as UTC without an offset; None when it is not one."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    # A time without an offset is read as UTC, the zone every stored time is in.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
