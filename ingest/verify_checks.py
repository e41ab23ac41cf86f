"""The lookups of sender verification (ingest/verify.py): SPF with pyspf, DKIM with dkimpy,
DMARC's policy records, all through one dnspython resolver and one time budget per message.

Kept apart from ingest/verify.py because these libraries take a while to import: `ticketd
ingest`, started by an MTA once per message, loads ticketd's pipeline but never verifies; only the
worker's first verification imports this module.
"""

from __future__ import annotations

import contextvars
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dkim
import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver
import spf

from domain.config_trust import DnsConfig
from domain.errors import Temporary
from domain.sender_auth import PASS, AuthResult, aligned, organizational_domain
from ingest.raw_header import header_block


class DnsUnanswered(Temporary):
    """The budget ran out or no server answered: a temporary error, never a verdict."""


class Lookups:
    """The DNS of one message: one resolver, one deadline for every query."""

    def __init__(self, config: DnsConfig) -> None:
        self.resolver = dns.resolver.Resolver(configure=not config.nameservers)
        if config.nameservers:
            self.resolver.nameservers = [host for host, _ in config.nameservers]
            self.resolver.nameserver_ports = dict(config.nameservers)
        self.deadline = time.monotonic() + config.timeout

    def query(self, name: str, rdtype: str) -> list[Any]:
        """The records of `name`, [] when there are none (NXDOMAIN, no answer)."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise DnsUnanswered(f"DNS time budget spent before {rdtype} {name}")
        try:
            answer = self.resolver.resolve(name, rdtype, lifetime=left, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except (dns.exception.Timeout, dns.resolver.NoNameservers) as error:
            raise DnsUnanswered(f"{rdtype} {name}: {error}") from error
        except dns.exception.DNSException as error:  # a name that is no DNS name, and the like
            raise DnsUnanswered(f"{rdtype} {name}: {error}") from error
        return list(answer)

    def txt(self, name: str) -> list[bytes]:
        return [b"".join(r.strings) for r in self.query(name, "TXT")]


_current: contextvars.ContextVar[Lookups] = contextvars.ContextVar("ticketd_dns")


def _spf_lookup(name: str, qtype: str, strict: bool = True, timeout: float = 20) -> list[Any]:
    """pyspf's DNSLookup hook, answering from the message's own `Lookups` (its resolver and
    budget) instead of the module's global resolver."""
    try:
        records = _current.get().query(name, qtype)
    except DnsUnanswered as error:
        raise spf.TempError(f"DNS {error}") from error
    found: list[Any] = []
    for r in records:
        if qtype in ("A", "AAAA"):
            found.append(((name, qtype), r.address))
        elif qtype == "MX":
            found.append(((name, qtype), (r.preference, r.exchange)))
        elif qtype == "PTR":
            found.append(((name, qtype), r.target.to_text(True)))
        elif qtype in ("TXT", "SPF"):
            found.append(((name, qtype), r.strings))
    return found


# pyspf reads its DNS through this module attribute; ours keeps every lookup of a message
# inside that message's budget and resolver.
spf.DNSLookup = _spf_lookup


@contextmanager
def _using(lookups: Lookups) -> Iterator[None]:
    token = _current.set(lookups)
    try:
        yield
    finally:
        _current.reset(token)


def _spf(ip: str, mail_from: str, helo: str, authserv_id: str) -> AuthResult:
    mail_from = mail_from or f"postmaster@{helo}"
    domain = mail_from.rpartition("@")[2].lower()
    try:
        result, _ = spf.query(ip, mail_from, helo, querytime=0).check()[:2]
    except Exception:  # pyspf raises on an IP or a name it cannot read: no verdict then
        result = "permerror"
    return AuthResult("spf", str(result).lower(), domain, authserv_id)


def _dkim_txt(lookups: Lookups) -> Any:
    def txt(name: bytes | str, timeout: float = 5) -> bytes | None:
        text = name.decode("ascii", "replace") if isinstance(name, bytes) else name
        records = lookups.txt(text.rstrip("."))
        return records[0] if records else None

    return txt


def _dkim(raw: bytes | bytearray, lookups: Lookups, authserv_id: str) -> list[AuthResult]:
    count = len(re.findall(rb"^DKIM-Signature:", header_block(raw), re.I | re.M))
    results: list[AuthResult] = []
    for index in range(count):
        signer: Any = None
        try:
            # Inside the try: dkimpy parses the header when it is built, and raises on one it
            # cannot read (MessageFormatError on a real corpus message): a permerror, not a
            # quarantine.
            signer = dkim.DKIM(raw)
            verdict = PASS if signer.verify(idx=index, dnsfunc=_dkim_txt(lookups)) else "fail"
        except DnsUnanswered:
            verdict = "temperror"
        except dkim.ValidationError:  # dkimpy's word for a body hash or signature mismatch
            verdict = "fail"
        except Exception:  # dkimpy's DKIMException, and whatever a malformed signature raises
            verdict = "permerror"
        fields = getattr(signer, "signature_fields", None) or {}
        domain = fields.get(b"d", b"").decode("ascii", "replace").lower()
        results.append(AuthResult("dkim", verdict, domain, authserv_id))
    return results or [AuthResult("dkim", "none", "", authserv_id)]


def _dmarc_record(lookups: Lookups, domain: str) -> dict[str, str] | None:
    records = [r for r in lookups.txt(f"_dmarc.{domain}") if r.startswith(b"v=DMARC1")]
    if len(records) != 1:  # RFC 7489 6.6.3: none, or more than one, is no policy
        return None
    tags = (t.partition(b"=") for t in records[0].split(b";"))
    return {k.strip().decode(): v.strip().decode("ascii", "replace").lower() for k, _, v in tags}


def _dmarc(
    from_domain: str, results: list[AuthResult], lookups: Lookups, authserv_id: str
) -> AuthResult:
    if not from_domain:
        return AuthResult("dmarc", "permerror", "", authserv_id)
    try:
        record, policy_key = _dmarc_record(lookups, from_domain), "p"
        org = organizational_domain(from_domain)
        if record is None and org != from_domain:
            record, policy_key = _dmarc_record(lookups, org), "sp"
    except DnsUnanswered:
        return AuthResult("dmarc", "temperror", from_domain, authserv_id)
    if record is None:
        return AuthResult("dmarc", "none", from_domain, authserv_id)
    policy = record.get(policy_key) or record.get("p", "none")
    strict = {"dkim": record.get("adkim") == "s", "spf": record.get("aspf") == "s"}
    passed = any(
        r.method in strict
        and r.result == PASS
        and aligned(r.domain, from_domain, strict=strict[r.method])
        for r in results
    )
    return AuthResult("dmarc", PASS if passed else "fail", from_domain, authserv_id, policy)


def check_all(
    raw: bytes | bytearray,
    ip: str,
    mail_from: str,
    helo: str,
    from_domain: str,
    config: DnsConfig,
    authserv_id: str,
) -> list[AuthResult]:
    """SPF, DKIM and DMARC within `config.timeout` for all of them together."""
    lookups = Lookups(config)
    with _using(lookups):
        results = [_spf(ip, mail_from, helo, authserv_id), *_dkim(raw, lookups, authserv_id)]
    results.append(_dmarc(from_domain, results, lookups, authserv_id))
    return results
