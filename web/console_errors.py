"""What a browser gets when a request to the console goes wrong: the console's page in the
page's language, with the console's headers (web/console_render.py), never the API's JSON
(web/app.py sends the errors of the API's paths as JSON and those of every other path here).

A path that is no page is 404, a method it does not take 405 (with the `Allow` of the error),
and a request that failed 500, which says only that it failed: the traceback is in the log.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape

from fastapi import Request
from fastapi.responses import HTMLResponse

from web.console_render import message_page, secured, signed_in, words
from web.console_text import TEXT

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
