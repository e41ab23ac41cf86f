"""How a console page is made: the language, the signed-in principal, the form token.

Every form that changes something carries a token derived from the session's cookie
(`form_token`), checked before the change: the cookie is `SameSite=Lax` already, and the token
keeps a page of another site from posting a form as the agent even where a browser sends the
cookie anyway. The language is the desk's until `?lang=` changes it (kept in a cookie).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from web.auth import deps_of
from web.console_session import COOKIE, principal
from web.console_text import TEXT
from web.services import WebDeps
from web.tokens import Principal

LANG_COOKIE = "ticketd_lang"
_env = Environment(
    loader=PackageLoader("web", "console_templates"), autoescape=select_autoescape(["html"])
)


def language(request: Request, deps: WebDeps) -> str:
    wanted = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE)
    return wanted if wanted in TEXT else deps.config().desk.language


def words(request: Request) -> dict[str, str]:
    return TEXT[language(request, deps_of(request))]


def form_token(request: Request) -> str:
    session = request.cookies.get(COOKIE) or ""
    return hashlib.sha256(f"console form\0{session}".encode()).hexdigest()


def form_token_ok(request: Request, given: str) -> bool:
    return bool(request.cookies.get(COOKIE)) and hmac.compare_digest(form_token(request), given)


def signed_in(request: Request) -> Principal | None:
    return principal(deps_of(request), request.cookies.get(COOKIE))


def page(
    request: Request, name: str, who: Principal | None, status: int = 200, **context: Any
) -> HTMLResponse:
    deps = deps_of(request)
    lang = language(request, deps)
    html = _env.get_template(name).render(
        lang=lang,
        t=TEXT[lang],
        who=who.actor if who else None,
        admin=who is not None and who.admin,
        csrf=form_token(request) if who else "",
        **context,
    )
    response = HTMLResponse(html, status_code=status)
    if "lang" in request.query_params and lang == request.query_params["lang"]:
        response.set_cookie(LANG_COOKIE, lang, samesite="lax", httponly=True)
    return response


def message_page(request: Request, who: Principal | None, status: int, text: str) -> HTMLResponse:
    """A page that only says something (not found, refused, only admins)."""
    return page(request, "tickets.html", who, status=status, groups=[], heading=text)
