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
from typing import Any

from domain.config_keys import check_keys

Problems = list[tuple[str, str]]
CHOICES = ("ticket", "ignore")
KEYS = ("lists", "bulk")


@dataclass(frozen=True)
class ClassifyConfig:
    lists: str = "ticket"
    bulk: str = "ticket"

    def ignores(self, what: str) -> bool:
        """Does the admin want mail of this kind ("lists" or "bulk") ignored?"""
        return (self.lists if what == "lists" else self.bulk) == "ignore"


def parse_classify(problems: Problems, data: dict[str, Any]) -> ClassifyConfig:
    table = data.get("classify", {})
    if not isinstance(table, dict):
        problems.append(("classify", "must be a table ([classify])"))
        return ClassifyConfig()
    chosen: dict[str, str] = {}
    for key in KEYS:
        value = table.get(key, "ticket")
        if value not in CHOICES:
            problems.append((f"classify.{key}", f"{value!r} is not one of ticket, ignore"))
            continue
        chosen[key] = value
    check_keys(problems, table, "classify", KEYS)
    return ClassifyConfig(**chosen)
