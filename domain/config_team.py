"""The people side of the configuration: queues, agents, category rules, agent replies.

Declared as tables (domain/config_schema.py) and built into one frozen record, `TeamConfig`;
what the tables cannot say alone (a queue named twice, an agent in a queue that does not exist)
is appended to the caller's list as (key, reason), so `ticketd check` reports it with the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from domain.config_kinds import (
    Address,
    Flag,
    HostPort,
    ListOf,
    OneOf,
    Problems,
    Text,
    toml_value,
)
from domain.config_schema import Table, key
from domain.config_trust import listener_is_the_mx
from domain.turkish import fold

CATEGORIES = ("account", "payment", "bonus", "technical", "kyc", "complaint", "other")


@dataclass(frozen=True)
class QueueConfig:
    name: str
    categories: tuple[str, ...]
    escalation: tuple[str, ...] = ()


@dataclass(frozen=True)
class AgentConfig:
    email: str
    name: str
    queues: tuple[str, ...]


@dataclass(frozen=True)
class AgentRepliesConfig:
    # "Ayşe Yılmaz (Destek)" as the display name of an agent's answer, or the desk name only.
    show_agent_name: bool = True
    # Cut the agent's signature block ("-- ", common sign-offs) from what the customer gets.
    strip_signature: bool = True
    # An agent's mail acts only with an aligned DKIM or SPF pass from our own verdict or a
    # trusted server's (domain/sender_auth.py). False lets mail with no verdict at all act (for a
    # setup where nothing verifies); a failing aligned result refuses it either way.
    require_authentication: bool = True


@dataclass(frozen=True)
class TeamConfig:
    queues: tuple[QueueConfig, ...] = ()
    agents: tuple[AgentConfig, ...] = ()
    # Category -> keywords that replace the shipped Turkish and English defaults.
    category_keywords: dict[str, tuple[str, ...]] = field(default_factory=dict)
    agent_replies: AgentRepliesConfig = field(default_factory=AgentRepliesConfig)
    admins: tuple[str, ...] = ()  # told about security events (forged agent mail)

    def agent(self, email: str) -> AgentConfig | None:
        email = email.lower()
        return next((a for a in self.agents if a.email == email), None)

    def queue_for(self, category: str) -> QueueConfig | None:
        return next((q for q in self.queues if category in q.categories), None) or next(
            (q for q in self.queues if "other" in q.categories), None
        )

    def agents_of(self, queue: str | None) -> tuple[AgentConfig, ...]:
        return tuple(a for a in self.agents if queue is not None and queue in a.queues)

    def agent_by_name(self, name: str) -> AgentConfig | None:
        """An agent named in `#assign NAME`: by address, by local part or by name, in any case
        and with or without Turkish letters (`#ata ALİ`, `#ata ayse` find Ali, Ayşe)."""
        wanted = fold(name.strip())
        for agent in self.agents:
            names = {agent.email, agent.email.partition("@")[0], agent.name}
            names.add(agent.name.split()[0] if agent.name.strip() else agent.email)
            if wanted in {fold(n) for n in names}:
                return agent
        return None


_ADDRESSES = ListOf(Address(), "email addresses", indexed=True)
_WORDS = ListOf(Text(), "non-empty strings")


class QueueTable(Table):
    name: Annotated[str, Text()] = key(doc="the queue's name, as agents' queues name it")
    categories: Annotated[tuple[str, ...], ListOf(OneOf(CATEGORIES), "categories")] = key(
        (), doc="the categories it takes (other: what no queue takes)"
    )
    escalation: Annotated[tuple[str, ...], _ADDRESSES] = key(
        (), doc="told of its tickets' missed deadlines"
    )


class AgentTable(Table):
    email: Annotated[str, Address()] = key(doc="the agent's address")
    name: Annotated[str | None, Text("a string", empty=True)] = key(
        None, shown="the address", doc="shown to customers"
    )
    queues: Annotated[tuple[str, ...], ListOf(Text(), "queue names")] = key(
        (), doc="the queues whose tickets they are told of"
    )


_KEYWORDS = "keywords that replace the shipped ones"


class CategoriesTable(Table):
    """`category = [keywords]`: the words that put a message in a category."""

    unknown = "category"
    account: Annotated[tuple[str, ...] | None, _WORDS] = key(None, live=True, doc=_KEYWORDS)
    payment: Annotated[tuple[str, ...] | None, _WORDS] = key(None, live=True, doc=_KEYWORDS)
    bonus: Annotated[tuple[str, ...] | None, _WORDS] = key(None, live=True, doc=_KEYWORDS)
    technical: Annotated[tuple[str, ...] | None, _WORDS] = key(None, live=True, doc=_KEYWORDS)
    kyc: Annotated[tuple[str, ...] | None, _WORDS] = key(None, live=True, doc=_KEYWORDS)
    complaint: Annotated[tuple[str, ...] | None, _WORDS] = key(None, live=True, doc=_KEYWORDS)
    other: Annotated[tuple[str, ...] | None, _WORDS] = key(None, live=True, doc=_KEYWORDS)


class AgentRepliesTable(Table):
    show_agent_name: Annotated[bool, Flag()] = key(
        True, live=True, doc="the agent's name in the From of their answer"
    )
    strip_signature: Annotated[bool, Flag()] = key(
        True, live=True, doc="cut the agent's signature from what the customer gets"
    )
    # Default: required when our listener is the MX, so that nothing but our own verdict (or a
    # trusted gateway's) proves an agent; behind a local MTA that verifies nothing, the signed
    # reply address alone proves the agent, as before.
    require_authentication: Annotated[bool | None, Flag()] = key(
        None,
        live=True,
        shown="true when smtp_in.listen is not loopback",
        doc="an agent's mail acts only with an aligned DKIM or SPF pass",
    )


def _queues(problems: Problems, tables: list[tuple[int, QueueTable]]) -> tuple[QueueConfig, ...]:
    queues: list[QueueConfig] = []
    for index, table in tables:
        if any(q.name == table.name for q in queues):
            problems.append((f"queues[{index}].name", f"{toml_value(table.name)} is used twice"))
        queues.append(QueueConfig(table.name, table.categories, table.escalation))
    return tuple(queues)


def _agents(
    problems: Problems, tables: list[tuple[int, AgentTable]], queues: tuple[QueueConfig, ...]
) -> tuple[AgentConfig, ...]:
    agents: list[AgentConfig] = []
    known = {q.name for q in queues}
    for index, table in tables:
        at = f"agents[{index}]"
        for queue in table.queues:
            if queue not in known:
                problems.append((f"{at}.queues", f"{toml_value(queue)} is not a configured queue"))
        if any(a.email == table.email for a in agents):
            problems.append((f"{at}.email", f"{table.email} is configured twice"))
        name = table.name if table.name is not None else table.email
        agents.append(AgentConfig(table.email, name, table.queues))
    return tuple(agents)


@dataclass(frozen=True)
class TeamTables:
    """The tables `TeamConfig` is built from."""

    queues: list[tuple[int, QueueTable]]
    agents: list[tuple[int, AgentTable]]
    categories: CategoriesTable
    replies: AgentRepliesTable
    admins: tuple[str, ...]  # [desk] admins


def build_team(problems: Problems, tables: TeamTables, listen: HostPort) -> TeamConfig:
    queues = _queues(problems, tables.queues)
    keywords = {
        category: tuple(word.lower() for word in words)
        for category, words in dict(tables.categories).items()
        if words is not None
    }
    replies = tables.replies
    require = replies.require_authentication
    return TeamConfig(
        queues,
        _agents(problems, tables.agents, queues),
        keywords,
        AgentRepliesConfig(
            replies.show_agent_name,
            replies.strip_signature,
            listener_is_the_mx(listen) if require is None else require,
        ),
        tables.admins,
    )


def team_warnings(team: TeamConfig) -> list[tuple[str, str]]:
    """What is allowed but leaves tickets or agents out: an agent in no queue (told only of
    tickets assigned to them by name), a category no queue takes (nobody is notified of its
    tickets). Without any queue nothing is routed, and that is the desk's choice: no warning."""
    warnings: list[tuple[str, str]] = []
    for index, agent in enumerate(team.agents):
        if not agent.queues:
            reason = f"{agent.email} is in no queue: told only of tickets assigned to them"
            warnings.append((f"agents[{index}].queues", reason))
    if team.queues:
        for category in CATEGORIES:
            if team.queue_for(category) is None:
                reason = f'{toml_value(category)} is taken by no queue (and none takes "other"): '
                warnings.append(("queues", reason + "no agent is told of its tickets"))
    return warnings
