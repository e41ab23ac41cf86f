"""The configuration schema: every section and key of the file, declared once.

A section is a `Table`, a frozen pydantic model with one field per key. A key's type carries a
*kind* (domain/config_kinds.py: `Count`, `Flag`, `Text`, `Address`, ...) that checks the value
and says, in the file's own words, what it must be; `key()` gives its default and whether a
SIGHUP applies it live. From these declarations come:

- validation: unknown keys named with the nearest known one, missing keys, wrong types and
  ranges, each as `section.key: reason`, the same words for the same kind in every section
  (`read_sections`, `describe`);
- the defaults (pydantic fills them in);
- what a SIGHUP applies live and what needs a restart (`live_records`, read by ticketd/reload.py);
- the README's key reference (`reference`, kept equal to the README by tests/test_config_schema.py;
  `python3 -m domain.config_schema` prints it).

Adding a section means declaring it once:

1. its `Table` subclass: one field per key, `Annotated[type, Kind(...)] = key(default, live=...,
   doc=...)`; a table inside it is a field whose type is another `Table`;
2. one line in `config.SECTIONS`: `Section("http", HttpTable)` (`[http]`), `Section("webhooks",
   WebhookTable, "array", live=True)` (`[[webhooks]]`), or shape "named" for `[name.NAME]`;
3. its field in `Config` (`http: HttpTable`, `webhooks: tuple[WebhookTable, ...]`): unless
   `config._records` builds a record of its own for it, the validated table is the record;
4. `python3 -m domain.config_schema` pasted into the README's reference (a test compares them).

Validation, defaults, SIGHUP and the reference follow; what one key cannot say alone (keys that
go together, a name another section must define) is a check in `config._records`.
"""

from __future__ import annotations

import difflib
import json
import types
import typing
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from domain.config_kinds import Kind, Problems

Shape = Literal["table", "array", "named"]
T = TypeVar("T", bound="Table")


class Table(BaseModel):
    """One table of the file: its keys are the fields, unknown ones are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    # How an unknown key of this table is called: "unknown key; did you mean ...".
    unknown: ClassVar[str] = "key"


def key(
    default: Any = PydanticUndefined,
    *,
    live: bool = False,
    doc: str = "",
    record: str | None = None,
    shown: str | None = None,
) -> Any:
    """A key's declaration beside its kind: `default` (none: the key is required), `live`
    (a SIGHUP applies a change at once; otherwise it needs a restart), `doc` for the README,
    `record` where its value lands in `Config` when that is not `SECTION.KEY`, and `shown`,
    how the README shows a default computed from other keys."""
    extra: dict[str, Any] = {"live": live}
    if record is not None:
        extra["record"] = record
    if shown is not None:
        extra["shown"] = shown
    # A default goes through its kind too (a default path is made absolute against the file's
    # folder like a written one); None and required keys have nothing to check.
    checked = default not in (None, "") and default is not PydanticUndefined
    return Field(
        default, description=doc or None, json_schema_extra=extra, validate_default=checked
    )


@dataclass(frozen=True)
class Section:
    """A top-level entry of the file: `[name]`, `[[name]]` or `[name.NAME]`, read with `model`;
    `record` is where its values land in `Config` (a dotted path)."""

    name: str
    model: type[Table]
    shape: Shape = "table"
    record: str = ""
    live: bool = False  # arrays and named tables: does a SIGHUP apply them live?

    @property
    def header(self) -> str:
        return {"table": f"[{self.name}]", "array": f"[[{self.name}]]"}.get(
            self.shape, f"[{self.name}.NAME]"
        )

    @property
    def where(self) -> str:
        return self.record or self.name


def suggestion(name: str, known: Iterable[str]) -> str:
    """'; did you mean 'relay'?' for the nearest known key, or '' when none is near."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def inner_table(annotation: Any) -> type[Table] | None:
    """The table a key holds (`X`, `X | None`, `Annotated[X, ...]`), or None for a value."""
    if typing.get_origin(annotation) is typing.Annotated:
        return inner_table(typing.get_args(annotation)[0])
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        tables = [t for a in typing.get_args(annotation) if (t := inner_table(a)) is not None]
        return tables[0] if tables else None
    if isinstance(annotation, type) and issubclass(annotation, Table):
        return annotation
    return None


