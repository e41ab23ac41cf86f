"""The quarantine in the console, for admins: what could not be processed and why, and the two
ways out that `ticketd quarantine retry|dismiss` give (the same functions, audited with the
admin's session as the actor). A retried message is pending again and the worker is woken."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from web.auth import deps_of
from web.console_render import form_token_ok, message_page, page, signed_in, words
from web.tokens import Principal


def _admin(request: Request) -> tuple[Principal | None, Response | None]:
    """The signed-in admin, or the answer for anyone else."""
    who = signed_in(request)
    if who is None:
        return None, RedirectResponse("/", status_code=303)
    if not who.admin:
        return None, message_page(request, who, 403, words(request)["admins_only"])
    return who, None


def _listing(request: Request, who: Principal, status: int = 200, said: str = "") -> Response:
    rows = deps_of(request).views.quarantine()
    t = words(request)
    return page(
        request, "quarantine.html", who, status, rows=rows, heading=t["quarantine"], said=said
    )


def admin_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/console/quarantine", response_class=HTMLResponse)
    def quarantine(request: Request) -> Response:
        who, refused = _admin(request)
        if who is None:
            return refused or RedirectResponse("/", status_code=303)
        return _listing(request, who)

    @router.post("/console/quarantine/{journal_id}", response_model=None)
    def act(
        request: Request,
        journal_id: int,
        action: Annotated[str, Form()],
        csrf: Annotated[str, Form()] = "",
        reason: Annotated[str, Form(max_length=2000)] = "",
    ) -> Response:
        who, refused = _admin(request)
        if who is None:
            return refused or RedirectResponse("/", status_code=303)
        t = words(request)
        if not form_token_ok(request, csrf):
            return message_page(request, who, 403, t["form_expired"])
        if action == "dismiss" and not reason.strip():
            return _listing(request, who, 422, t["reason_needed"])
        views = deps_of(request).views
        if action == "retry" and views.retry(journal_id, who.actor):
            deps_of(request).message_journaled()
            return _listing(request, who, said=t["retried"].format(id=journal_id))
        if action == "dismiss" and views.dismiss(journal_id, reason.strip(), who.actor):
            return _listing(request, who, said=t["dismissed"].format(id=journal_id))
        return _listing(request, who, 404, t["no_such_quarantined"].format(id=journal_id))

    return router
