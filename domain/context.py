"""What every database step of the pipeline gets: the open transaction and the settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from domain.clock import Clock
from domain.config import Config
from domain.templating import Templates
from storage.documents import DocumentStore


@dataclass(frozen=True)
class Context:
    session: Session
    config: Config
    clock: Clock
    templates: Templates
    # Opens the identity-document store on first use: a broken key file quarantines the
    # messages that carry documents (with the reason) instead of stopping all mail.
    documents: Callable[[], DocumentStore] | None = None
    # The clock mail is queued by, when decisions run at another time than now (`sla tick --at
    # TIME`): what such a run composes is deliverable now, not at TIME. None: `clock`.
    outbox_clock: Clock | None = None
