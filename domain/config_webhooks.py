"""The `[[webhooks]]` tables (issue 20): where ticketd posts its events, signed.

Each table has `url` (http or https), `secret` (or `secret_file`, a file holding it: the key
of the Standard Webhooks signature; `whsec_` and base64 as the Standard Webhooks libraries make
it, or any other text, used as its UTF-8 bytes) and `events`, the event types the endpoint
wants (storage/webhook_events.py lists them). One endpoint per URL.

Declared as a table (domain/config_schema.py); what the keys say together (one of secret and
secret_file, the secret long enough, one table per URL) is checked in `build_webhooks`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from domain.config_kinds import Custom, FilePath, Invalid, Problems, Text, Url
from domain.config_schema import Table, key
from storage.webhook_events import EVENT_TYPES

# Shorter keys are guessable; the Standard Webhooks libraries make 24 to 64 bytes.
MIN_SECRET_LENGTH = 16


@dataclass(frozen=True)
class WebhookConfig:
    url: str
    secret: str
    events: tuple[str, ...]


def _events(value: Any, base: Path) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise Invalid("must be a non-empty list of event types")
    unknown = [v for v in value if v not in EVENT_TYPES]
    if unknown:
        raise Invalid(f"unknown {', '.join(unknown)}; known: {', '.join(EVENT_TYPES)}")
    return tuple(dict.fromkeys(value))


class WebhookTable(Table):
    url: Annotated[str, Url()] = key(doc="where the events are posted")
    secret: Annotated[str | None, Text("a string", empty=True)] = key(
        None, doc="the key of the Standard Webhooks signature (or secret_file)"
    )
    secret_file: Annotated[Path | None, FilePath()] = key(None, doc="a file holding it")
    events: Annotated[tuple[str, ...], Custom("a non-empty list of event types", _events)] = key(
        doc=f"the event types the endpoint wants: {', '.join(EVENT_TYPES)}"
    )


def _secret(problems: Problems, table: WebhookTable, at: str) -> str | None:
    if (table.secret is None) == (table.secret_file is None):
        problems.append((f"{at}.secret", "give either secret or secret_file (one of them)"))
        return None
    secret, name = table.secret, "secret"
    if table.secret_file is not None:
        name = "secret_file"
        try:
            secret = table.secret_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as error:
            problems.append((f"{at}.secret_file", f"cannot read {table.secret_file}: {error}"))
            return None
    if secret is None or len(secret) < MIN_SECRET_LENGTH:
        problems.append((f"{at}.{name}", f"must be at least {MIN_SECRET_LENGTH} characters"))
        return None
    return secret


def build_webhooks(
    problems: Problems, tables: list[tuple[int, WebhookTable]], base: Path
) -> tuple[WebhookConfig, ...]:
    """The endpoints; problems are named `webhooks[N].key`."""
    hooks: list[WebhookConfig] = []
    for index, table in tables:
        at = f"webhooks[{index}]"
        secret = _secret(problems, table, at)
        if any(hook.url == table.url for hook in hooks):
            problems.append(
                (f"{at}.url", f"{table.url} is already the URL of another [[webhooks]]")
            )
        elif secret is not None:
            hooks.append(WebhookConfig(table.url, secret, table.events))
    return tuple(hooks)
