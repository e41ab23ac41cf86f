"""ticketd's one error hierarchy, which the pipeline's runner (ingest/runner.py) maps to what
becomes of a message:

    TicketdError
    ├── Temporary   retry later: the message stays pending, the daemon backs off
    ├── Permanent   quarantine with the reason (a command: refuse with it)
    └── Ignored     the message needs no ticket: recorded as ignored with the reason

An error outside the hierarchy (a bug) is treated as permanent: quarantined with its type and
the place it was raised. A database that went away (SQLAlchemy's OperationalError, which cannot
join the hierarchy) is treated as temporary.
"""

from __future__ import annotations

from storage.errors import Permanent, Temporary, TicketdError

__all__ = ["Ignored", "Permanent", "Temporary", "TicketdError"]


class Ignored(TicketdError):
    """The message is recorded but needs no ticket: a loop, a duplicate, a bounce about no mail
    of ours. Steps return `Decision.ignore`; code below the steps raises this."""
