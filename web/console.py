"""The console at `/` (issue 20): server-rendered pages (Jinja2, no JavaScript) for agents and
supervisors, in Turkish and English.

Signed in by a mailed one-time link (web/console_session.py), an agent sees the tickets of
their queues and those assigned to them (the API's area, web/queries.py), with the SLA state of
`ticketd sla report` (at risk: past a reminder point; breached); search (the API's full-text
search); a ticket's whole history with its files, and an answer or a note
(web/console_ticket.py); admins also the quarantine (web/console_admin.py). Every ticket shown
is a row of `access_audit`, as in the API.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Cookie, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from outbound.sla import report
from web.auth import deps_of
from web.console_admin import admin_router
from web.console_render import (
    form_token_ok,
    from_elsewhere,
    message_page,
    page,
    secure_cookies,
    signed_in,
    words,
)
from web.console_session import COOKIE, SESSION_HOURS, mail_link, open_session
from web.console_session import sign_out as end_session
from web.console_ticket import ticket_router
from web.errors import ApiError
from web.queries import TicketFilter, list_page
from web.services import WebDeps
from web.tokens import Principal

SHOWN_STATUSES = ("open", "pending")
PAGE_SIZE = 100  # then a link to the next page: no ticket is out of reach


def _sla_states(deps: WebDeps) -> dict[str, str]:
    states: dict[str, str] = {}
    for row in report(deps.db, deps.config(), deps.clock):
        states.update(dict.fromkeys(row["at_risk"], "at_risk"))
        states.update(dict.fromkeys(row["breached"], "breached"))
    return states


def _grouped(items: list[dict[str, Any]], states: dict[str, str]) -> list[dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        item["sla"] = states.get(item["ref"], "on_time")
        groups.setdefault(item["queue"] or "-", []).append(item)
    return [{"name": name, "tickets": tickets} for name, tickets in sorted(groups.items())]


def _base_url(deps: WebDeps) -> str:
    """Where mailed links point: `[http] public_url`, else the configured listen address.
    Never the request's Host header: anyone can send one, and a link built from it would mail
    a valid sign-in token to an address of the sender's choosing."""
    http = deps.config().http
    if http.public_url or http.listen is None:  # (no listen: no console to link to)
        return http.public_url or ""
    host = f"[{http.listen.host}]" if ":" in http.listen.host else http.listen.host
    return f"http://{host}:{http.listen.port}"


def _refused_from_elsewhere(request: Request) -> HTMLResponse:
    return message_page(request, signed_in(request), 403, words(request)["form_expired"])


def _sign_in_routes(router: APIRouter) -> None:
    @router.post("/console/sign-in", response_class=HTMLResponse)
    def ask_link(
        request: Request, address: Annotated[str, Form(max_length=320)], later: BackgroundTasks
    ) -> HTMLResponse:
        if from_elsewhere(request):
            return _refused_from_elsewhere(request)
        deps = deps_of(request)
        # After the answer, and the same answer for any address: neither the page nor its
        # timing tells anybody who the agents are.
        later.add_task(mail_link, deps, address, _base_url(deps))
        return page(request, "login.html", None, sent=True)

    @router.get("/console/link", response_class=HTMLResponse)
    def confirm(request: Request, t: str = "") -> HTMLResponse:
        return page(request, "confirm.html", None, token=t)

    @router.post("/console/link", response_model=None)
    def use_link(request: Request, t: Annotated[str, Form(max_length=200)]) -> Response:
        if from_elsewhere(request):  # another site signing the browser in as someone else
            return _refused_from_elsewhere(request)
        token = open_session(deps_of(request), t)
        if token is None:
            return page(request, "login.html", None, status=403, bad=True)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            COOKIE,
            token,
            max_age=SESSION_HOURS * 3600,
            httponly=True,
            samesite="lax",
            secure=secure_cookies(request),
        )
        return response

    @router.post("/console/sign-out", response_model=None)
    def sign_out(
        request: Request,
        session: Annotated[str | None, Cookie(alias=COOKIE)] = None,
        csrf: Annotated[str, Form()] = "",
    ) -> Response:
        response = RedirectResponse("/", status_code=303)
        if session is None:
            return response  # nothing to end here (and another site's post ends nothing)
        if from_elsewhere(request) or not form_token_ok(request, csrf):
            return _refused_from_elsewhere(request)
        end_session(deps_of(request), session)
        response.delete_cookie(COOKIE)
        return response


def _tickets_page(
    request: Request, who: Principal, wanted: TicketFilter, heading: str, grouped: bool
) -> Response:
    deps = deps_of(request)
    action = "console search" if wanted.q is not None else "console list"
    try:
        found = list_page(deps.db, who, wanted, deps.clock.now(), action)
    except ApiError as error:  # a search of nothing but punctuation
        return message_page(request, who, error.status, words(request)["no_words"])
    states = _sla_states(deps)
    if grouped:
        groups = _grouped(found["items"], states)
    else:
        for item in found["items"]:
            item["sla"] = states.get(item["ref"], "on_time")
        groups = [{"name": words(request)["results"], "tickets": found["items"]}]
    more = None
    if found["next_cursor"]:
        more = str(request.url.include_query_params(cursor=found["next_cursor"]))
        more = more.removeprefix(f"{request.url.scheme}://{request.url.netloc}")
    return page(request, "tickets.html", who, groups=groups, heading=heading, q=wanted.q, more=more)


def _list_routes(router: APIRouter) -> None:
    @router.get("/", response_class=HTMLResponse)
    def queues(request: Request, cursor: str | None = None) -> Response:
        who = signed_in(request)
        if who is None:
            return page(request, "login.html", None)
        wanted = TicketFilter(limit=PAGE_SIZE, cursor=cursor, statuses=SHOWN_STATUSES)
        return _tickets_page(request, who, wanted, words(request)["queues"], grouped=True)

    @router.get("/console/search", response_class=HTMLResponse)
    def search(request: Request, q: str = "", cursor: str | None = None) -> Response:
        who = signed_in(request)
        if who is None or not q.strip():
            return RedirectResponse("/", status_code=303)
        wanted = TicketFilter(q=q[:200], limit=PAGE_SIZE, cursor=cursor)
        heading = f"{words(request)['search']}: {q[:200]}"
        return _tickets_page(request, who, wanted, heading, grouped=False)


def console_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)
    _sign_in_routes(router)
    _list_routes(router)
    router.include_router(ticket_router())
    router.include_router(admin_router())
    return router
