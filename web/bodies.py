"""The JSON bodies the API takes (FastAPI validates them and documents them in /openapi.json)."""

from __future__ import annotations

import unicodedata

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Control characters (CR, LF, NEL...) and the line and paragraph separators: Python's email
# package refuses a header with any of them (str.splitlines breaks there). Not the tab
# (NewTicketBody.one_line): whitespace in a header, as mail clients write it.
_BREAKS = {"Cc", "Zl", "Zp"}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not a no-op


class ReplyBody(Strict):
    text: str = Field(min_length=1, max_length=1_000_000, description="the answer, plain text")


class NoteBody(Strict):
    text: str = Field(min_length=1, max_length=1_000_000, description="seen by agents only")


class ChangeBody(Strict):
    status: str | None = Field(None, description="open, pending or closed")
    assignee: str | None = Field(None, description='an agent\'s address; "" unassigns')
    queue: str | None = Field(None, description="a configured queue")
    priority: str | None = Field(None, description="high, normal or low")


class NewTicketBody(Strict):
    customer: str = Field(description="the customer's address: answers go there")
    name: str | None = Field(None, max_length=200, description="the customer's name")
    subject: str = Field(
        min_length=1, max_length=998, description="one line (a tab is whitespace, as in mail)"
    )
    text: str = Field(min_length=1, max_length=1_000_000, description="what the customer said")

    @field_validator("name", "subject")
    @classmethod
    def one_line(cls, value: str | None) -> str | None:
        """A header of the mail the ticket is made of: a line break would end it (and could
        start another, `Bcc:`), a control character has no place in it. A tab is whitespace:
        the pipeline reads the header as it reads a customer's (ingest/parsing.py: its ends
        stripped, a tab inside kept), so the ticket's subject is the one mail would give."""
        if value is not None and any(
            c != "\t" and unicodedata.category(c) in _BREAKS for c in value
        ):
            raise ValueError("one line of text: no line breaks or control characters")
        return value
