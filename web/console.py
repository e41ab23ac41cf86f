"""The console at `/` (issue 20): server-rendered pages (Jinja2, no JavaScript) for agents and
supervisors, in Turkish and English.

Signed in by a mailed one-time link (web/console_session.py), an agent sees the tickets of
their queues and those assigned to them (the API's area, web/queries.py), with the SLA state of
`ticketd sla report` (at risk: past a reminder point; breached); a ticket's whole history with
its files; search (the API's full-text search); admins also the quarantine. Every ticket shown
is a row of `access_audit`, as in the API. The language is the desk's until `?lang=` changes it
(kept in a cookie).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Cookie, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy import select

from domain.refs import normalise
from outbound.sla import report
from storage.models import JOURNAL_QUARANTINED, AccessAudit, JournalEntry, Ticket
from web.auth import deps_of
from web.console_session import COOKIE, SESSION_HOURS, mail_link, open_session, principal
from web.console_session import sign_out as end_session
from web.console_text import TEXT
from web.queries import TicketFilter, in_area, list_page
from web.services import WebDeps
from web.tokens import Principal

LANG_COOKIE = "ticketd_lang"
SHOWN_STATUSES = ("open", "pending")
_env = Environment(
    loader=PackageLoader("web", "console_templates"), autoescape=select_autoescape(["html"])
)


def _language(request: Request, deps: WebDeps) -> str:
    wanted = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE)
    return wanted if wanted in TEXT else deps.config().desk.language


def page(
    request: Request, name: str, who: Principal | None, status: int = 200, **context: Any
) -> HTMLResponse:
    deps = deps_of(request)
    lang = _language(request, deps)
    html = _env.get_template(name).render(
        lang=lang,
        t=TEXT[lang],
        who=who.actor if who else None,
        admin=who is not None and who.admin,
        **context,
    )
    response = HTMLResponse(html, status_code=status)
    if "lang" in request.query_params and lang == request.query_params["lang"]:
        response.set_cookie(LANG_COOKIE, lang, samesite="lax", httponly=True)
    return response


def _signed_in(request: Request) -> Principal | None:
    return principal(deps_of(request), request.cookies.get(COOKIE))


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


def _ticket_in_area(deps: WebDeps, who: Principal, ref: str) -> Ticket | None:
    canonical = normalise(ref.strip().lstrip("#")) or ref.strip().upper()
    query = select(Ticket).where(Ticket.ref == canonical)
    area = in_area(who)
    if area is not None:
        query = query.where(area)
    with deps.db.transaction() as session:
        ticket = session.scalar(query)
        if ticket is not None:
            session.add(
                AccessAudit(
                    actor=who.actor,
                    action="console show",
                    customer=ticket.customer,
                    ticket_id=ticket.id,
                    at=deps.clock.now(),
                )
            )
            session.expunge(ticket)
        return ticket


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

    @router.post("/console/sign-out")
    def sign_out(
        request: Request, session: Annotated[str | None, Cookie(alias=COOKIE)] = None
    ) -> Response:
        end_session(deps_of(request), session)
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(COOKIE)
        return response


def _ticket_routes(router: APIRouter) -> None:
    @router.get("/", response_class=HTMLResponse)
    def queues(request: Request) -> HTMLResponse:
        who = _signed_in(request)
        if who is None:
            return page(request, "login.html", None)
        deps = deps_of(request)
        found = list_page(deps.db, who, TicketFilter(limit=200), deps.clock.now())["items"]
        shown = [item for item in found if item["status"] in SHOWN_STATUSES]
        groups = _grouped(shown, _sla_states(deps))
        return page(
            request,
            "tickets.html",
            who,
            groups=groups,
            heading=TEXT[_language(request, deps)]["queues"],
        )

    @router.get("/console/search", response_class=HTMLResponse)
    def search(request: Request, q: str = "") -> Response:
        who = _signed_in(request)
        if who is None:
            return RedirectResponse("/", status_code=303)
        deps = deps_of(request)
        found = list_page(deps.db, who, TicketFilter(q=q, limit=200), deps.clock.now())["items"]
        t = TEXT[_language(request, deps)]
        groups = [{"name": t["results"], "tickets": found}]
        for item in found:
            item["sla"] = _sla_states(deps).get(item["ref"], "on_time")
        return page(request, "tickets.html", who, groups=groups, q=q, heading=f"{t['search']}: {q}")

    @router.get("/console/tickets/{ref}", response_class=HTMLResponse)
    def ticket(request: Request, ref: str, answered: bool = False) -> Response:
        who = _signed_in(request)
        if who is None:
            return RedirectResponse("/", status_code=303)
        deps = deps_of(request)
        found = _ticket_in_area(deps, who, ref)
        shown = deps.views.show_ticket(found.ref) if found is not None else None
        if shown is None:
            t = TEXT[_language(request, deps)]
            return page(request, "tickets.html", who, status=404, groups=[], heading=t["not_found"])
        return page(
            request,
            "ticket.html",
            who,
            ticket=shown,
            heading=f"#{shown['ref']} {shown.get('subject', '')}",
            answered=answered,
            can_answer=False,
        )


def _admin_routes(router: APIRouter) -> None:
    @router.get("/console/quarantine", response_class=HTMLResponse)
    def quarantine(request: Request) -> Response:
        who = _signed_in(request)
        if who is None:
            return RedirectResponse("/", status_code=303)
        deps = deps_of(request)
        t = TEXT[_language(request, deps)]
        if not who.admin:
            return page(
                request, "tickets.html", who, status=403, groups=[], heading=t["admins_only"]
            )
        with deps.db.read() as session:
            rows = [
                {"id": e.id, "received_at": e.received_at.isoformat(), "reason": e.reason}
                for e in session.scalars(
                    select(JournalEntry)
                    .where(JournalEntry.state == JOURNAL_QUARANTINED)
                    .order_by(JournalEntry.id)
                )
            ]
        return page(request, "quarantine.html", who, rows=rows, heading=t["quarantine"])


def console_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)
    _sign_in_routes(router)
    _ticket_routes(router)
    _admin_routes(router)
    return router
