"""`ticketd oauth login NAME`: sign in once for delegated access (ingest/oauth_login.py).

And the relay's half of `ticketd check --connect`: connect, log in as configured, send nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from domain.config import Config

if TYPE_CHECKING:  # msal and google-auth load only for the commands that talk to providers
    from ingest.oauth_tokens import OAuthBroker

EX_OK = 0
EX_UNAVAILABLE = 69
EX_CONFIG = 78
Loader = Callable[[argparse.Namespace], Config]


def _login(load: Loader, args: argparse.Namespace) -> int:
    from domain import logs
    from domain.clock import SystemClock
    from ingest.oauth_client import OAuthError
    from ingest.oauth_login import login

    config = load(args)
    logs.protect_config(config)
    names = [provider.name for provider in config.oauth]
    if args.name not in names:
        known = ", ".join(names) or "none"
        print(f"ticketd oauth login: no [oauth.{args.name}] (defined: {known})", file=sys.stderr)
        return EX_CONFIG
    provider = config.oauth_provider(args.name)
    clock = SystemClock()
    try:
        issued = login(provider, clock.now, lambda text: print(text, flush=True))
    except OAuthError as error:
        print(f"ticketd oauth login: {error}", file=sys.stderr)
        return EX_UNAVAILABLE
    print(
        f"signed in: the refresh token is in {provider.refresh_token_file} (mode 0600); "
        f"ticketd renews the access token itself (this one is valid until "
        f"{issued.expires_at.isoformat(timespec='seconds')})"
    )
    return EX_OK


def relay_probe(config: Config, broker: OAuthBroker) -> tuple[bool, str]:
    """`check --connect` for `[smtp_out]`: (worked, what the relay said)."""
    from outbound.transports import SmtpRelayTransport, TemporaryFailure

    out = config.smtp_out
    tokens = None
    if out.auth == "xoauth2" and out.oauth is not None and out.username is not None:
        tokens = broker.tokens(out.oauth, out.username)
    try:
        detail = asyncio.run(SmtpRelayTransport(out, tokens=tokens).probe())
    except (TemporaryFailure, OSError) as error:
        return False, f"smtp_out {out.relay}: FAILED: {error}"
    return True, f"smtp_out {out.relay}: ok: {detail}"


def add_oauth_commands(commands: Any, load: Loader) -> None:
    oauth = commands.add_parser("oauth", help="OAuth2 for IMAP and SMTP ([oauth.NAME])")
    o_commands = oauth.add_subparsers(dest="oauth_command", required=True, metavar="COMMAND")
    o_login = o_commands.add_parser(
        "login", help="sign in once (device code) and store the refresh token"
    )
    o_login.add_argument("name", help="the NAME of an [oauth.NAME] block")
    o_login.set_defaults(handler=lambda args: _login(load, args))
