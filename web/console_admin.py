"""The quarantine in the console, for admins: what could not be processed and why, and the two
ways out that `ticketd quarantine retry|dismiss` give (the same functions, audited with the
admin's session as the actor). A retried message is pending again and the worker is woken."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from storage.models import AccessAudit
from web.auth import deps_of
from web.console_render import form_token_ok, from_elsewhere, message_page, page, signed_in, words
from web.tokens import Principal


def admin(request: Request) -> tuple[Principal | None, Response | None]:
    """The signed-in admin, or the answer for anyone else."""
    who = signed_in(request)
    if who is None:
        return None, RedirectResponse("/", status_code=303)
    if not who.admin:
        return None, message_page(request, who, 403, words(request)["admins_only"])
    return who, None


def listing(request: Request, who: Principal, said: str = "", status: int = 200) -> Response:
    """The quarantine, with what the last action (or a form sent back) says above it."""
    deps = deps_of(request)
    rows = deps.views.quarantine()
    with deps.db.transaction() as session:  # the reasons name senders and subjects
        detail = f"{len(rows)} quarantined"
        session.add(
            AccessAudit(
                actor=who.actor, action="console quarantine", at=deps.clock.now(), detail=detail
            )
        )
    t = words(request)
    return page(
        request, "quarantine.html", who, status, rows=rows, heading=t["quarantine"], said=said
    )


# What an action's redirect says (the page after it), and the status the page answers with.
DONE = {"retried": 200, "dismissed": 200, "reason_needed": 422, "no_such_quarantined": 404}


def admin_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/console/quarantine", response_class=HTMLResponse)
    def quarantine(request: Request, done: str = "", id: int = 0) -> Response:
        who, refused = admin(request)
        if who is None:
            return refused or RedirectResponse("/", status_code=303)
        said = words(request)[done].format(id=id) if done in DONE else ""
        return listing(request, who, said, DONE.get(done, 200))

    @router.post("/console/quarantine/{journal_id}", response_model=None)
    def act(
        request: Request,
        journal_id: int,
        action: Annotated[str, Form()],
        csrf: Annotated[str, Form()] = "",
        reason: Annotated[str, Form(max_length=2000)] = "",
    ) -> Response:
        who, refused = admin(request)
        if who is None:
            return refused or RedirectResponse("/", status_code=303)
        if from_elsewhere(request) or not form_token_ok(request, csrf):
            return message_page(request, who, 403, words(request)["form_expired"])
        done = _apply(request, who, journal_id, action, reason.strip())
        # Post, then redirect: a reload of the page after it does not act again.
        return RedirectResponse(f"/console/quarantine?done={done}&id={journal_id}", 303)

    return router


def _apply(request: Request, who: Principal, journal_id: int, action: str, reason: str) -> str:
    deps = deps_of(request)
    if action == "dismiss" and not reason:
        return "reason_needed"
    if action == "retry" and deps.views.retry(journal_id, who.actor):
        deps.message_journaled()
        return "retried"
    if action == "dismiss" and deps.views.dismiss(journal_id, reason, who.actor):
        return "dismissed"
    return "no_such_quarantined"
