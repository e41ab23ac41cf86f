"""The one check every table of the configuration passes: each key is known, or it is named.

Each section's parser keeps the tuple of its keys next to itself and calls `check_keys` on the
table it reads; a key not in the tuple is reported as `SECTION.KEY: unknown key`, with the
nearest known key suggested, so `[smtp_out] realy` says "did you mean 'relay'?" instead of
passing `check` and sending no mail. Adding a key to a section means adding it to that tuple.

`one_list` is the other half of "one error per key": a value that must be a list is checked for
being one before its items are, so `escalation = "lead@example.com"` is one error, not one per
character of the string.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

Problems = list[tuple[str, str]]


def suggestion(key: str, known: Iterable[str]) -> str:
    """'; did you mean 'relay'?' for the nearest known key, or '' when none is near."""
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def check_keys(
    problems: Problems, table: dict[str, Any], at: str, known: Iterable[str], what: str = "key"
) -> None:
    """Append `AT.KEY: unknown key` (with a suggestion) for every key of `table` not in `known`;
    `at` is the table's own name ('' for the top level of the file)."""
    names = tuple(known)
    for key in table:
        if key not in names:
            where = f"{at}.{key}" if at else key
            problems.append((where, f"unknown {what}{suggestion(key, names)}"))


def one_list(problems: Problems, value: Any, key: str, what: str) -> list[Any]:
    """`value` when it is a list; otherwise one problem for `key` and an empty list."""
    if isinstance(value, list):
        return value
    found = _TYPE_NAMES.get(type(value).__name__, type(value).__name__)
    problems.append((key, f"must be a list of {what} ([...]), not {found}"))
    return []


_TYPE_NAMES = {"str": "a string", "int": "a number", "float": "a number", "bool": "true/false"}
_TYPE_NAMES |= {"dict": "a table", "date": "a date", "datetime": "a date and time"}
