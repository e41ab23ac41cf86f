"""SIGHUP: which configuration changes apply to a running daemon, and which need a restart.

The schema says it, key by key (`key(..., live=True)` in domain/config_schema.py): a key applies
live when the code reads it per message or per connection (templates, limits, threading, the
desk's name and language, the listener's size and abuse limits, the team, the SLA promises).
Everything else (what is bound, opened or built once at start: the listen address, the database,
the blob store, the relay and its credentials, IMAP accounts, metrics) keeps its running value
and is reported as needing a restart. A value the schema does not name is treated as needing a
restart: the safe default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from domain.config import SECTIONS, Config, HostPort
from domain.config_kyc import ClamdAddress
from domain.config_schema import live_records

# {dotted attribute of Config: applies live}, from the schema; the longest that a changed
# attribute is or starts with decides (`sla.enabled` restarts, the rest of `sla.` is live).
LIVE = live_records(SECTIONS)
# Shown with "***" instead of values in the log.
SECRET = ("desk.secret",)


@dataclass(frozen=True)
class ReloadPlan:
    config: Config  # what the daemon runs with from now on
    applied: tuple[str, ...]  # changed keys now in effect
    needs_restart: tuple[str, ...]  # changed keys that keep their running value


def _record(value: Any) -> bool:
    """A record walked into: a dataclass or a table of the schema, not an address."""
    if isinstance(value, type | HostPort | ClamdAddress):
        return False
    return dataclasses.is_dataclass(value) or isinstance(value, BaseModel)


def _names(value: Any) -> tuple[str, ...]:
    if isinstance(value, BaseModel):
        return tuple(type(value).model_fields)
    return tuple(item.name for item in dataclasses.fields(value))


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """{"desk.name": "Destek", "smtp_in.listen": HostPort(...), ...} for a config record."""
    if not _record(value):
        return {prefix: value}
    flat: dict[str, Any] = {}
    for item in _names(value):
        name = f"{prefix}.{item}" if prefix else item
        child = getattr(value, item)
        # A section is walked into; an address (HostPort, ClamdAddress) is one value.
        flat.update(flatten(child, name) if _record(child) else {name: child})
    return flat


def _is_live(key: str) -> bool:
    known = [p for p in LIVE if key == p or key.startswith(p + ".")]
    return LIVE[max(known, key=len)] if known else False


def _show(value: Any) -> str:
    """A value as an admin wrote it, not as Python prints it: a list of queues or agents by
    name or address, a table by its keys."""
    if isinstance(value, tuple | list) and value and _record(value[0]):
        first = _names(value[0])[0]
        return "[" + ", ".join(str(getattr(item, first)) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, tuple | list | frozenset | set):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)


def _replace(record: Any, name: str, value: Any) -> Any:
    if isinstance(record, BaseModel):
        return record.model_copy(update={name: value})
    return dataclasses.replace(record, **{name: value})


def _set(config: Any, key: str, value: Any) -> Any:
    head, _, rest = key.partition(".")
    if not rest:
        return _replace(config, head, value)
    return _replace(config, head, _set(getattr(config, head), rest, value))


def plan(running: Config, new: Config) -> ReloadPlan:
    old_flat, new_flat = flatten(running), flatten(new)
    changed = sorted(
        key
        for key in old_flat.keys() | new_flat.keys()
        if key not in ("path", "warnings") and old_flat.get(key) != new_flat.get(key)
    )
    applied = tuple(k for k in changed if _is_live(k))
    config = running
    for key in applied:
        config = _set(config, key, new_flat[key])
    return ReloadPlan(config, applied, tuple(k for k in changed if not _is_live(k)))


def describe(running: Config, new: Config, keys: tuple[str, ...]) -> str:
    """ "limits.auto_replies_per_hour 3 -> 5, ..." without secrets' values."""
    old_flat, new_flat = flatten(running), flatten(new)
    parts = []
    for key in keys:
        if key in SECRET:
            parts.append(f"{key} (changed)")
        else:
            parts.append(f"{key} {_show(old_flat.get(key))} -> {_show(new_flat.get(key))}")
    return ", ".join(parts)
