"""Every key of every section is known or named as unknown, with the nearest known key
suggested; a value of the wrong type is one error; an agent in no queue and a category no queue
takes are warnings that `check` prints (issue 15, point 16)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from domain import config
from domain.config import ConfigError, load_config
from domain.config_schema import Section, Table, inner_table
from ticketd.cli import EX_CONFIG, EX_OK, main

ROOT = Path(__file__).resolve().parent.parent
BASE = "[desk]\naddress = 'destek@example.com'\n"


def _declared(header: str, model: type[Table]) -> list[tuple[str, tuple[str, ...]]]:
    """(header, keys) of a table of the schema and of the tables inside it."""
    found = [(header, tuple(model.model_fields))]
    for name, field in model.model_fields.items():
        inner = inner_table(field.annotation)
        if inner is not None:
            found += _declared(f"{header.rstrip(']')}.{name}]", inner)
    return found


def _header(section: Section) -> str:
    return section.header.replace("NAME", "m365")


# (where the key goes, its known keys): every table the file may have, as the schema declares
# them, the tables inside tables too ([sla.calendar], [sla.categories.kyc]).
TABLES = [
    table for section in config.SECTIONS for table in _declared(_header(section), section.model)
]


def _typo(key: str) -> str:
    """The key with two of its letters swapped, the way fingers mistype it."""
    i = 1 if key[1] != key[2] else 2
    return key[:i] + key[i + 1] + key[i] + key[i + 2 :]


def _problems(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "ticketd.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    return dict(error.value.problems)


def _name(header: str, key: str) -> str:
    section = header.strip("[]")
    return f"{section}[0].{key}" if header.startswith("[[") else f"{section}.{key}"


CASES = [(header, key) for header, keys in TABLES for key in keys]


@pytest.mark.parametrize(("header", "key"), CASES, ids=[f"{h}{k}" for h, k in CASES])
def test_every_mistyped_key_is_named_with_the_key_it_meant(
    tmp_path: Path, header: str, key: str
) -> None:
    typo = _typo(key)
    table = "" if header == "[desk]" else f"{header}\n"
    found = _problems(tmp_path, f"{BASE}{table}{typo} = 1\n")
    name = _name(header, typo)
    assert name in found, found
    assert found[name].startswith("unknown") and f"did you mean {key!r}?" in found[name]


# The typos the issue found accepted, spelled as it reports them.
@pytest.mark.parametrize(
    ("text", "key", "meant"),
    [
        ("[smtp_out]\nrealy = '127.0.0.1:25'\n", "smtp_out.realy", "relay"),
        ("[storage]\ndatabse = 'sqlite:///x.db'\n", "storage.databse", "database"),
        ("[desk]\nsecert = 'x'\n", "desk.secert", "secret"),
        ("[[queues]]\nname = 'q'\ncategory = ['payment']\n", "queues[0].category", "categories"),
        ("[[agents]]\nemail = 'a@example.com'\nqueue = ['q']\n", "agents[0].queue", "queues"),
        ("[threading]\nduplicate_window = 5\n", "threading.duplicate_window", None),
        ("[metrics]\nlisten_on = '127.0.0.1:9325'\n", "metrics.listen_on", "listen"),
        ("[agent_replies]\nstrip_signatures = true\n", "agent_replies.strip_signatures", None),
        ("[smtp]\nlisten = 'x'\n", "smtp", "smtp_in"),
    ],
)
def test_the_typos_found_on_day_one(tmp_path: Path, text: str, key: str, meant: str | None) -> None:
    body = BASE + text.removeprefix("[desk]\n")
    found = _problems(tmp_path, body)
    assert key in found, found
    assert "unknown" in found[key]
    if meant is not None:
        assert f"did you mean {meant!r}?" in found[key]


# A value of the wrong type is one problem for its key, not one per character or item.
@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[[queues]]\nname = 'q'\nescalation = 'lead@example.com'\n", "queues[0].escalation"),
        ("[[queues]]\nname = 'q'\ncategories = 'payment'\n", "queues[0].categories"),
        ("[[agents]]\nemail = 'a@example.com'\nqueues = 'q'\n", "agents[0].queues"),
        ("[smtp_in]\nmax_recipients = '100'\n", "smtp_in.max_recipients"),
        ("[smtp_out]\nstarttls = 'yes'\n", "smtp_out.starttls"),
        ("[categories]\npayment = 'para çekme'\n", "categories.payment"),
        ("[sla.calendar]\nholidays = '2026-01-01'\n", "sla.calendar.holidays"),
        ("[sla.calendar]\ndays = 'mon'\n", "sla.calendar.days"),
        ("[sla]\nreminders = 0.5\n", "sla.reminders"),
        ("[sla]\nfollowup_categories = 'payment'\n", "sla.followup_categories"),
        ("[kyc]\naccepted = 'jpeg'\n", "kyc.accepted"),
        ("[limits]\nauto_replies_per_hour = '3'\n", "limits.auto_replies_per_hour"),
        ("[threading]\nbounce_suppression_days = 1.5\n", "threading.bounce_suppression_days"),
    ],
)
def test_a_wrong_type_is_one_error(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "ticketd.toml"
    path.write_text(BASE + text, encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    mine = [k for k, _ in error.value.problems if k == key or k.startswith(key + "[")]
    assert mine == [key], error.value.problems


@pytest.mark.parametrize("field", ["desk.admins", "desk.extra_addresses"])
def test_a_string_where_a_list_of_addresses_goes_is_one_error(tmp_path: Path, field: str) -> None:
    name = field.partition(".")[2]
    path = tmp_path / "ticketd.toml"
    path.write_text(BASE + f"{name} = 'lead@example.com'\n", encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert [k for k, _ in error.value.problems if k.startswith(field)] == [field]


def _readme_tables() -> list[tuple[str, str]]:
    """(table, key) of every key the README's configuration examples show, comments included
    (a commented key is one an admin will uncomment)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found: list[tuple[str, str]] = []
    for block in re.findall(r"```toml\n(.*?)```", readme, re.S):
        table = ""
        for line in block.splitlines():
            line = line.strip().lstrip("# ").strip()
            header = re.match(r"^\[\[?([a-z0-9_.]+)\]\]?", line)
            if header:
                table = header.group(1)
            elif (pair := re.match(r"^([a-z_]+)\s*=", line)) and table:
                found.append((table, pair.group(1)))
    return found


