"""What every database step of the pipeline gets: the open transaction and the settings."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from outbound.templating import Templates
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
