"""The people side of the configuration: queues, agents, category rules, agent replies.

Parsed into frozen records; every problem is appended to the caller's list as (key, reason),
so `ticketd check` reports them together with the rest of the file.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from email.utils import parseaddr
from typing import Any

from domain.config_keys import check_keys, one_list
from domain.turkish import fold

CATEGORIES = ("account", "payment", "bonus", "technical", "kyc", "complaint", "other")
Problems = list[tuple[str, str]]
# The known keys of the tables parsed here (domain/config_keys.py).
QUEUE_KEYS = ("name", "categories", "escalation")
AGENT_KEYS = ("email", "name", "queues")
AGENT_REPLIES_KEYS = ("show_agent_name", "strip_signature", "require_authentication")
TEAM_DESK_KEYS = ("admins",)  # [desk] keys read here; config.DESK_KEYS includes them


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


def _address(problems: Problems, value: Any, key: str) -> str | None:
    if not isinstance(value, str):
        problems.append((key, "must be an email address"))
        return None
    name, addr = parseaddr(value)
    if name or "@" not in addr or addr != value.strip():
        problems.append((key, f"{value!r} is not a plain email address"))
        return None
    return addr.lower()


def _addresses(problems: Problems, value: Any, key: str) -> tuple[str, ...]:
    """A list of plain addresses: a bare string is one problem, not one per character."""
    items = one_list(problems, value, key, "email addresses")
    return tuple(a for i, v in enumerate(items) if (a := _address(problems, v, f"{key}[{i}]")))


def _strings(problems: Problems, value: Any, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        problems.append((key, "must be a list of non-empty strings"))
        return ()
    return tuple(v.strip() for v in value)


def _tables(problems: Problems, value: Any, key: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        problems.append((key, f"must be an array of tables ([[{key}]])"))
        return []
    return value


def _queues(problems: Problems, raw: Any) -> tuple[QueueConfig, ...]:
    queues: list[QueueConfig] = []
    for index, table in enumerate(_tables(problems, raw, "queues")):
        at = f"queues[{index}]"
        check_keys(problems, table, at, QUEUE_KEYS)
        name = table.get("name")
        if not isinstance(name, str) or not name.strip():
            problems.append((f"{at}.name", "is required"))
            continue
        if any(q.name == name for q in queues):
            problems.append((f"{at}.name", f"{name!r} is used twice"))
        categories = _strings(problems, table.get("categories", []), f"{at}.categories")
        for category in categories:
            if category not in CATEGORIES:
                problems.append(
                    (f"{at}.categories", f"{category!r} is not one of {', '.join(CATEGORIES)}")
                )
        escalation = _addresses(problems, table.get("escalation", []), f"{at}.escalation")
        queues.append(QueueConfig(name.strip(), categories, escalation))
    return tuple(queues)


def _agents(problems: Problems, raw: Any, queues: tuple[QueueConfig, ...]) -> list[AgentConfig]:
    agents: list[AgentConfig] = []
    known = {q.name for q in queues}
    for index, table in enumerate(_tables(problems, raw, "agents")):
        at = f"agents[{index}]"
        check_keys(problems, table, at, AGENT_KEYS)
        email = _address(problems, table.get("email"), f"{at}.email")
        names = _strings(problems, table.get("queues", []), f"{at}.queues")
        for queue in names:
            if queue not in known:
                problems.append((f"{at}.queues", f"{queue!r} is not a configured queue"))
        name = table.get("name", email or "")
        if email is None:
            continue
        if any(a.email == email for a in agents):
            problems.append((f"{at}.email", f"{email} is configured twice"))
        agents.append(AgentConfig(email, str(name), names))
    return agents


def _bool(problems: Problems, table: dict[str, Any], key: str, default: bool) -> bool:
    value = table.get(key.rpartition(".")[2], default)
    if not isinstance(value, bool):
        problems.append((key, "must be true or false"))
        return default
    return value


def listener_is_the_mx(data: dict[str, Any]) -> bool:
    """Whether ticketd's own SMTP listener faces the internet. A listener on a loopback address
    (the embedded default) is reached only through something on this machine, such as an MTA
    that is the MX and hands mail on; one on any other address is the MX itself."""
    smtp_in = data.get("smtp_in", {})
    listen = smtp_in.get("listen", "127.0.0.1:2525") if isinstance(smtp_in, dict) else ""
    host = str(listen).rpartition(":")[0].strip("[]").lower()
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True  # a host name or a wildcard: assume the world reaches it


def parse_team(problems: Problems, data: dict[str, Any]) -> TeamConfig:
    queues = _queues(problems, data.get("queues", []))
    agents = _agents(problems, data.get("agents", []), queues)
    keywords: dict[str, tuple[str, ...]] = {}
    rules = data.get("categories", {})
    if not isinstance(rules, dict):
        problems.append(("categories", "must be a table of category = [keywords]"))
        rules = {}
    check_keys(problems, rules, "categories", CATEGORIES, "category")
    for category, words in rules.items():
        if category not in CATEGORIES:
            continue
        keywords[category] = tuple(
            w.lower() for w in _strings(problems, words, f"categories.{category}")
        )
    replies_t = data.get("agent_replies", {})
    if not isinstance(replies_t, dict):
        problems.append(("agent_replies", "must be a table"))
        replies_t = {}
    check_keys(problems, replies_t, "agent_replies", AGENT_REPLIES_KEYS)
    replies = AgentRepliesConfig(
        show_agent_name=_bool(problems, replies_t, "agent_replies.show_agent_name", True),
        strip_signature=_bool(problems, replies_t, "agent_replies.strip_signature", True),
        # Default: required when our listener is the MX, so that nothing but our own
        # verdict (or a trusted gateway's) proves an agent; behind a local MTA that verifies
        # nothing, the signed reply address alone proves the agent, as before.
        require_authentication=_bool(
            problems,
            replies_t,
            "agent_replies.require_authentication",
            listener_is_the_mx(data),
        ),
    )
    desk = data.get("desk", {}) if isinstance(data.get("desk", {}), dict) else {}
    admins = _addresses(problems, desk.get("admins", []), "desk.admins")
    return TeamConfig(tuple(queues), tuple(agents), keywords, replies, admins)


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
                reason = f"{category!r} is taken by no queue (and none takes 'other'): "
                warnings.append(("queues", reason + "no agent is told of its tickets"))
    return warnings