def test_every_key_the_readme_shows_is_known(tmp_path: Path) -> None:
    """The known-keys tables and the documentation agree: no documented key is refused."""
    shown = _readme_tables()
    assert len(shown) > 60, shown
    for table, key in shown:
        arrays = ("imap", "queues", "agents", "webhooks")
        header = f"[[{table}]]" if table in arrays else f"[{table}]"
        text = f"{BASE}{header}\n{key} = 1\n"
        if table == "desk":
            text = f"[desk]\n{key} = 1\n" + ("" if key == "address" else BASE.partition("\n")[2])
        path = tmp_path / "ticketd.toml"
        path.write_text(text, encoding="utf-8")
        try:
            load_config(path)
        except ConfigError as error:
            unknown = [k for k, reason in error.problems if reason.startswith("unknown")]
            assert unknown == [], (table, key, error.problems)


def test_check_names_the_typo_and_suggests_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ticketd.toml"
    path.write_text(BASE + "[smtp_out]\nrealy = '127.0.0.1:25'\n", encoding="utf-8")
    assert main(["--config", str(path), "check"]) == EX_CONFIG
    err = capsys.readouterr().err
    assert "smtp_out.realy: unknown key; did you mean 'relay'?" in err, err


def test_check_warns_of_an_agent_in_no_queue_and_a_category_nobody_takes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    team = (
        "[[queues]]\nname = 'odeme'\ncategories = ['payment']\n"
        "[[agents]]\nemail = 'ayse@example.com'\nqueues = ['odeme']\n"
        "[[agents]]\nemail = 'mehmet@example.com'\n"
    )
    path = tmp_path / "ticketd.toml"
    path.write_text(BASE + team, encoding="utf-8")
    assert main(["--config", str(path), "check"]) == EX_OK
    out = capsys.readouterr().out
    assert "warning: agents[1].queues: mehmet@example.com is in no queue" in out, out
    assert "agents[0]" not in out
    for category in ("account", "bonus", "technical", "kyc", "complaint", "other"):
        assert f'warning: queues: "{category}" is taken by no queue' in out, out
    assert '"payment" is taken' not in out
    # A queue that takes "other" catches every category: nothing is left unrouted.
    path.write_text(BASE + team.replace("['payment']", "['payment', 'other']"), encoding="utf-8")
    assert main(["--config", str(path), "check"]) == EX_OK
    assert "is taken by no queue" not in capsys.readouterr().out
