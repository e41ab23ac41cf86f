"""SIGHUP: which configuration changes apply to a running daemon, and which need a restart.

A key applies live when the code reads it per message (templates, limits, threading, the desk's
name and language, the listener's size and abuse limits read per connection). Everything else
(what is bound, opened or built once at start: the listen address, the database, the blob
store, the relay and its credentials, IMAP accounts, metrics) keeps its running value and is
reported as needing a restart. A key this module does not know is treated as needing a
restart: the safe default for sections added later.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from domain.config import Config, HostPort
from domain.config_kyc import ClamdAddress

# Dotted prefixes of the keys that apply without a restart.
LIVE = (
    "desk.name",
    "desk.language",
    "limits.",
    "threading.",
    "classify.",  # read by the pipeline for each message
    "templates_dir",
    "smtp_in.max_message_size",
    # The listener's abuse limits, like the size limit, are read for each new connection.
    "smtp_in.max_connections",
    "smtp_in.max_connections_per_client",
    "smtp_in.max_recipients",
    "smtp_in.max_commands",
    "smtp_in.idle_timeout",
    "smtp_in.max_header_size",
    "smtp_in.max_line_length",
    "smtp_in.max_buffered_bytes",
    "smtp_in.session_timeout",
    "smtp_in.min_data_rate",
    # The worker reads the virus scanner's address for each message it scans.
    "kyc.clamd",
    "kyc.clamd_timeout",
    # STARTTLS too: the daemon builds a new ssl context from these paths on every SIGHUP.
    "smtp_in.tls_cert",
    "smtp_in.tls_key",
    "smtp_in.require_tls",
    # Queues, agents, category rules, agent replies and the SLA promises: the worker and the
    # SLA tick read them per message and per tick. New deadlines follow the new [sla] at once;
    # a ticket's running deadlines move at its next change or with `ticketd sla recompute`.
    "team.",
    "sla.",
    # The endpoints are read at each event and each delivery.
    "webhooks",
)
# Under a live prefix, but read once at start: the SLA tick is scheduled only when enabled.
RESTART = ("sla.enabled",)
# Shown with "***" instead of values in the log.
SECRET = ("desk.secret",)


@dataclass(frozen=True)
class ReloadPlan:
    config: Config  # what the daemon runs with from now on
    applied: tuple[str, ...]  # changed keys now in effect
    needs_restart: tuple[str, ...]  # changed keys that keep their running value


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """{"desk.name": "Destek", "smtp_in.listen": HostPort(...), ...} for a config record."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        flat: dict[str, Any] = {}
        for item in dataclasses.fields(value):
            name = f"{prefix}.{item.name}" if prefix else item.name
            child = getattr(value, item.name)
            # A section is walked into; an address (HostPort, ClamdAddress) is one value.
            if dataclasses.is_dataclass(child) and not isinstance(child, HostPort | ClamdAddress):
                flat.update(flatten(child, name))
            else:
                flat[name] = child
        return flat
    return {prefix: value}


def _is_live(key: str) -> bool:
    if key in RESTART:
        return False
    return any(key == p or (p.endswith(".") and key.startswith(p)) for p in LIVE)


def _show(value: Any) -> str:
    """A value as an admin wrote it, not as Python prints it: a list of queues or agents by
    name or address, a table by its keys."""
    if isinstance(value, tuple | list) and value and dataclasses.is_dataclass(value[0]):
        first = dataclasses.fields(value[0])[0].name
        return "[" + ", ".join(str(getattr(item, first)) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, tuple | list | frozenset | set):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)


def _set(config: Any, key: str, value: Any) -> Any:
    head, _, rest = key.partition(".")
    if not rest:
        return dataclasses.replace(config, **{head: value})
    return dataclasses.replace(config, **{head: _set(getattr(config, head), rest, value)})


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
