"""The kinds of value a configuration key may hold, each checked in one place.

A kind is the metadata of a key's type in a `Table` (domain/config_schema.py):
`Annotated[int, Count(1)]`. It checks a value as TOML gives it (no coercion: `"100"` is not a
number, `true` is not 1), returns what the record holds (a stripped string, a lowercase address,
a path made absolute against the folder of the file, a tuple for a list) and, when the value is
wrong, raises `Invalid` with a reason in the file's words. `what` is the same words for the
README and for every "must be ..." message, so one kind reads the same in every section.

Pydantic is imported only when it asks a kind for its schema or a value (the two methods that
speak to it): a kind's `check` stands alone, so what reads a few keys without the schema
(domain/config_journal.py, for `ticketd ingest`) checks them with the same kinds and words.
"""

from __future__ import annotations

import datetime
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

if TYPE_CHECKING:
    from pydantic import GetCoreSchemaHandler, ValidationInfo
    from pydantic_core import CoreSchema

Problems = list[tuple[str, str]]


# What a terminal would obey in a value printed raw, and TOML's strings refuse raw: JSON escapes
# only U+0000-U+001F; DEL and the C1 controls (U+009B is CSI) are written out too.
_RAW_CONTROLS = re.compile("[\x7f-\x9f]")
_BARE_KEY = re.compile("[A-Za-z0-9_-]+")


def toml_value(value: Any) -> str:
    """A value as the file writes it, for the messages that quote one: `true`, `25`, `"tr"`,
    `["a", 1]`, `{ name = "x" }`, `2026-01-01` (never Python's `True` or `'tr'`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        pairs = [f"{_toml_key(str(k))} = {toml_value(v)}" for k, v in value.items()]
        return "{ " + ", ".join(pairs) + " }" if pairs else "{}"
    text = json.dumps(str(value), ensure_ascii=False)  # a TOML basic string, escapes and all
    return _RAW_CONTROLS.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _toml_key(name: str) -> str:
    return name if _BARE_KEY.fullmatch(name) else toml_value(name)


@dataclass(frozen=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


class Invalid(Exception):
    """Why a value is wrong; `index` names the item of a list, `generic` says the reason is
    only the kind's "must be ..." (a list says its own then)."""

    def __init__(self, reason: str, index: int | None = None, generic: bool = False) -> None:
        super().__init__(reason)
        self.reason, self.index, self.generic = reason, index, generic


class Kind:
    """A kind of value; subclasses set `what` and `check`."""

    what = "a value"

    def check(self, value: Any, base: Path) -> Any:
        raise NotImplementedError

    def wrong(self) -> Invalid:
        return Invalid(f"must be {self.what}", generic=True)

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        # Here, not at the top: only the schema (domain/config_schema.py) asks for it, and it
        # has imported pydantic by then.
        from pydantic_core import core_schema

        return core_schema.with_info_plain_validator_function(self._validate)

    def _validate(self, value: Any, info: ValidationInfo) -> Any:
        from pydantic_core import PydanticCustomError

        base = (info.context or {}).get("base", Path("."))
        try:
            return self.check(value, base)
        except Invalid as error:
            ctx: dict[str, Any] = {"reason": error.reason}
            if error.index is not None:
                ctx["index"] = error.index
            raise PydanticCustomError("ticketd", "{reason}", ctx) from None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class Count(Kind):
    """A whole number of at least `minimum`."""

    def __init__(self, minimum: int = 1, what: str | None = None) -> None:
        self.minimum = minimum
        self.what = what or f"an integer of at least {minimum}"

    def check(self, value: Any, base: Path) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < self.minimum:
            raise self.wrong()
        return value


class Whole(Kind):
    """A whole number from `lowest` to `highest`."""

    def __init__(self, lowest: int, highest: int, what: str | None = None) -> None:
        self.lowest, self.highest = lowest, highest
        self.what = what or f"a whole number from {lowest} to {highest}"

    def check(self, value: Any, base: Path) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.wrong()
        if not self.lowest <= value <= self.highest:
            raise self.wrong()
        return value


class Number(Kind):
    """A number (whole or not) in a range: at least `lowest` (above it when `above`), at most
    `highest`; `what` says it with its unit."""

    def __init__(
        self, what: str, lowest: float = 0, highest: float | None = None, above: bool = False
    ) -> None:
        self.what, self.lowest, self.highest, self.above = what, lowest, highest, above

    def check(self, value: Any, base: Path) -> float:
        if not _number(value):
            raise self.wrong()
        low = value > self.lowest if self.above else value >= self.lowest
        if not low or (self.highest is not None and value > self.highest):
            raise self.wrong()
        return float(value)


class Flag(Kind):
    what = "true or false"

    def check(self, value: Any, base: Path) -> bool:
        if not isinstance(value, bool):
            raise self.wrong()
        return value


class Text(Kind):
    """A string, stripped (unless not `strip`); `empty`: may be "" (otherwise it must say
    something)."""

    def __init__(self, what: str | None = None, empty: bool = False, strip: bool = True) -> None:
        self.empty, self.strip = empty, strip
        self.what = what or ("a string" if empty else "a non-empty string")

    def check(self, value: Any, base: Path) -> str:
        if not isinstance(value, str) or not (self.empty or value.strip()):
            raise self.wrong()
        return value.strip() if self.strip else value


