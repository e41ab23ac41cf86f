"""What a message proves about its sender: the Authentication-Results ticketd may believe.

A message carries whatever `Authentication-Results` headers its sender wrote. Only two kinds are
believed:
- our own verdict (ingest/verify.py writes it with `[smtp_in] authserv_id` when our listener
  received the message); any incoming header that claims our authserv-id is a forgery and is
  removed before anything reads the headers (RFC 8601 section 5);
- the header of a receiving server the admin lists in `[smtp_in] trusted_authserv_ids` (a gateway
  in front of ticketd, or the mailbox provider an IMAP account reads from).

A result proves the From domain only when its domain is aligned with it as DMARC defines it
(RFC 7489 3.1): the same domain, or the same organizational domain. `header.d=example.com.evil.net`
is another organization, never `example.com`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache

from publicsuffixlist import PublicSuffixList

AUTHENTICATION_RESULTS = "authentication-results"
PASS = "pass"
# Results that say the domain's owner did not send this (RFC 8601 2.7.1, 2.7.2).
FAILING = frozenset({"fail", "softfail", "permerror"})

_COMMENT = re.compile(r"\([^()]*\)")
_PROPERTY = re.compile(r"\b(header|smtp|policy)\.(\w+)\s*=\s*\"?([^\s;\"]+)")
_RESULT = re.compile(r"^\s*([a-z0-9-]+)\s*=\s*([a-z]+)", re.IGNORECASE)


@cache
def _suffixes() -> PublicSuffixList:
    return PublicSuffixList()  # the list shipped with the package: no download at run time


def organizational_domain(domain: str) -> str:
    """RFC 7489 3.2: the registered domain under the public suffix ("mail.example.com.tr" ->
    "example.com.tr"); the domain itself when the list does not know it."""
    domain = domain.lower().rstrip(".")
    return _suffixes().privatesuffix(domain) or domain


def aligned(domain: str, from_domain: str, strict: bool = False) -> bool:
    """DMARC identifier alignment: exact in strict mode, same organizational domain in relaxed."""
    domain, from_domain = domain.lower().rstrip("."), from_domain.lower().rstrip(".")
    if not domain or not from_domain:
        return False
    if domain == from_domain:
        return True
    return not strict and organizational_domain(domain) == organizational_domain(from_domain)


@dataclass(frozen=True)
class AuthResult:
    method: str  # dkim, spf, dmarc (others are kept but prove nothing here)
    result: str  # pass, fail, softfail, none, temperror, permerror, neutral, policy
    # The domain the result is about: header.d (DKIM), the smtp.mailfrom domain (SPF),
    # header.from (DMARC).
    domain: str
    authserv_id: str
    policy: str = ""  # DMARC: the policy the domain publishes (none, quarantine, reject)


@dataclass(frozen=True)
class SenderVerdict:
    """The results we believe about one message, and the From domain they are judged for."""

    from_domain: str = ""
    results: tuple[AuthResult, ...] = ()
    # Authentication-Results headers we removed: they claimed our authserv-id.
    forged: int = 0

    def _aligned(self, method: str, verdicts: Iterable[str]) -> bool:
        return any(
            r.method == method and r.result in verdicts and aligned(r.domain, self.from_domain)
            for r in self.results
        )

    @property
    def aligned_pass(self) -> bool:
        """The From domain is proven: an aligned DKIM or SPF pass, or a DMARC pass for it."""
        if self._aligned("dkim", {PASS}) or self._aligned("spf", {PASS}):
            return True
        return any(
            r.method == "dmarc" and r.result == PASS and r.domain == self.from_domain
            for r in self.results
        )

    @property
    def refuted(self) -> bool:
        """Nothing proves the From domain and something says it is not its owner's mail."""
        if self.aligned_pass:
            return False
        if self.dmarc_failed:
            return True
        return self._aligned("dkim", FAILING) or self._aligned("spf", FAILING)

    @property
    def dmarc_failed(self) -> bool:
        """DMARC fails for the From domain: it publishes DMARC and nothing we believe passes
        aligned (a trusted gateway's pass outweighs a failure of our own behind it)."""
        return not self.aligned_pass and any(
            r.method == "dmarc" and r.result == "fail" and aligned(r.domain, self.from_domain)
            for r in self.results
        )

    def describe(self) -> str:
        """One line for notes and refusals: "dkim=pass (example.com) spf=fail (...)"."""
        if not self.results:
            return "no verdict of ours or of a trusted server"
        return " ".join(f"{r.method}={r.result} ({r.domain or '-'})" for r in self.results)


def authserv_id_of(value: str) -> str:
    """The authserv-id of an Authentication-Results value: its first token, without the
    optional version number (RFC 8601 2.2)."""
    head = _COMMENT.sub(" ", value).split(";", 1)[0].split()
    return head[0].lower() if head else ""


def parse_results(value: str) -> tuple[AuthResult, ...]:
    """The method results of one Authentication-Results value (comments dropped)."""
    authserv_id = authserv_id_of(value)
    results: list[AuthResult] = []
    for clause in _COMMENT.sub(" ", value).split(";")[1:]:
        match = _RESULT.match(clause)
        if match is None:
            continue
        method, result = match.group(1).lower(), match.group(2).lower()
        properties = {
            f"{kind.lower()}.{name.lower()}": text.lower()
            for kind, name, text in _PROPERTY.findall(clause)
        }
        if method == "dkim":
            domain = properties.get("header.d", "")
        elif method == "spf":
            mailfrom = properties.get("smtp.mailfrom", "")
            domain = mailfrom.rpartition("@")[2] or properties.get("smtp.helo", "")
        else:
            domain = properties.get("header.from", "")
        policy = properties.get("policy.dmarc", properties.get("policy.published-domain-policy"))
        results.append(AuthResult(method, result, domain, authserv_id, policy or ""))
    return tuple(results)


def believed(
    headers: Sequence[tuple[str, str]],
    from_domain: str,
    own_id: str,
    trusted_ids: Sequence[str],
    own_results: Sequence[AuthResult] = (),
) -> tuple[tuple[tuple[str, str], ...], SenderVerdict]:
    """The headers with every Authentication-Results claiming our id removed, and the verdict
    made of our own results and those of the trusted ids. Headers of other ids stay (an agent
    reading the message may want them) but prove nothing."""
    own = own_id.lower()
    trusted = {t.lower() for t in trusted_ids} - {own}
    kept: list[tuple[str, str]] = []
    results = list(own_results)
    forged = 0
    for name, value in headers:
        if name == AUTHENTICATION_RESULTS:
            serv = authserv_id_of(value)
            if serv == own:
                forged += 1
                continue
            if serv in trusted:
                results += parse_results(value)
        kept.append((name, value))
    return tuple(kept), SenderVerdict(from_domain.lower(), tuple(results), forged)
