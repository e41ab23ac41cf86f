"""The `[classify]` section: what becomes of a person's mail that must never be answered.

Mail through a mailing list (`List-Id`, `List-Unsubscribe`) and bulk mail (`Precedence: bulk`,
`junk` or `list`) is a person's mail like any other (promise 3): by default it becomes a ticket,
with no automatic answer (RFC 3834 is about answering, not about dropping a request). An admin
whose desk address is subscribed to lists it does not want as tickets sets `"ignore"`: the
message is then recorded as ignored with the reason, visible in `ticketd journal list`.

    [classify]
    lists = "ticket"     # ticket or ignore: mail with List-Id / List-Unsubscribe
    bulk = "ticket"      # ticket or ignore: Precedence: bulk, junk or list
    form_senders = ["noreply@site.com.tr", "forms.site.com.tr"]

A web form's mail (ingest/classify.form_submission: an automated From, the person who filled the
form in Reply-To) is a ticket. Its customer is the person in Reply-To only when its From is one of
`form_senders` (an address, or a domain: every address at exactly that domain): anyone can write
any Reply-To, so only the admin can say which senders are forms whose Reply-To is the person.
Otherwise the From stays the customer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from domain.config_kinds import Address, Custom, Invalid, ListOf, OneOf, toml_value
from domain.config_schema import Table, key

CHOICES = ("ticket", "ignore")


_DOMAIN = re.compile(r"(?=.{1,253}\Z)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}\Z")


def _form_sender(value: Any, base: Path) -> str:
    """An address (noreply@site.com.tr) or a domain (site.com.tr), lowercase."""
    if not isinstance(value, str):
        raise Invalid("must be an email address or a domain", generic=True)
    if "@" in value:
        return str(Address().check(value, base))
    domain = value.strip().lower()
    if domain != value.lower() or not _DOMAIN.match(domain):
        raise Invalid(f"{toml_value(value)} is not an email address or a domain")
    return domain


@dataclass(frozen=True)
class ClassifyConfig:
    lists: str = "ticket"
    bulk: str = "ticket"
    form_senders: tuple[str, ...] = ()

    def is_form_sender(self, address: str) -> bool:
        """Is `address` a web form's whose Reply-To the admin trusts as the person?"""
        address = address.lower()
        domain = address.rpartition("@")[2]
        return bool(address) and (address in self.form_senders or domain in self.form_senders)

    def ignores(self, what: str) -> bool:
        """Does the admin want mail of this kind ("lists" or "bulk") ignored?"""
        return (self.lists if what == "lists" else self.bulk) == "ignore"


class ClassifyTable(Table):
    lists: Annotated[str, OneOf(CHOICES)] = key(
        "ticket", live=True, doc="mail with List-Id, List-Unsubscribe or Precedence: list"
    )
    bulk: Annotated[str, OneOf(CHOICES)] = key(
        "ticket", live=True, doc="mail with Precedence: bulk or junk"
    )
    form_senders: Annotated[
        tuple[str, ...],
        ListOf(Custom("an email address or a domain", _form_sender), "addresses or domains", True),
    ] = key(
        (),
        live=True,
        doc="web forms' From addresses or domains whose Reply-To is the ticket's customer",
    )