class OneOf(Kind):
    """One of a few words; `reason` may say it differently ({value} is the value written, in
    TOML: toml_value)."""

    def __init__(self, choices: tuple[str, ...], reason: str | None = None) -> None:
        self.choices = choices
        self.what = "one of " + ", ".join(choices)
        self.reason = reason or "{value} is not one of " + ", ".join(choices)

    def check(self, value: Any, base: Path) -> str:
        if value not in self.choices:
            raise Invalid(self.reason.format(value=toml_value(value)))
        return str(value)


class Address(Kind):
    """A plain email address (no display name), lowercase."""

    what = "an email address"

    def check(self, value: Any, base: Path) -> str:
        if not isinstance(value, str):
            raise self.wrong()
        name, addr = parseaddr(value)
        if name or "@" not in addr or addr != value.strip() or any(c.isspace() for c in addr):
            raise Invalid(f"{toml_value(value)} is not a plain email address")
        return addr.lower()


class Endpoint(Kind):
    """host:port, the host in brackets for IPv6."""

    what = "host:port"

    def check(self, value: Any, base: Path) -> HostPort:
        host, sep, port = value.strip().rpartition(":") if isinstance(value, str) else ("", "", "")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise Invalid(f"{toml_value(value)} is not host:port with a port from 1 to 65535")
        return HostPort(host, int(port))


def resolve(value: str, base: Path) -> Path:
    """A path as written, relative to the folder of the configuration file."""
    path = Path(value.strip()).expanduser()
    return path if path.is_absolute() else base / path


class FilePath(Kind):
    """A path, relative to the file's folder; `exists`: it must be a file, or a folder."""

    def __init__(
        self, exists: Literal["file", "folder"] | None = None, what: str | None = None
    ) -> None:
        self.exists = exists
        self.what = what or {"file": "the path of a file", "folder": "the path of a folder"}.get(
            exists or "", "a path"
        )

    def check(self, value: Any, base: Path) -> Path:
        if not isinstance(value, str) or not value.strip():
            raise self.wrong()
        path = resolve(value, base)
        if self.exists == "file" and not path.is_file():
            raise Invalid(f"{path} does not exist or is no file")
        if self.exists == "folder" and not path.is_dir():
            raise Invalid(f"{path} is not a folder")
        return path


class Zone(Kind):
    what = "a time zone (Europe/Istanbul, UTC)"

    def check(self, value: Any, base: Path) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise Invalid(f"{toml_value(value)} is not a known time zone") from None
        return str(value)


class Url(Kind):
    """An http:// or https:// URL; `what` replaces the reason that names the value."""

    def __init__(self, what: str | None = None, strip_slash: bool = False) -> None:
        self.named = what is None
        self.what = what or "an http(s) URL"
        self.strip_slash = strip_slash

    def check(self, value: Any, base: Path) -> str:
        parts = urlsplit(value.strip()) if isinstance(value, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise (
                Invalid(f"{toml_value(value)} is not an http(s) URL")
                if self.named
                else self.wrong()
            )
        text = str(value).strip()
        return text.rstrip("/") if self.strip_slash else text


class Custom(Kind):
    """A kind of one key: `check(value, base)` returns the value or raises Invalid."""

    def __init__(self, what: str, check: Callable[[Any, Path], Any]) -> None:
        self.what, self._check = what, check

    def check(self, value: Any, base: Path) -> Any:
        return self._check(value, base)


_TYPE_NAMES = {"str": "a string", "int": "a number", "float": "a number", "bool": "true/false"}
_TYPE_NAMES |= {"dict": "a table", "date": "a date", "datetime": "a date and time"}


def type_name(value: Any) -> str:
    return _TYPE_NAMES.get(type(value).__name__, type(value).__name__)


class ListOf(Kind):
    """A list of `item`s, held as a tuple. A value that is no list is one problem (not one per
    character of a string); `indexed` names a wrong item by its place (`escalation[1]`)."""

    def __init__(self, item: Kind, what: str, indexed: bool = False) -> None:
        self.item, self.indexed = item, indexed
        self.what = f"a list of {what}"

    def check(self, value: Any, base: Path) -> tuple[Any, ...]:
        if not isinstance(value, list | tuple):  # a tuple: the declared default
            raise Invalid(f"must be {self.what} ([...]), not {type_name(value)}")
        items = []
        for index, item in enumerate(value):
            try:
                items.append(self.item.check(item, base))
            except Invalid as error:
                if self.indexed:
                    raise Invalid(error.reason, index) from None
                raise (self.wrong() if error.generic else error) from None
        return tuple(items)


def date_value(value: Any, base: Path) -> datetime.date:
    """A TOML date (2026-01-01), or the same quoted."""
    if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        return value
    try:
        return datetime.date.fromisoformat(value)
    except (TypeError, ValueError):
        raise Invalid(f"{toml_value(value)} is not a date") from None
