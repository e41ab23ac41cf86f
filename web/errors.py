"""The API's errors: always JSON `{"error": "..."}` with the status that says what is wrong."""

from __future__ import annotations

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
