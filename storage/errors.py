"""The roots of ticketd's one error hierarchy, at the bottom layer so that every package may
raise within it (storage included); the packages above import them from `domain.errors`.

What an error means to the one who handles it, not where it came from:
- `Temporary`: the same work may succeed later (a database or a scanner that went away); the
  message stays pending and the daemon backs off.
- `Permanent`: the same input fails the same way again (a damaged blob, a message past a
  limit, a refused command); the message is quarantined with the reason, for a person.
"""

from __future__ import annotations


class TicketdError(Exception):
    """An error ticketd raises on purpose, with a reason meant for people."""


class Temporary(TicketdError):
    """Retry later: nothing was decided about the message."""


class Permanent(TicketdError):
    """Retrying the same input will not help: quarantine it (or refuse the command)."""

    def quarantine_reason(self) -> str | None:
        """What a quarantined message's reason says; None: the error and where it was
        raised (the default of ingest/runner.py)."""
        return None
