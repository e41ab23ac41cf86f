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

from fastapi import APIRouter, Cookie, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from outbound.sla import report
from web.auth import deps_of
from web.console_admin import admin_router
from web.console_render import form_token_ok, message_page, page, signed_in, words
from web.console_session import COOKIE, SESSION_HOURS, mail_link, open_session
from web.console_session import sign_out as end_session
from web.console_ticket import ticket_router
from web.queries import TicketFilter, list_page
from web.services import WebDeps

SHOWN_STATUSES = ("open", "pending")


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


def _base_url(request: Request, deps: WebDeps) -> str:
    public = deps.config().http.public_url
    return public or str(request.base_url)


def _sign_in_routes(router: APIRouter) -> None:
    @router.post("/console/sign-in", response_class=HTMLResponse)
    def ask_link(request: Request, address: Annotated[str, Form()]) -> HTMLResponse:
        deps = deps_of(request)
        mail_link(deps, address, _base_url(request, deps))
        # The same answer for any address: the page tells nobody who the agents are.
        return page(request, "login.html", None, sent=True)

    @router.get("/console/link", response_class=HTMLResponse)
    def confirm(request: Request, t: str = "") -> HTMLResponse:
        return page(request, "confirm.html", None, token=t)

    @router.post("/console/link", response_model=None)
    def use_link(request: Request, t: Annotated[str, Form()]) -> Response:
        token = open_session(deps_of(request), t)
        if token is None:
            return page(request, "login.html", None, status=403, bad=True)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            COOKIE, token, max_age=SESSION_HOURS * 3600, httponly=True, samesite="lax"
        )
        return response

    @router.post("/console/sign-out", response_model=None)
    def sign_out(
        request: Request,
        session: Annotated[str | None, Cookie(alias=COOKIE)] = None,
        csrf: Annotated[str, Form()] = "",
    ) -> Response:
        if session and not form_token_ok(request, csrf):  # another site's form
            return message_page(request, signed_in(request), 403, words(request)["form_expired"])
        end_session(deps_of(request), session)
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(COOKIE)
        return response


def _list_routes(router: APIRouter) -> None:
    @router.get("/", response_class=HTMLResponse)
    def queues(request: Request) -> HTMLResponse:
        who = signed_in(request)
        if who is None:
            return page(request, "login.html", None)
        deps = deps_of(request)
        found = list_page(deps.db, who, TicketFilter(limit=200), deps.clock.now())["items"]
        shown = [item for item in found if item["status"] in SHOWN_STATUSES]
        groups = _grouped(shown, _sla_states(deps))
        return page(request, "tickets.html", who, groups=groups, heading=words(request)["queues"])

    @router.get("/console/search", response_class=HTMLResponse)
    def search(request: Request, q: str = "") -> Response:
        who = signed_in(request)
        if who is None:
            return RedirectResponse("/", status_code=303)
        deps = deps_of(request)
        found = list_page(deps.db, who, TicketFilter(q=q, limit=200), deps.clock.now())["items"]
        t = words(request)
        states = _sla_states(deps)
        for item in found:
            item["sla"] = states.get(item["ref"], "on_time")
        groups = [{"name": t["results"], "tickets": found}]
        return page(request, "tickets.html", who, groups=groups, q=q, heading=f"{t['search']}: {q}")


def console_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)
    _sign_in_routes(router)
    _list_routes(router)
    router.include_router(ticket_router())
    router.include_router(admin_router())
    return router
