"""Whose word about a sender ticketd takes: `[smtp_in] authserv_id` and `trusted_authserv_ids`.

`authserv_id` names ticketd's own verdicts (the host name by default); an incoming
Authentication-Results header with that id is removed as a forgery. `trusted_authserv_ids` lists
the receiving servers in front of ticketd whose headers are believed: a gateway that is the MX,
the mailbox provider an IMAP account reads. Every other header proves nothing.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from domain.config_kinds import Custom, HostPort, Invalid, ListOf, Number, Problems
from domain.config_schema import Table, key
from domain.config_smtp import SmtpInTable

DNS_TIMEOUT = 5.0


@dataclass(frozen=True)
class DnsConfig:
    # (address, port) of the resolvers to ask; empty: the system's (/etc/resolv.conf).
    nameservers: tuple[tuple[str, int], ...] = ()
    # Seconds for all the lookups of one message together (SPF, DKIM, DMARC).
    timeout: float = DNS_TIMEOUT


@dataclass(frozen=True)
class TrustConfig:
    authserv_id: str
    trusted_authserv_ids: tuple[str, ...] = ()
    # Our listener is the MX: verify SPF, DKIM and DMARC of what it receives ourselves. False
    # when a gateway or a local MTA is in front (its id in trusted_authserv_ids): behind it,
    # every client IP is its own and our SPF would fail.
    verify_senders: bool = True
    dns: DnsConfig = field(default_factory=DnsConfig)


def listener_is_the_mx(listen: HostPort) -> bool:
    """Whether ticketd's own SMTP listener faces the internet. A listener on a loopback address
    (the embedded default) is reached only through something on this machine, such as an MTA
    that is the MX and hands mail on; one on any other address is the MX itself."""
    host = listen.host.lower()
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True  # a host name or a wildcard: assume the world reaches it


def build_trust(problems: Problems, smtp_in: SmtpInTable, dns: DnsConfig) -> TrustConfig:
    own = smtp_in.authserv_id or socket.gethostname().lower()
    trusted: list[str] = []
    for index, token in enumerate(smtp_in.trusted_authserv_ids):
        if token == own:
            key = f"smtp_in.trusted_authserv_ids[{index}]"
            problems.append((key, f"{token} is our own authserv_id: it cannot be trusted upstream"))
        else:
            trusted.append(token)
    # Like [agent_replies] require_authentication: on by default when our listener is the MX.
    # Behind a local MTA (a loopback listener) every client IP is the MTA's, and our SPF would
    # fail for every domain that publishes "-all".
    verify = smtp_in.verify_senders
    if verify is None:
        verify = listener_is_the_mx(smtp_in.listen)
    return TrustConfig(own, tuple(trusted), verify, dns)


def _nameserver(text: Any, base: Path) -> tuple[str, int]:
    """ "192.0.2.53", "192.0.2.53:5353", "2001:db8::53" or "[2001:db8::53]:5353"."""
    wrong = Invalid("must be an IP address, with :PORT")
    if not isinstance(text, str):
        raise wrong
    host, port = text.strip(), 53
    if host.startswith("["):
        host, _, rest = host[1:].partition("]")
        if rest:
            if not rest.startswith(":") or not rest[1:].isdigit():
                raise wrong
            port = int(rest[1:])
    elif host.count(":") == 1:
        host, _, port_text = host.partition(":")
        if not port_text.isdigit():
            raise wrong
        port = int(port_text)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise wrong from None
    if not 0 < port < 65536:
        raise wrong
    return (host, port)


class DnsTable(Table):
    nameservers: Annotated[
        tuple[tuple[str, int], ...],
        ListOf(Custom("an IP address, with :PORT", _nameserver), "IP addresses", indexed=True),
    ] = key((), doc="IP or IP:PORT ([v6]:PORT); unset: the system's (/etc/resolv.conf)")
    # Past a minute a message waits on DNS longer than a person waits for an answer; under
    # 0.1 s a healthy resolver across a network may not answer at all.
    timeout: Annotated[float, Number("a number of seconds from 0.1 to 60.0", 0.1, 60)] = key(
        DNS_TIMEOUT, doc="seconds for all the lookups of one message together"
    )


def build_dns(table: DnsTable | None) -> DnsConfig:
    return DnsConfig(**dict(table)) if table is not None else DnsConfig()
