"""What the HTTP interface gets from the application that starts it (ticketd/daemon.py).

ticketd sits above web/ (it starts the server), so what web/ needs of ticketd comes in as
values: `DeskViews` is answered by ticketd/web_views.py with the very functions the command line
uses (`tickets show --json`, `health`, `kyc status`), so the API and the commands cannot drift.
The configuration and the templates are read through callables: a SIGHUP swaps them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from domain.clock import Clock
from domain.config import Config
from domain.templating import Templates
from storage.blobs import BlobStore
from storage.db import Database
from storage.documents import DocumentStore


class DeskViews(Protocol):
    def show_ticket(self, ref: str) -> dict[str, Any] | None:
        """The ticket as `tickets show REF --json` gives it (a merged one's survivor)."""

    def health(self) -> dict[str, Any]:
        """As `ticketd health --json`: `healthy` and the problems."""

    def verification(self, customer: str) -> dict[str, Any] | None:
        """The customer's identity verification as `kyc status` gives it, or None."""

    def quarantine(self) -> list[dict[str, Any]]:
        """As `quarantine list --json`."""

    def retry(self, journal_id: int, actor: str) -> bool:
        """As `quarantine retry ID` (audited): False when no such quarantined message."""

    def dismiss(self, journal_id: int, reason: str, actor: str) -> str | None:
        """As `quarantine dismiss ID --reason` (audited): its old reason, or None."""


@dataclass(frozen=True)
class WebDeps:
    db: Database
    clock: Clock
    blobs: BlobStore
    views: DeskViews
    config: Callable[[], Config]
    templates: Callable[[], Templates]
    documents: Callable[[], DocumentStore]
    # Called after a change queued mail (an answer): wakes the daemon's sender. Safe to call
    # from any thread.
    mail_queued: Callable[[], None]
    # Called after a message was written into the journal (`POST /api/v1/tickets`): wakes the
    # worker. Safe to call from any thread.
    message_journaled: Callable[[], None] = lambda: None
