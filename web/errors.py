"""The API's errors: always JSON `{"error": "..."}` with the status that says what is wrong
(outside the API's paths, a path that is no page is the console's HTML page: web/app.py)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from domain.errors import Permanent


class ApiError(Permanent):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def unauthorized(message: str = "a valid bearer token is required") -> ApiError:
    return ApiError(401, message)


def not_found(what: str) -> ApiError:
    return ApiError(404, f"no {what}")


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


class Error(BaseModel):
    """What every error answers (and so /openapi.json documents for each of them)."""

    error: str = Field(description="what is wrong, in words")


_MEANING = {
    400: "a request this API cannot take (the message says why)",
    401: "no valid bearer token (missing, unknown or revoked)",
    403: "not for this token (answers and notes are an agent's)",
    404: "no such thing, or not in this token's queues (the same answer: it does not exist)",
    409: "refused with the words an agent's mail would get (a no-reply customer...)",
    410: "a file the history names whose bytes retention removed",
    422: "a body, parameter or value that is not allowed (the message names it)",
}


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses` of a route: each of these statuses with the Error schema. A 422 given
    here also replaces FastAPI's own `HTTPValidationError`, which the API never answers."""
    return {status: {"model": Error, "description": _MEANING[status]} for status in statuses}
