"""The pipeline step that tells the agents what of a message the MIME limits left unread.

A message past a shape limit (ingest/mime_shape.py) still makes its ticket with what could be
read: honest mail can be odd, and a customer's words should not be lost to a broken part. The
agents see a system note saying what is missing, so they can ask for it again.
"""

from __future__ import annotations

from domain.context import Context
from domain.history import add_note
from domain.message import ParsedMessage
from storage.models import JournalEntry, Ticket


def step_shape_note(
    ctx: Context, entry: JournalEntry, message: ParsedMessage, ticket: Ticket
) -> str | None:
    """A note on the ticket when something was left unread; what the outcome says, or None."""
    if not message.shape_notes:
        return None
    add_note(
        ctx,
        ticket,
        "Message only partly read",
        "\n".join(message.shape_notes),
        f"note:shape:{message.dedupe_key}",
        entry.id,
    )
    return f"partly read ({len(message.shape_notes)} note(s))"
