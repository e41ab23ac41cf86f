"""The `[[webhooks]]` tables (issue 20): where ticketd posts its events, signed.

Each table has `url` (http or https), `secret` (or `secret_file`, a file holding it: the key
of the Standard Webhooks signature; `whsec_` and base64 as the Standard Webhooks libraries make
it, or any other text, used as its UTF-8 bytes) and `events`, the event types the endpoint
wants (storage/webhook_events.py lists them). One endpoint per URL.

Parsed into frozen records; every problem is appended to the caller's list as (key, reason).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from domain.config_keys import check_keys
from storage.webhook_events import EVENT_TYPES

Problems = list[tuple[str, str]]
WEBHOOK_KEYS = ("url", "secret", "secret_file", "events")
# Shorter keys are guessable; the Standard Webhooks libraries make 24 to 64 bytes.
MIN_SECRET_LENGTH = 16


@dataclass(frozen=True)
class WebhookConfig:
    url: str
    secret: str
    events: tuple[str, ...]


def _url(problems: Problems, table: dict[str, Any], at: str) -> str | None:
    value = table.get("url")
    if value is None:
        problems.append((f"{at}.url", "is required"))
        return None
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        problems.append((f"{at}.url", f"{value!r} is not an http:// or https:// URL"))
        return None
    return str(value)


def _secret(problems: Problems, table: dict[str, Any], at: str, base: Path) -> str | None:
    inline, file = table.get("secret"), table.get("secret_file")
    if (inline is None) == (file is None):
        problems.append((f"{at}.secret", "give either secret or secret_file (one of them)"))
        return None
    if file is not None:
        if not isinstance(file, str) or not file.strip():
            problems.append((f"{at}.secret_file", "must be a path"))
            return None
        path = Path(file).expanduser()
        path = path if path.is_absolute() else base / path
        try:
            inline = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as error:
            problems.append((f"{at}.secret_file", f"cannot read {path}: {error}"))
            return None
    key = "secret" if file is None else "secret_file"
    if not isinstance(inline, str) or len(inline.strip()) < MIN_SECRET_LENGTH:
        problems.append((f"{at}.{key}", f"must be at least {MIN_SECRET_LENGTH} characters"))
        return None
    return inline.strip()


def _events(problems: Problems, table: dict[str, Any], at: str) -> tuple[str, ...]:
    value = table.get("events")
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        problems.append((f"{at}.events", "must be a non-empty list of event types"))
        return ()
    unknown = [v for v in value if v not in EVENT_TYPES]
    if unknown:
        problems.append(
            (f"{at}.events", f"unknown {', '.join(unknown)}; known: {', '.join(EVENT_TYPES)}")
        )
        return ()
    return tuple(dict.fromkeys(value))


def parse_webhooks(
    problems: Problems, data: dict[str, Any], base: Path
) -> tuple[WebhookConfig, ...]:
    """The `[[webhooks]]` array of tables; problems are named `webhooks[N].key`."""
    raw = data.get("webhooks", [])
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        problems.append(("webhooks", "must be an array of tables ([[webhooks]])"))
        return ()
    hooks: list[WebhookConfig] = []
    for index, table in enumerate(raw):
        at = f"webhooks[{index}]"
        check_keys(problems, table, at, WEBHOOK_KEYS)
        url, secret, events = (
            _url(problems, table, at),
            _secret(problems, table, at, base),
            _events(problems, table, at),
        )
        if url is not None and any(hook.url == url for hook in hooks):
            problems.append((f"{at}.url", f"{url} is already the URL of another [[webhooks]]"))
        elif url is not None and secret is not None and events:
            hooks.append(WebhookConfig(url, secret, events))
    return tuple(hooks)
