"""A customer's request as the repeated-request check sees it: its normalised words, their
digest, and when it was written.

The digest and the moment are kept on the ticket its first request opened (`Ticket.request_at`,
`Ticket.request_print`), so the check finds a customer's recent requests by index and compares
only those (ingest/thread_finder.py).
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from domain.message import ParsedMessage

# Only the start of a request is compared: a long mail repeated is the same request.
COMPARE_CHARS = 2000
_NOT_WORD = re.compile(r"\W+")


def normalised(subject: str, text: str) -> str:
    """Lowercase words with single spaces: punctuation, case and line breaks do not count."""
    return _NOT_WORD.sub(" ", f"{subject} {text}".lower()).strip()[:COMPARE_CHARS]


def request_print(words: str) -> str | None:
    """The digest of normalised words: equal digests, the same request word for word."""
    return hashlib.sha256(words.encode()).hexdigest() if words else None


def written_at(message: ParsedMessage, now: datetime) -> datetime:
    """When the request was written, as its Date says, never later than `now` (a Date in the
    future, a missing or unreadable one: `now`). An imported year of mail is measured in its
    own time, not all of it as "just now"; live mail's Date is the moment it was sent."""
    value = message.header("date")
    if not value:
        return now
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return now
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return min(when, now)
