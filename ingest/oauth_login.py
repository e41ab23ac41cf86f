"""`ticketd oauth login NAME`: the device-code sign-in (RFC 8628) for delegated access.

The admin runs it once on the server: it prints a web address and a code, someone who may read
the mailbox signs in there from any browser, and the refresh token the provider then hands out
is stored in `refresh_token_file` (mode 0600). From then on the daemon redeems it for access
tokens itself (grant = "refresh_token"). Microsoft's sign-in goes through msal (a public client:
the app registration must allow public client flows); any other provider through its
`device_authorization_url`. Google offers no device-code sign-in for mail scopes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import requests

from domain.config_oauth import OAuthConfig
from ingest.oauth_client import (
    GenericClient,
    Issued,
    MicrosoftClient,
    OAuthError,
    expires_at_from,
    make_client,
    read_secret,
    refusal,
)

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
Say = Callable[[str], None]


def login(provider: OAuthConfig, now: Callable[[], datetime], say: Say) -> Issued:
    """Run the sign-in, store the refresh token; raises OAuthError with what failed."""
    if provider.grant != "refresh_token":
        raise OAuthError(
            provider, "setup", f"oauth login is for grant = 'refresh_token', not {provider.grant}"
        )
    client = make_client(provider)
    if isinstance(client, MicrosoftClient):
        issued = _microsoft(client, now, say)
    elif isinstance(client, GenericClient):
        issued = _generic(client, now, say)
    else:
        raise OAuthError(
            provider,
            "setup",
            "Google offers no device-code sign-in for mail: use grant = 'service_account' "
            "(Workspace), or put a refresh token into refresh_token_file",
        )
    if not issued.refresh_token:
        raise OAuthError(
            provider, "permission", "signed in, but no refresh token came: add offline_access"
        )
    client.store.save(issued.refresh_token, now())
    return issued


def _microsoft(client: MicrosoftClient, now: Callable[[], datetime], say: Say) -> Issued:
    app = client.app()
    try:
        flow = app.initiate_device_flow(scopes=client.scopes)
        if "user_code" not in flow:
            raise refusal(client.provider, flow)
        say(str(flow.get("message", "")))
        answer = app.acquire_token_by_device_flow(flow)  # polls until signed in or expired
    except requests.RequestException as error:
        raise OAuthError(client.provider, "endpoint", type(error).__name__) from None
    token = answer.get("access_token")
    if not isinstance(token, str) or not token:
        raise refusal(client.provider, answer)
    return Issued(
        token, expires_at_from(now(), answer.get("expires_in")), answer.get("refresh_token")
    )


def _generic(client: GenericClient, now: Callable[[], datetime], say: Say) -> Issued:
    provider = client.provider
    if not provider.device_authorization_url:
        raise OAuthError(provider, "setup", "device_authorization_url is not set")
    form = {"client_id": provider.client_id, "scope": " ".join(provider.scope)}
    flow = client.post(provider.device_authorization_url, form)
    if "device_code" not in flow or "user_code" not in flow:
        raise refusal(provider, flow)
    where = flow.get("verification_uri_complete") or flow.get("verification_uri")
    minutes = int(float(flow.get("expires_in", 600)) // 60)
    say(f"To sign in, open {where} and enter the code {flow['user_code']} ({minutes} min)")
    return _poll(client, flow, now)


def _poll(client: GenericClient, flow: dict[str, Any], now: Callable[[], datetime]) -> Issued:
    """Ask the token endpoint every `interval` seconds until the user signed in (RFC 8628 3.5)."""
    provider = client.provider
    interval = float(flow.get("interval", 5))
    deadline = time.monotonic() + float(flow.get("expires_in", 600))
    form = {"grant_type": DEVICE_GRANT, "device_code": str(flow["device_code"])}
    form["client_id"] = provider.client_id
    secret = read_secret(provider, provider.client_secret_file)
    if secret:
        form["client_secret"] = secret
    while time.monotonic() < deadline:
        time.sleep(interval)
        answer = client.post(provider.token_url, form)
        error = answer.get("error")
        if error == "authorization_pending":
            continue
        if error == "slow_down":
            interval += 5
            continue
        token = answer.get("access_token")
        if error or not isinstance(token, str) or not token:
            raise refusal(provider, answer)
        refresh = answer.get("refresh_token")
        return Issued(token, expires_at_from(now(), answer.get("expires_in")), refresh or None)
    raise OAuthError(provider, "grant", "nobody signed in before the code expired")
