"""How a console page is made: the language, the signed-in principal, the form token, the
headers every page carries.

Every form that changes something carries a token derived from the session's cookie
(`form_token`), checked before the change: the cookie is `SameSite=Lax` already, and the token
keeps a page of another site from posting a form as the agent even where a browser sends the
cookie anyway. A post whose browser says it came from another site (`Origin`,
`Sec-Fetch-Site`) is refused before anything, which also covers the forms that have no session
yet (asking for a link, using one: nobody can sign a victim in as the attacker). Pages are
never cached (`no-store`: a ticket, an identity document), never framed, and load nothing
but themselves. The language is the desk's until `?lang=` changes it (kept in a cookie).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
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


# No script at all; the one inline <style> of base.html; forms post only to the console.
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    # A sign-in link's token is in its URL: never sent to another site. ("no-referrer" would
    # make a browser post the console's own forms with "Origin: null".)
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}


def secured(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


def from_elsewhere(request: Request) -> bool:
    """Whether the browser says this post comes from a page of another origin. Clients that
    are not browsers send neither header and are judged by the form token alone."""
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return True
    origin = request.headers.get("origin")
    if origin is None:
        return False
    own = {f"{request.url.scheme}://{request.headers.get('host', '')}"}
    public = deps_of(request).config().http.public_url
    if public:
        parts = urlsplit(public)
        own.add(f"{parts.scheme}://{parts.netloc}")
    return origin not in own


def secure_cookies(request: Request) -> bool:
    """Cookies only over HTTPS when the console is published under an https:// address."""
    return (deps_of(request).config().http.public_url or "").startswith("https://")


def with_lang(request: Request, lang: str) -> str:
    """This page's address in another language (its other parameters kept)."""
    return str(request.url.include_query_params(lang=lang).replace(scheme="", netloc=""))


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
        other_lang=with_lang(request, "en" if lang == "tr" else "tr"),
        **context,
    )
    response = HTMLResponse(html, status_code=status)
    if "lang" in request.query_params and lang == request.query_params["lang"]:
        response.set_cookie(
            LANG_COOKIE, lang, samesite="lax", httponly=True, secure=secure_cookies(request)
        )
    secured(response)
    return response


def message_page(request: Request, who: Principal | None, status: int, text: str) -> HTMLResponse:
    """A page that only says something (not found, refused, only admins)."""
    return page(request, "tickets.html", who, status=status, groups=[], heading=text)
