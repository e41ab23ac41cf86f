"""What every database step of the pipeline gets: the open transaction and the settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from ingest.parsing import ParsedMessage
from outbound.templating import Templates
from storage.documents import DocumentStore
from storage.models import JournalEntry
from ticketd.clock import Clock
from ticketd.config import Config


class Ignore(Exception):
    """The message is recorded but needs no ticket: a bounce, an auto-reply, a duplicate."""


@dataclass(frozen=True)
class Context:
    session: Session
    config: Config
    clock: Clock
    templates: Templates
    # Opens the identity-document store on first use: a broken key file quarantines the
    # messages that carry documents (with the reason) instead of stopping all mail.
    documents: Callable[[], DocumentStore] | None = None
    # The sender verification of our MX (issue 17), when there is one: True when an aligned
    # DKIM or SPF pass proves the message's From (ingest/sender_proof.py). None: nothing is
    # proven by authentication yet, only by answering our signed mail.
    verify_sender: Callable[[JournalEntry, ParsedMessage], bool] | None = None
