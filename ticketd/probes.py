"""Asking a peer whether it answers, for `check --connect` and `health --connect`: the relay
(connect, log in as configured, send nothing) and clamd (PING). The daemon itself only finds out
at the next mail it sends or the next attachment it scans."""

from __future__ import annotations

import asyncio

from domain.config import Config
from domain.config_kyc import ClamdAddress
from ingest.oauth_tokens import OAuthBroker
from ingest.virus_scan import ScannerUnavailable, ping
from outbound.transports import SmtpRelayTransport, TemporaryFailure


def relay_probe(config: Config, broker: OAuthBroker) -> tuple[bool, str]:
    """`[smtp_out]`'s relay: (worked, what the relay said)."""
    out = config.smtp_out
    tokens = None
    if out.auth == "xoauth2" and out.oauth is not None and out.username is not None:
        tokens = broker.tokens(out.oauth, out.username)
    try:
        detail = asyncio.run(SmtpRelayTransport(out, tokens=tokens).probe())
    except (TemporaryFailure, OSError) as error:
        return False, f"smtp_out {out.relay}: FAILED: {error}"
    return True, f"smtp_out {out.relay}: ok: {detail}"


def scanner_problem(clamd: ClamdAddress) -> str | None:
    """Ask clamd for a PONG: why it did not answer, or None."""
    try:
        ping(clamd)
    except ScannerUnavailable as error:
        return str(error)
    return None