def _table_at(model: type[Table], loc: tuple[int | str, ...]) -> type[Table]:
    """The table a location names (indexes of lists skipped)."""
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        inner = inner_table(field.annotation) if field is not None else None
        if inner is not None:
            model = inner
    return model


def _field_at(model: type[Table], loc: tuple[int | str, ...]) -> FieldInfo | None:
    """The key a location names, or None."""
    last = loc[-1] if loc else None
    fields = _table_at(model, loc[:-1]).model_fields
    return fields.get(last) if isinstance(last, str) else None


def kind_of(field: FieldInfo) -> Kind | None:
    return next((m for m in field.metadata if isinstance(m, Kind)), None)


def _name(at: str, loc: tuple[int | str, ...]) -> str:
    name = at
    for part in loc:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name


def describe(error: ValidationError, model: type[Table], at: str, header: str) -> Problems:
    """The (key, reason) of each problem pydantic found in the table `at`."""
    problems: Problems = []
    for item in error.errors(include_url=False):
        loc, kind, ctx = tuple(item["loc"]), item["type"], item.get("ctx") or {}
        name = _name(at, loc)
        if kind == "ticketd":
            index = ctx.get("index")
            problems.append((name if index is None else f"{name}[{index}]", ctx["reason"]))
        elif kind == "extra_forbidden":
            owner = _table_at(model, loc[:-1])
            close = suggestion(str(loc[-1]), owner.model_fields)
            problems.append((name, f"unknown {owner.unknown}{close}"))
        elif kind == "missing":
            field = _field_at(model, loc)
            declared = kind_of(field) if field is not None else None
            choices = getattr(declared, "choices", None)
            problems.append(
                (name, "is required" + (f": one of {', '.join(choices)}" if choices else ""))
            )
        elif kind in ("model_type", "model_attributes_type", "dict_type"):
            problems.append((name, f"must be a table ({header})" if not loc else "must be a table"))
        else:
            problems.append((name, str(item["msg"])))
    return problems


def read_table(
    problems: Problems, model: type[T], raw: Any, at: str, context: dict[str, Any], header: str
) -> T | None:
    """`raw` validated as `model`; None, with its problems appended, when it is not valid."""
    try:
        return model.model_validate(raw, context=context)
    except ValidationError as error:
        problems.extend(describe(error, model, at, header))
        return None


class Tables:
    """The validated sections of one file, by name: what `parse_config` builds records from."""

    def __init__(self, found: dict[str, Any]) -> None:
        self._found = found

    def one(self, name: str, model: type[T]) -> T | None:
        """`[name]`: its table, or None when it had problems."""
        value = self._found.get(name)
        return value if isinstance(value, model) else None

    def many(self, name: str, model: type[T]) -> list[tuple[int, T]]:
        """`[[name]]`: (index, table) of the valid items."""
        return [(i, t) for i, t in self._found.get(name, []) if isinstance(t, model)]

    def record(self, name: str) -> Any:
        """A section as its own record: the table, a tuple of tables or a dict of them."""
        value = self._found.get(name)
        if isinstance(value, list):
            return tuple(t for _, t in value if t is not None)
        if isinstance(value, dict):
            return {k: t for k, t in value.items() if t is not None}
        return value

    def named(self, name: str, model: type[T]) -> dict[str, T]:
        """`[name.NAME]`: the valid tables by NAME."""
        return {k: t for k, t in self._found.get(name, {}).items() if isinstance(t, model)}


def read_sections(
    problems: Problems, data: dict[str, Any], sections: Iterable[Section], context: dict[str, Any]
) -> Tables:
    """Every section of the file checked against its table, unknown sections named."""
    sections = tuple(sections)
    names = [s.name for s in sections]
    for name in data:
        if name not in names:
            problems.append((name, f"unknown section or key{suggestion(name, names)}"))
    found: dict[str, Any] = {}
    for section in sections:
        raw = data.get(section.name, [] if section.shape == "array" else {})
        found[section.name] = _read_section(problems, section, raw, context)
    return Tables(found)


