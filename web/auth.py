"""Bearer authentication: `Authorization: Bearer TOKEN` or 401 with a JSON error."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from web.errors import unauthorized
from web.services import WebDeps
from web.tokens import Principal, authenticate

# In the OpenAPI document as the scheme of every /api/v1 path; the 401 is ours (JSON).
bearer = HTTPBearer(auto_error=False, description="a token from `ticketd tokens create`")


def deps_of(request: Request) -> WebDeps:
    found: WebDeps = request.app.state.deps
    return found


def principal_of(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise unauthorized()
    deps = deps_of(request)
    found = authenticate(deps.db, deps.config(), credentials.credentials, deps.clock.now())
    if found is None:
        raise unauthorized("the token is unknown or revoked")
    return found


def authenticated(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    return principal_of(request, credentials)


# The caller of an /api/v1 endpoint (a parameter of that type makes the endpoint need a token).
Caller = Annotated[Principal, Depends(authenticated)]
