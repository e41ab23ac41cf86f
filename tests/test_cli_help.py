"""`ticketd --help` and every group's `--help` (`ticketd tickets --help`) list each of their
commands with a one-line description: argparse leaves out a subcommand added without `help=`,
and the list under COMMAND is all a newcomer has to find `tickets list`."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator

import pytest

from ticketd.cli import COMMANDS
from ticketd.commands import build_parser


def _parsers(
    parser: argparse.ArgumentParser, words: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser, list[str]]]:
    """Every parser that has commands under it, walked from the parser itself (not the table),
    with the words that reach it and the names of its commands."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield words, parser, list(action.choices)
            for name, child in action.choices.items():
                yield from _parsers(child, (*words, name))


PARSERS = list(_parsers(build_parser(COMMANDS)))


def _described(help_text: str, name: str) -> str:
    """The description printed beside (or, for a long name, under) a command's name."""
    lines = help_text.splitlines()
    for index, line in enumerate(lines):
        found = re.fullmatch(rf"    {re.escape(name)}(?:\s+(\S.*))?", line)
        if found is None:
            continue
        if found.group(1):
            return found.group(1)
        following = lines[index + 1] if index + 1 < len(lines) else ""
        return following.strip() if following.startswith(" " * 6) else ""
    return ""


def test_the_walk_reaches_every_group() -> None:
    groups = {words for words, _, _ in PARSERS}
    assert {(), ("tickets",), ("quarantine",), ("outbox",), ("blocked",), ("kyc",)} <= groups


@pytest.mark.parametrize(
    ("words", "parser", "names"), PARSERS, ids=[" ".join(w) or "ticketd" for w, _, _ in PARSERS]
)
def test_every_command_is_listed_with_a_description(
    words: tuple[str, ...], parser: argparse.ArgumentParser, names: list[str]
) -> None:
    help_text = parser.format_help()
    missing = [name for name in names if not _described(help_text, name)]
    assert not missing, f"ticketd {' '.join(words)} --help lists no description for {missing}"