def _read_section(problems: Problems, section: Section, raw: Any, context: dict[str, Any]) -> Any:
    name, model, header = section.name, section.model, section.header
    if section.shape == "table":
        return read_table(problems, model, raw, name, context, header)
    if section.shape == "array":
        if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
            problems.append((name, f"must be an array of tables ({header})"))
            return []
        return [
            (i, read_table(problems, model, item, f"{name}[{i}]", context, header))
            for i, item in enumerate(raw)
        ]
    if not isinstance(raw, dict):
        problems.append((name, f"must be tables, one per name ({header})"))
        return {}
    named: dict[str, Any] = {}
    for item_name, table in raw.items():
        if not isinstance(table, dict):
            problems.append((f"{name}.{item_name}", f"must be a table ({header})"))
            continue
        at = f"{name}.{item_name}"
        named[item_name] = read_table(problems, model, table, at, context, header)
    return named


def _extra(field: FieldInfo) -> dict[str, Any]:
    extra = field.json_schema_extra
    return extra if isinstance(extra, dict) else {}


def live_records(sections: Iterable[Section]) -> dict[str, bool]:
    """{record path: applies live on SIGHUP} of every key: `Config`'s dotted attribute names
    (`smtp_in.max_recipients`, `team.agents`, `trust.dns`); ticketd/reload.py takes the longest
    that a changed attribute starts with, and a restart for one that none names."""
    found: dict[str, bool] = {}
    for section in sections:
        if section.shape != "table":
            found[section.where] = section.live
            continue
        keys = {
            str(_extra(field).get("record", f"{section.where}.{name}")): bool(
                _extra(field).get("live")
            )
            for name, field in section.model.model_fields.items()
        }
        # A section whose keys all apply live applies live as a whole (its record may be one
        # value: `[categories]` is the dict `team.category_keywords`).
        found[section.where] = all(keys.values())
        found |= keys
    return found


def _toml(value: Any) -> str:
    """A default as the file would write it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    return str(value)


def _default(field: FieldInfo) -> str:
    extra = _extra(field)
    if "shown" in extra:
        return str(extra["shown"])
    if field.is_required():
        return "**required**"
    value = field.default
    if value is None or value == "":
        return "unset"
    if isinstance(value, Table):
        return "(table)"
    return f"`{_toml(value)}`"


def _tables_by_name(model: type[Table]) -> type[Table] | None:
    """The table each key of `model` holds, when every key holds the same kind of table
    (`[sla.categories.NAME]`): the reference shows it once, for NAME."""
    inner = {inner_table(field.annotation) for field in model.model_fields.values()}
    found = inner.pop() if len(inner) == 1 else None
    return found


def _rows(model: type[Table], live: str | None, prefix: str = "") -> Iterator[str]:
    """The reference's rows of a table; `live` for every key of an array or named tables."""
    for name, field in model.model_fields.items():
        inner = inner_table(field.annotation)
        by_name = _tables_by_name(inner) if inner is not None else None
        if inner is not None and by_name is not None:
            names = ", ".join(inner.model_fields)
            yield f"| `{prefix}{name}.NAME` | NAME: {names} | | | {field.description or ''} |"
            yield from _rows(by_name, live, f"{prefix}{name}.NAME.")
            continue
        if inner is not None:
            yield from _rows(inner, live, f"{prefix}{name}.")
            continue
        declared = kind_of(field)
        what = declared.what if declared is not None else ""
        when = live or ("live" if _extra(field).get("live") else "restart")
        doc = field.description or ""
        yield f"| `{prefix}{name}` | {what} | {_default(field)} | {when} | {doc} |"


def reference(sections: Iterable[Section]) -> str:
    """The README's key reference: one table per section, generated from the declarations."""
    lines: list[str] = []
    for section in sections:
        live = None if section.shape == "table" else ("live" if section.live else "restart")
        lines += ["", f"`{section.header}`", ""]
        lines += ["| key | value | default | on SIGHUP | what for |", "|---|---|---|---|---|"]
        lines += list(_rows(section.model, live))
    return "\n".join(lines[1:]) + "\n"


if __name__ == "__main__":
    # Through the imported modules: this file run as __main__ is a second copy of itself.
    from domain import config, config_schema

    print(config_schema.reference(config.SECTIONS), end="")
