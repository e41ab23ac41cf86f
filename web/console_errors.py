"""What a browser gets when a request to the console goes wrong: the console's page in the
page's language, with the console's headers (web/console_render.py), never the API's JSON
(web/app.py sends the errors of the API's paths as JSON and those of every other path here).

A path that is no page is 404, a method it does not take 405 (with the `Allow` of the error),
and a request that failed 500, which says only that it failed: the traceback is in the log. A
form sent without a field it needs, or with one too long (a 422), is shown again saying which
field and why, with what it came with kept (an answer's text), as the quarantine's page says
that a dismissal needs a reason; any other 422 of a console path is a page saying the same.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from html import escape
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from web.console_admin import admin, listing
from web.console_render import message_page, page, secured, signed_in, words
from web.console_text import TEXT
from web.console_ticket import ticket_page

_SAYS = {404: "page_not_found", 405: "method_not_allowed"}

# The page of last resort, when even the console's page cannot be made: both languages.
_FAILED = (
    '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>500</title></head><body>'
    + "".join(f'<p lang="{lang}">{escape(TEXT[lang]["failed"])}</p>' for lang in TEXT)
    + "</body></html>\n"
)


def error_page(request: Request, status: int, headers: Mapping[str, str]) -> HTMLResponse:
    """The page of an HTTP error (404, 405, a body that cannot be read), with the headers the
    error carries. Database work (who is signed in, for the page's links): run it in a
    thread."""
    text = words(request)[_SAYS.get(status, "bad_request")]
    response = message_page(request, signed_in(request), status, text)
    response.headers.update(headers)
    return response


def failed_page(request: Request) -> HTMLResponse:
    """The 500 of a console request: no database work (the database may be what failed), and
    nothing of the error."""
    try:
        return message_page(request, None, 500, words(request)["failed"])
    except Exception:  # what the page needs failed too (the configuration): the one without it
        response = HTMLResponse(_FAILED, status_code=500)
        secured(response)
        return response


def form_problem(t: Mapping[str, str], errors: Sequence[Any]) -> str:
    """What is wrong with the form, field by field, in the page's words (FastAPI's errors)."""
    said = []
    for error in errors:
        field = str((error.get("loc") or ("",))[-1])
        label = t.get(f"field_{field}", field)
        limit = (error.get("ctx") or {}).get("max_length")
        if error.get("type") == "missing":  # an empty field too
            said.append(t["field_missing"].format(field=label))
        elif error.get("type") == "string_too_long":
            said.append(t["field_too_long"].format(field=label, limit=limit))
        else:
            said.append(t["field_invalid"].format(field=label))
    return " ".join(said)


def invalid_form_page(request: Request, errors: Sequence[Any], sent: Any) -> Response:
    """A console request FastAPI refused (422): the form again where the console has it, else a
    page saying what was wrong. `sent` is the form as it came (FastAPI's FormData), or None.
    Database work: run it in a thread."""
    problem = form_problem(words(request), errors)
    route = request.scope.get("route")
    again = _AGAIN.get(getattr(route, "path", ""))
    if again is not None:
        return again(request, problem, sent if hasattr(sent, "get") else {})
    return message_page(request, signed_in(request), 422, problem)


def _sign_in_again(request: Request, problem: str, sent: Any) -> Response:
    return page(request, "login.html", None, status=422, error=problem)


def _link_again(request: Request, problem: str, sent: Any) -> Response:
    return page(request, "login.html", None, status=422, bad=True, error=problem)


def _answer_again(request: Request, problem: str, sent: Any) -> Response:
    who = signed_in(request)
    if who is None:
        return RedirectResponse("/", status_code=303)
    kind = "note" if sent.get("kind") == "note" else "answer"
    text = sent.get("text")
    kept = {f"kept_{kind}": text} if isinstance(text, str) else {}
    return ticket_page(request, who, request.path_params["ref"], error=problem, status=422, **kept)


def _quarantine_again(request: Request, problem: str, sent: Any) -> Response:
    who, refused = admin(request)
    if who is None:
        return refused or RedirectResponse("/", status_code=303)
    return listing(request, who, problem, 422)


# The console's forms by their route's path: each shown again as its page shows it.
_AGAIN: dict[str, Callable[[Request, str, Any], Response]] = {
    "/console/sign-in": _sign_in_again,
    "/console/link": _link_again,
    "/console/tickets/{ref}/answer": _answer_again,
    "/console/quarantine/{journal_id}": _quarantine_again,
}
