"""The configuration schema is the one place sections and keys are declared (issue 18): the
README's key reference is what it generates, what a SIGHUP applies live comes from it, and
every kind of value is named with the same words in every section."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import pytest

from domain import config
from domain.config import ConfigError, load_config
from domain.config_kinds import ListOf, OneOf, Url
from domain.config_schema import Section, Table, key, live_records, read_sections, reference
from ticketd import reload
from ticketd.reload import flatten

ROOT = Path(__file__).resolve().parent.parent
BASE = "[desk]\naddress = 'destek@example.com'\n"
START, END = "<!-- config-reference: start -->\n", "<!-- config-reference: end -->"


def test_the_readme_reference_is_the_schema() -> None:
    """`python3 -m domain.config_schema` prints it: paste it between the markers."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    shown = readme.partition(START)[2].partition(END)[0]
    assert shown == reference(config.SECTIONS), "README's key reference differs from the schema"


def test_every_section_and_key_is_in_the_reference() -> None:
    text = reference(config.SECTIONS)
    for section in config.SECTIONS:
        assert f"`{section.header}`" in text
        for name in section.model.model_fields:
            # A table inside a section shows as its keys: `calendar.hours`.
            assert re.search(rf"\| `([a-z_.]+\.)?{name}[.`]", text), (section.name, name)


LIVE = [
    "desk.name",
    "desk.language",
    "limits.max_mime_parts",
    "threading.bounce_suppression_days",
    "classify.lists",
    "classify.form_senders",
    "templates_dir",
    "smtp_in.max_message_size",
    "smtp_in.min_data_rate",
    "smtp_in.tls_cert",
    "kyc.clamd",
    "kyc.clamd_timeout",
    "team.agents",
    "team.queues",
    "team.category_keywords",
    "team.agent_replies.strip_signature",
    "team.admins",
    "sla.reminders",
    "sla.default.first_answer_hours",
    "sla.calendar.start",
    "sla.categories",
    "webhooks",
]
RESTART = [
    "sla.enabled",
    "smtp_in.listen",
    "storage.database",
    "storage.blobs",
    "smtp_out.relay",
    "smtp_out.timeout",
    "imap",
    "oauth",
    "metrics.listen",
    "desk.address",
    "desk.secret",
    "desk.timezone",
    "kyc.key_file",
    "kyc.retention_days",
    "retention.raw_days",
    "trust.authserv_id",
    "trust.dns.timeout",
    "spam.rspamd_url",
    "http.listen",
    "something.new",
]


@pytest.mark.parametrize("name", LIVE)
def test_what_sighup_applies_live_comes_from_the_schema(name: str) -> None:
    assert reload._is_live(name)


@pytest.mark.parametrize("name", RESTART)
def test_what_needs_a_restart_comes_from_the_schema(name: str) -> None:
    assert not reload._is_live(name)


def test_every_value_of_the_config_is_declared_by_a_key(tmp_path: Path) -> None:
    """A record's value no key declares would silently need a restart: each must be named."""
    path = tmp_path / "ticketd.toml"
    path.write_text(BASE, encoding="utf-8")
    undeclared = [
        name
        for name in flatten(load_config(path))
        if name not in ("path", "warnings", "smtp_out.timeout")
        and not any(name == p or name.startswith(p + ".") for p in reload.LIVE)
    ]
    assert undeclared == []


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("[limits]\nauto_replies_per_hour = true\n", "limits.auto_replies_per_hour", "integer"),
        ("[smtp_in]\nmax_recipients = 0\n", "smtp_in.max_recipients", "at least 1"),
        ("[kyc]\nmax_documents_per_day = 0\n", "kyc.max_documents_per_day", "at least 1"),
        ("[smtp_out]\nstarttls = 1\n", "smtp_out.starttls", "must be true or false"),
        ("[spam]\ntrust_upstream_headers = 'no'\n", "spam.trust_upstream_headers", "true or"),
        ("[[imap]]\nname = 'a'\nidle = 'yes'\n", "imap[0].idle", "must be true or false"),
        ("[desk]\nadmins = ['Lead <l@example.com>']\n", "desk.admins[0]", "plain email address"),
        ("[[queues]]\nname = 'q'\nescalation = [1]\n", "queues[0].escalation[0]", "an email"),
        ("[sla.calendar]\nholidays = 2026-01-01\n", "sla.calendar.holidays", "not a date"),
        ("[[agents]]\nname = 'Ayşe'\n", "agents[0].email", "is required"),
        ("[oauth.a]\nscope = 's'\n", "oauth.a.kind", "is required: one of microsoft"),
        ("[imap]\nname = 'a'\n", "imap", "must be an array of tables ([[imap]])"),
        ("desk = 1\n", "desk", "must be a table ([desk])"),
        ("[sla]\ncalendar = 'x'\n", "sla.calendar", "must be a table"),
    ],
)
def test_the_same_kind_of_mistake_reads_the_same_everywhere(
    tmp_path: Path, text: str, key: str, reason: str
) -> None:
    path = tmp_path / "ticketd.toml"
    path.write_text(text if text.startswith("desk") else BASE + text.removeprefix("[desk]\n"))
    with pytest.raises(ConfigError) as error:
        load_config(path)
    found = dict(error.value.problems)
    assert key in found, found
    assert reason in found[key]


class _Hook(Table):
    url: Annotated[str, Url()] = key(doc="where it goes")
    events: Annotated[tuple[str, ...], ListOf(OneOf(("created", "closed")), "events")] = key(
        ("created",), live=True
    )


def test_a_section_is_declared_once() -> None:
    """What a new section (`[[webhooks]]`, say) gets from its declaration alone: unknown keys
    with a suggestion, missing keys, wrong values named with their place, its defaults, its
    record, its reference and what a SIGHUP does with it."""
    section = Section("hooks", _Hook, "array", live=True)
    problems: list[tuple[str, str]] = []
    raw = {"hooks": [{"url": "https://example.com/in"}, {"evnts": []}, {"url": 1}]}
    tables = read_sections(problems, raw, [section], {"base": Path("/")})
    assert problems == [
        ("hooks[1].url", "is required"),
        ("hooks[1].evnts", "unknown key; did you mean 'events'?"),
        ("hooks[2].url", "1 is not an http(s) URL"),
    ]
    (hook,) = tables.record("hooks")
    assert (hook.url, hook.events) == ("https://example.com/in", ("created",))
    assert '| `events` | a list of events | `["created"]` | live |' in reference([section])
    assert live_records([section]) == {"hooks": True}
