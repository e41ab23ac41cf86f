"""The JSON bodies the API takes (FastAPI validates them and documents them in /openapi.json)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


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
    subject: str = Field(min_length=1, max_length=998)
    text: str = Field(min_length=1, max_length=1_000_000, description="what the customer said")
