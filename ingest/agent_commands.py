"""Commands agents write on lines of their own at the top of a mail: parsed, checked, or refused.

English and Turkish: `#note`/`#not`, `#close`/`#kapat`, `#pending`/`#beklemede`,
`#assign NAME`/`#ata NAME`, `#category NAME`/`#kategori NAME`,
`#priority high|normal|low`/`#öncelik yüksek|normal|düşük`, `#merge REF`/`#birleştir REF`
(`#birleştir REF zorla`/`#merge REF force` across two customers),
`#kyc approve`/`#kyc onayla` and `#kyc reject REASON`/`#kyc reddet SEBEP` (identity documents),
`#kyc request`/`#kyc iste` (ask the customer for their documents), `#history`/`#geçmiş` (the
whole ticket mailed to the asking agent).
A space after the hash is the same command (`# kapat`: a phone keyboard often adds it): a line
of '#', spaces, a command word and its arguments; any other line starting with '#' at the top
is an unknown command, refused like a misspelt one.
Parsing is pure: it returns the commands and the rest of the text, or every problem found, so
nothing is applied when anything is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from domain.config_team import CATEGORIES
from domain.refs import normalise

_VERBS = {
    "note": "note", "not": "note",
    "close": "close", "kapat": "close",
    "pending": "pending", "beklemede": "pending", "bekle": "pending",
    "assign": "assign", "ata": "assign",
    "category": "category", "kategori": "category",
    "priority": "priority", "öncelik": "priority", "oncelik": "priority",
    "merge": "merge", "birleştir": "merge", "birlestir": "merge",
    "kyc": "kyc", "kimlik": "kyc",
    "history": "history", "geçmiş": "history", "gecmis": "history",
}  # fmt: skip
_CATEGORY_NAMES = {
    **{c: c for c in CATEGORIES},
    "hesap": "account", "ödeme": "payment", "odeme": "payment", "teknik": "technical",
    "kimlik": "kyc", "şikayet": "complaint", "sikayet": "complaint", "diğer": "other",
    "diger": "other",
}  # fmt: skip
_PRIORITIES = {
    "high": "high", "yüksek": "high", "yuksek": "high",
    "normal": "normal",
    "low": "low", "düşük": "low", "dusuk": "low",
}  # fmt: skip
_KYC_DECISIONS = {
    "approve": "approve", "onayla": "approve",
    "reject": "reject", "reddet": "reject",
    "request": "request", "iste": "request",
}  # fmt: skip
_FORCE = {"zorla", "force"}
_NEEDS_ARGUMENT = {"assign", "category", "priority", "merge", "kyc"}
# '#', the spaces a keyboard put after it, the command word: what an unknown one is named by.
_AS_WRITTEN = re.compile(r"#\s*\S*")


@dataclass(frozen=True)
class Command:
    verb: str  # canonical English verb
    argument: str  # normalised: a category, a priority, a reference, an agent's name


@dataclass(frozen=True)
class ParsedCommands:
    commands: tuple[Command, ...]
    text: str  # what follows the commands
    problems: tuple[str, ...]

    def has(self, verb: str) -> bool:
        return any(c.verb == verb for c in self.commands)


def _argument(verb: str, raw: str) -> tuple[str | None, str | None]:
    """(normalised argument, problem)."""
    if verb not in _NEEDS_ARGUMENT:
        return ("", None) if not raw else (None, f"#{verb} takes no argument (got {raw!r})")
    if not raw:
        return None, f"#{verb} needs an argument"
    if verb == "category":
        found = _CATEGORY_NAMES.get(raw.lower())
        return (found, None) if found else (None, f"unknown category {raw!r}")
    if verb == "priority":
        found = _PRIORITIES.get(raw.lower())
        return (found, None) if found else (None, f"priority must be high, normal or low: {raw!r}")
    if verb == "kyc":
        word, _, reason = raw.partition(" ")
        decision = _KYC_DECISIONS.get(word.lower())
        if decision is None:
            return None, f"#kyc takes approve or reject REASON, or request (got {raw!r})"
        if decision == "reject" and not reason.strip():
            return None, "#kyc reject needs the reason the customer will read"
        if decision in ("approve", "request") and reason.strip():
            return None, f"#kyc {decision} takes no reason"
        # "approve", or "reject " + the reason as the agent wrote it.
        return f"{decision} {reason.strip()}".strip(), None
    if verb == "merge":
        # "REF zorla" / "REF force": merge even two customers' tickets (checked later).
        target, _, force = raw.partition(" ")
        ref = normalise(target.strip("[]#"))
        if ref is None:
            return None, f"{raw!r} is not a ticket reference"
        if force.strip() and force.strip().lower() not in _FORCE:
            return None, f"#merge takes a reference and optionally 'zorla'/'force' (got {raw!r})"
        return (f"{ref} force" if force.strip() else ref), None
    return raw, None


def _words(line: str) -> tuple[str, str]:
    """The command word of a line starting with '#' and what follows it: `#kapat`, `# kapat`
    and `#\tkapat` alike."""
    parts = line[1:].split(None, 1)
    return (parts[0], parts[1]) if len(parts) == 2 else (parts[0] if parts else "", "")


def _as_written(line: str) -> str:
    found = _AS_WRITTEN.match(line)
    return found.group() if found else line


def parse_commands(text: str) -> ParsedCommands:
    commands: list[Command] = []
    problems: list[str] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index].strip()
        if not line:
            index += 1
            continue
        if not line.startswith("#") or line.startswith("##"):
            break
        word, raw = _words(line)
        verb = _VERBS.get(word.lower())
        if verb is None:
            problems.append(f"unknown command {_as_written(line)}")
        else:
            argument, problem = _argument(verb, raw.strip())
            if problem:
                problems.append(problem)
            elif argument is not None:
                commands.append(Command(verb, argument))
        index += 1
    if sum(c.verb == "kyc" for c in commands) > 1:
        problems.append("one #kyc command per mail")
    if sum(c.verb in ("close", "pending") for c in commands) > 1:
        problems.append("#close and #pending exclude each other")
    problems += _commands_below(lines, index)
    rest = "\n".join(lines[index:]).strip()
    return ParsedCommands(tuple(commands), rest, tuple(problems))


def _commands_below(lines: list[str], start: int) -> list[str]:
    """A command's line under the text: the agent meant it (`#not` with what the customer must
    not read, `#kapat` after the answer), and relayed it would reach the customer word for
    word while nothing was done. Refused, so the agent moves it to the top."""
    found: list[str] = []
    for number, line in enumerate(lines[start:], start + 1):
        word = _words(line.strip())[0]
        if line.strip().startswith("#") and word.lower() in _VERBS:
            found.append(
                f"#{word} on line {number} is under the text: commands go on lines of "
                "their own at the top of the mail; nothing was sent to the customer"
            )
    return found
