"""The `[classify]` section: what becomes of a person's mail that must never be answered.

Mail through a mailing list (`List-Id`, `List-Unsubscribe`) and bulk mail (`Precedence: bulk`,
`junk` or `list`) is a person's mail like any other (promise 3): by default it becomes a ticket,
with no automatic answer (RFC 3834 is about answering, not about dropping a request). An admin
whose desk address is subscribed to lists it does not want as tickets sets `"ignore"`: the
message is then recorded as ignored with the reason, visible in `ticketd journal list`.

    [classify]
    lists = "ticket"     # ticket or ignore: mail with List-Id / List-Unsubscribe
    bulk = "ticket"      # ticket or ignore: Precedence: bulk, junk or list
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from domain.config_kinds import OneOf
from domain.config_schema import Table, key

CHOICES = ("ticket", "ignore")


@dataclass(frozen=True)
class ClassifyConfig:
    lists: str = "ticket"
    bulk: str = "ticket"

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
