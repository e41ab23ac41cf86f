"""Our own SPF, DKIM and DMARC verdict on a message our listener received (we are the MX).

Runs in the worker, never in the SMTP handler: the listener only records the client's IP (the
journal row's source), its HELO and the envelope sender (the trace headers it prepends), so a
slow DNS never holds a client. Every lookup of one message shares one time budget (`[dns]
timeout`); what has not answered by then is a `temperror`, which proves nothing and refutes
nothing. The resolver is the system's, or `[dns] nameservers`.

- SPF: pyspf (RFC 7208) for the client IP, the envelope sender and the HELO.
- DKIM: dkimpy (RFC 6376), every signature of the message; `header.d` is the signer's domain.
- DMARC (RFC 7489): the policy record of the From domain or of its organizational domain, and
  whether an SPF or DKIM pass is aligned with the From domain (`adkim`, `aspf`).

The result is the list of `AuthResult`s the pipeline believes (domain/sender_auth.py) and the
`Authentication-Results` header written with `[smtp_in] authserv_id`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from domain.config_trust import DnsConfig
from domain.header_addresses import header_addresses
from domain.sender_auth import AuthResult
from ingest.parsing import decode_header_value
from ingest.raw_header import header_block

_HELO = re.compile(rb"^Received: from (\S+) \(\[", re.IGNORECASE)


@dataclass(frozen=True)
class Envelope:
    ip: str
    mail_from: str  # "" for the null reverse-path
    helo: str


def envelope_of(source: str, envelope_from: str | None, raw: bytes | bytearray) -> Envelope | None:
    """What our listener recorded: the client IP in the journal's source, the HELO in the trace
    header it put first. None for mail another server received (IMAP, ingest, import)."""
    if not source.startswith("smtp:"):
        return None
    match = _HELO.match(raw)
    helo = match.group(1).decode("ascii", "replace") if match else ""
    return Envelope(source.removeprefix("smtp:"), envelope_from or "", helo)


def from_domain_of(raw: bytes | bytearray) -> str:
    """The domain of the From header (the first address; DMARC judges a single author), read
    as parsing reads the sender: the angle-addr's, never an address-shaped display name's."""
    header = header_block(raw)
    found = re.search(rb"^From:(.*(?:\r?\n[ \t].*)*)", header, re.I | re.M)
    if found is None:
        return ""
    addresses = header_addresses([found.group(1).decode("utf-8", "replace")], decode_header_value)
    return addresses[0].email.rpartition("@")[2] if addresses else ""


def verify(
    raw: bytes | bytearray, envelope: Envelope, config: DnsConfig, authserv_id: str
) -> list[AuthResult]:
    """SPF, DKIM and DMARC for a message our listener received, within `config.timeout`."""
    # Imported here, not at the top: pyspf, dkimpy and dnspython take a noticeable part of a
    # second to load, and `ticketd ingest` (a process per message) never verifies.
    from ingest import verify_checks

    return verify_checks.check_all(
        raw,
        envelope.ip,
        envelope.mail_from,
        envelope.helo,
        from_domain_of(raw),
        config,
        authserv_id,
    )


def header_value(results: list[AuthResult], authserv_id: str) -> str:
    """Our Authentication-Results (RFC 8601) for these results."""
    parts = [authserv_id]
    for r in results:
        if r.method == "spf":
            parts.append(f"spf={r.result} smtp.mailfrom={r.domain or 'unknown'}")
        elif r.method == "dkim":
            parts.append(f"dkim={r.result}" + (f" header.d={r.domain}" if r.domain else ""))
        else:
            policy = f" policy.dmarc={r.policy}" if r.policy else ""
            parts.append(f"dmarc={r.result} header.from={r.domain or 'unknown'}{policy}")
    return "; ".join(parts)
