"""`ticketd oauth login NAME`: sign in once for delegated access (ingest/oauth_login.py)."""

from __future__ import annotations

import argparse
import sys

from domain import logs
from domain.clock import SystemClock
from domain.config import load_config
from ingest.oauth_client import OAuthError
from ingest.oauth_login import login
from ticketd.commands import EX_CONFIG, EX_OK, EX_UNAVAILABLE, config_path


def oauth_login(args: argparse.Namespace) -> int:
    config = load_config(config_path(args))
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
