"""The configuration file as text: reading it, and the error that names a key and a reason.

Apart from domain/config.py so that what reads only a few keys (domain/config_journal.py, for
`ticketd ingest`) reads the file and raises the same errors without importing the schema.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from domain.errors import Permanent


class ConfigError(Permanent):
    """One or more problems in the configuration; each problem names its key."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{key}: {reason}" for key, reason in problems))

    def render(self, source: Path | str) -> str:
        lines = [f"{source}: the configuration is not valid"]
        lines += [f"  {key}: {reason}" for key, reason in self.problems]
        return "\n".join(lines)


def read_toml(path: Path) -> dict[str, Any]:
    """The file parsed; a missing, unreadable or unparsable file is a ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([("(file)", f"{path} does not exist")]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError([("(file)", f"{path} cannot be read: {error}")]) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError([("(syntax)", f"not valid TOML: {error}")]) from None
