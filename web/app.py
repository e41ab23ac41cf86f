"""The ASGI application (FastAPI): /healthz, /openapi.json and the API under /api/v1.

Endpoints are plain functions, so FastAPI runs them in its thread pool: the database work of a
request never blocks the daemon's event loop (the SMTP listener shares it). The errors of the
API's paths are JSON (web/errors.py); those of every other path, the console's, are its HTML
pages (web/console_errors.py): a browser never gets JSON.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from web import attachments, customer_routes, ticket_routes
from web.auth import Caller, deps_of
from web.console import console_router
from web.console_errors import error_page, failed_page, invalid_form_page
from web.errors import ApiError, documented
from web.queries import DEFAULT_LIMIT, MAX_LIMIT, TicketFilter, checked, list_page
from web.services import WebDeps

log = logging.getLogger("ticketd.http")


def is_api_path(path: str) -> bool:
    """The API's paths, whose errors are JSON; every other path is the console's (at `/`),
    whose errors are its pages."""
    return path in ("/api", "/openapi.json", "/healthz") or path.startswith("/api/")


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _takes(request: Request, method: str) -> bool:
    """Whether a route of the app takes `method` on the request's path (asked of each route as
    the router asks it: FastAPI nests an included router's routes)."""
    probe = {**request.scope, "method": method}
    return any(route.matches(probe)[0] == Match.FULL for route in request.app.router.routes)


def _headers(request: Request, error: StarletteHTTPException) -> dict[str, str]:
    """The headers the exception carries (`Allow`, `Retry-After`...), which every answer to it
    keeps. A 405's `Allow` names every method of the path (RFC 9110 15.5.6): Starlette's names
    only those of the first route that matched the path, and a path can have a route per
    method (`GET` and `POST /api/v1/tickets`)."""
    headers = dict(error.headers or {})
    if error.status_code == 405:
        # HEAD is taken wherever GET is (_HeadAsGet), though no route names it.
        allowed = [m for m in _METHODS if _takes(request, "GET" if m == "HEAD" else m)]
        headers["Allow"] = ", ".join(allowed) or headers.get("Allow", "")
    return headers


def _install_errors(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
        return _error(error.status, error.message, headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> Response:
        if not is_api_path(request.url.path):  # a console form: shown again, saying why
            return await run_in_threadpool(invalid_form_page, request, error.errors(), error.body)
        problems = [
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}"
            for e in error.errors()
        ]
        return _error(422, "; ".join(problems) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        headers = _headers(request, error)
        if not is_api_path(request.url.path):
            return await run_in_threadpool(error_page, request, error.status_code, headers)
        return _error(error.status_code, str(error.detail), headers)

    app.add_middleware(_Unexpected)
    app.add_middleware(_HeadAsGet)  # outside _Unexpected: its 500 is a GET's too, bodiless


class _HeadAsGet:
    """HEAD answers as GET would, without the body (RFC 9110 9.3.2): the same status and
    headers, Content-Length as GET's. FastAPI's routes take only the methods they name, so HEAD
    on every GET route was a 405; Starlette's own routes add HEAD beside GET, but FastAPI's
    don't, and adding it to them would list a HEAD operation of every path in /openapi.json.
    The request is routed as GET (a path that takes no GET answers HEAD with GET's 404 or 405)
    and the body is dropped here, whatever server runs the app (uvicorn drops it too)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)


class _Unexpected:
    """A request that failed: one 500 to the client (never a traceback: JSON on the API's paths,
    the console's page on the others) and one traceback in the log. Not an exception handler
    for Exception: Starlette's ServerErrorMiddleware re-raises after calling one, so uvicorn
    logged the traceback a second time."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as error:
            log.exception("%s %s failed", scope.get("method", ""), scope.get("path", ""))
            if not started:  # else the client sees the connection end mid-response
                await _failed(scope, error)(scope, receive, send)


def _failed(scope: Scope, error: Exception) -> Response:
    if not is_api_path(scope.get("path", "")):
        return failed_page(Request(scope))
    return _error(500, f"internal error ({type(error).__name__}); the daemon's log has it")


class HealthProblem(BaseModel):
    check: str = Field(description="which check: stuck_journal, quarantine, outbox_stuck...")
    reason: str = Field(description="what needs a person, in words")


class Health(BaseModel):
    """What `/healthz` answers, healthy or not: `ticketd health --json`."""

    model_config = ConfigDict(extra="allow")  # and the counts the checks read

    healthy: bool
    problems: list[HealthProblem]


def _health_routes(app: FastAPI) -> None:
    @app.get(
        "/healthz",
        tags=["health"],
        summary="as `ticketd health --json`; no token",
        responses={
            200: {"model": Health, "description": "nothing needs a person"},
            503: {"model": Health, "description": "something needs a person: the problems"},
        },
    )
    def healthz(request: Request) -> JSONResponse:
        report = deps_of(request).views.health()
        return JSONResponse(report, status_code=200 if report.get("healthy") else 503)


def _ticket_list_routes(app: FastAPI) -> None:
    @app.get(
        "/api/v1/tickets",
        tags=["tickets"],
        summary="tickets, newest first",
        responses=documented(400, 401, 422),
    )
    def tickets(
        request: Request,
        caller: Caller,
        status: Annotated[
            str | None, Query(description="open, pending, closed or merged (any case)")
        ] = None,
        queue: str | None = None,
        assignee: str | None = None,
        customer: str | None = None,
        q: Annotated[str | None, Query(description="full-text search, Turkish-aware")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
        cursor: Annotated[str | None, Query(description="next_cursor of the last page")] = None,
    ) -> dict[str, Any]:
        deps = deps_of(request)
        wanted = checked(
            TicketFilter(status, queue, assignee, customer, q, limit, cursor),
            (configured.name for configured in deps.config().team.queues),
        )
        return list_page(deps.db, caller, wanted, deps.clock.now())


def create_app(deps: WebDeps) -> FastAPI:
    app = FastAPI(
        title="ticketd",
        version="1",
        description="Tickets, their history and files, search, answers and changes.",
        docs_url=None,
        redoc_url=None,
    )
    app.state.deps = deps
    _install_errors(app)
    _health_routes(app)
    _ticket_list_routes(app)
    ticket_routes.install(app)
    customer_routes.install(app)
    attachments.install(app)
    app.include_router(console_router())
    return app
