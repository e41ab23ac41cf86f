"""A ticket in the console: its whole history with its files, and the agent's answer or note.

The page, the files and the answers are the API's own functions (web/ticket_routes.py,
web/attachments.py) acting as the signed-in agent: the same queue scoping (another queue's
ticket is "not found"), the same identity-document rule, the same audit rows (`console show`,
`console file`, `console reply`, `console note`), and an answer leaves by the path of an
agent's mail answer (relayed to the customer, timed by the SLA clock, in the history). Each
form carries a one-time key, so a double click or a reload of the POST answers (or notes) once.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from domain.labels import problem
from domain.message import DOCUMENT_ROLES
from web.access import is_identity_reader
from web.attachments import download
from web.auth import deps_of
from web.console_render import (
    form_token_ok,
    from_elsewhere,
    language,
    message_page,
    page,
    secured,
    signed_in,
    words,
)
from web.errors import ApiError
from web.ticket_routes import keyed_note, reply_as, shown_ticket
from web.tokens import Principal

VIA = "console"


def _for_console(shown: dict[str, Any], identity_reader: bool) -> dict[str, Any]:
    """The API's ticket with each file's link pointing into the console (the session's cookie
    is its credential, not a bearer token); an identity document is named without a link for
    an agent outside the identity queue (the download would refuse them)."""
    kyc = shown.get("category") == "kyc"
    for message in shown["messages"]:
        for attachment in message["attachments"]:
            attachment["url"] = f"/console/tickets/{shown['ref']}/files/{attachment['id']}"
            document = kyc and attachment.get("role") in DOCUMENT_ROLES
            attachment["withheld"] = document and not identity_reader
    return shown


def _refused(request: Request, who: Principal, error: ApiError) -> HTMLResponse:
    """The refusal in the page's language (the checks word it in English, as the log keeps
    it; domain/labels.problem has the Turkish of each)."""
    if error.status == 404:
        return message_page(request, who, 404, words(request)["not_found"])
    lang = language(request, deps_of(request))
    text = "; ".join(problem(lang, part) for part in error.message.split("; "))
    return message_page(request, who, error.status, text)


def ticket_page(
    request: Request, who: Principal, ref: str, done: str = "", **form: str | int
) -> Response:
    """The ticket; `form` is what a form sent back says (`error`, the status) and keeps (the
    text it came with, `kept_answer` or `kept_note`)."""
    deps = deps_of(request)
    reader = is_identity_reader(who, deps.config().team)
    try:
        shown = _for_console(shown_ticket(deps, who, ref, f"{VIA} show"), reader)
    except ApiError as error:
        return _refused(request, who, error)
    status = int(form.pop("status", 200))
    return page(
        request,
        "ticket.html",
        who,
        status,
        ticket=shown,
        heading=f"#{shown['ref']} {shown.get('subject', '')}",
        done=done if done in ("answered", "noted") else "",
        can_answer=who.agent is not None,
        nonce=uuid.uuid4().hex,
        **form,
    )


def _write(request: Request, who: Principal, ref: str, fields: dict[str, str]) -> Response:
    """The answer (kind "answer") or the note (kind "note") of the form, or the page saying why
    not."""
    if from_elsewhere(request) or not form_token_ok(request, fields["csrf"]):
        return message_page(request, who, 403, words(request)["form_expired"])
    deps = deps_of(request)
    try:
        key = fields["nonce"][:64] or None
        if fields["kind"] == "note":
            done_ref, done = keyed_note(deps, who, ref, fields["text"], VIA, key), "noted"
        else:
            done_ref, done = reply_as(deps, who, ref, fields["text"], key, VIA), "answered"
    except ApiError as error:
        return _refused(request, who, error)
    return RedirectResponse(f"/console/tickets/{done_ref}?done={done}", status_code=303)


def ticket_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/console/tickets/{ref}", response_class=HTMLResponse)
    def ticket(request: Request, ref: str, done: str = "") -> Response:
        who = signed_in(request)
        if who is None:
            return RedirectResponse("/", status_code=303)
        return ticket_page(request, who, ref, done)

    @router.get("/console/tickets/{ref}/files/{file_id}")
    def file(request: Request, ref: str, file_id: str) -> Response:
        who = signed_in(request)
        if who is None:
            return RedirectResponse("/", status_code=303)
        try:
            return secured(download(deps_of(request), who, ref, file_id, VIA))
        except ApiError as error:
            return _refused(request, who, error)

    @router.post("/console/tickets/{ref}/answer", response_model=None)
    def answer(
        request: Request,
        ref: str,
        text: Annotated[str, Form(max_length=100_000)],
        csrf: Annotated[str, Form()] = "",
        nonce: Annotated[str, Form()] = "",
        kind: Annotated[str, Form()] = "answer",
    ) -> Response:
        who = signed_in(request)
        if who is None:
            return RedirectResponse("/", status_code=303)
        fields = {"text": text, "csrf": csrf, "nonce": nonce, "kind": kind}
        return _write(request, who, ref, fields)

    return router
