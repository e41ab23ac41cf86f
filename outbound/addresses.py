"""The signed reply address of a ticket: `destek+7kqm-x3p9.5f2a9c01d3@example.com`.

Mail to it joins that ticket (threading proof that survives a changed subject and a client that
drops In-Reply-To). The signature is an HMAC of the reference with the desk's secret, so nobody
can make up the address of someone else's ticket.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from domain.config import DeskConfig
from domain.refs import normalise


def _signature(secret: str, ref: str) -> str:
    if not secret:  # an empty key signs for anyone: a programming error, never a fallback
        raise ValueError("no desk secret to sign with")
    return hmac.new(secret.encode(), f"reply:{ref}".encode(), hashlib.sha256).hexdigest()[:10]


def erased_key(secret: str, address: str) -> str:
    """How an erased customer's address is recognised without keeping it (issue 16): an HMAC
    under the desk's secret, so the table alone cannot be searched for a guessed address."""
    if not secret:
        raise ValueError("no desk secret to key with")
    text = f"erased:{address.strip().lower()}".encode()
    return hmac.new(secret.encode(), text, hashlib.sha256).hexdigest()


def reply_address(desk: DeskConfig, ref: str) -> str:
    local, _, domain = desk.address.partition("@")
    return f"{local}+{ref.lower()}.{_signature(desk.secret, ref)}@{domain}"


def ref_from_address(desk: DeskConfig, address: str) -> str | None:
    """The reference a desk reply address names, when its signature is right."""
    local, _, domain = address.lower().rpartition("@")
    base, plus, tag = local.partition("+")
    if not plus or f"{base}@{domain}" not in desk.addresses:
        return None
    candidate, _, signature = tag.rpartition(".")
    ref = normalise(candidate)
    if ref is None or not hmac.compare_digest(_signature(desk.secret, ref), signature):
        return None
    return ref


def agent_reply_address(desk: DeskConfig, ref: str) -> str:
    """Where agents answer a notification: `destek+a.<ref>.<sig>@...`, signed apart from the
    customer's address, so a customer's reply address can never act as an agent's."""
    local, _, domain = desk.address.partition("@")
    return f"{local}+a.{ref.lower()}.{_signature(desk.secret, 'agent:' + ref)}@{domain}"


def _agent_tag(desk: DeskConfig, address: str) -> tuple[str, str] | None:
    """(reference, signature) of an address shaped like one of our agent reply addresses."""
    local, _, domain = address.lower().rpartition("@")
    base, plus, tag = local.partition("+")
    if not plus or not tag.startswith("a.") or f"{base}@{domain}" not in desk.addresses:
        return None
    candidate, _, signature = tag[2:].rpartition(".")
    ref = normalise(candidate)
    return (ref, signature) if ref is not None else None


def _signed_for_agent(desk: DeskConfig, ref: str, signature: str) -> bool:
    return hmac.compare_digest(_signature(desk.secret, "agent:" + ref), signature)


def ref_from_agent_address(desk: DeskConfig, address: str) -> str | None:
    tag = _agent_tag(desk, address)
    if tag is None or not _signed_for_agent(desk, *tag):
        return None
    return tag[0]


def ref_from_unsigned_agent_address(desk: DeskConfig, address: str) -> str | None:
    """The reference an agent reply address names when this desk did not sign it: one signed
    with an earlier secret (a desk that ran on the public default before a random secret was
    generated for it, or whose secret was replaced), or one made up. It acts on nothing."""
    tag = _agent_tag(desk, address)
    if tag is None or _signed_for_agent(desk, *tag):
        return None
    return tag[0]


def without_agent_addresses(desk: DeskConfig, text: str) -> str:
    """`text` with every agent reply address of the desk (`destek+a....@`, signed or not)
    replaced by the plain desk address: what a customer reads must never hand them the address
    that acts as an agent, whatever an agent quoted or a template shows."""
    for address in desk.addresses:
        local, _, domain = address.partition("@")
        pattern = re.escape(local) + r"\+a\.[^\s@<>\"'()\[\],;]*@" + re.escape(domain)
        text = re.sub(pattern, desk.address, text, flags=re.IGNORECASE)
    return text
