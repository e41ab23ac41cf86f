"""The shape of the command line (ticketd/commands.py): every command declared once in the
table of ticketd/cli.py, its handler taking what its `opens` promises, its module imported only
when it runs, and no module borrowing another's private names."""

from __future__ import annotations

import ast
import subprocess
import sys
import typing
from argparse import Namespace
from pathlib import Path

import pytest

from storage.models import (
    JOURNAL_DISMISSED,
    JOURNAL_DONE,
    JOURNAL_IGNORED,
    JOURNAL_PENDING,
    JOURNAL_QUARANTINED,
    WEBHOOK_DELIVERED,
    WEBHOOK_FAILED,
    WEBHOOK_QUEUED,
)
from storage.models import TICKET_STATUSES as MODEL_TICKET_STATUSES
from tests.helpers import write_config
from ticketd.cli import COMMANDS, JOURNAL_STATES, TICKET_STATUSES, WEBHOOK_STATES
from ticketd.commands import Command, Opens, every_command
from ticketd.state import ReadState, State

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("storage", "domain", "outbound", "ingest", "ticketd")
DECLARED = list(every_command(COMMANDS))
STATE_OF = {Opens.FULL: [State], Opens.READ: [ReadState], Opens.NONE: []}


@pytest.mark.parametrize(("words", "command"), DECLARED, ids=[" ".join(w) for w, _ in DECLARED])
def test_every_handler_takes_what_its_command_opens(
    words: tuple[str, ...], command: Command
) -> None:
    hints = typing.get_type_hints(command.load())
    returns = hints.pop("return")
    assert returns is int, words
    *state, args = hints.values()
    assert args is Namespace, words
    assert state == STATE_OF[command.opens], (words, command.opens)


def test_names_and_handlers_are_declared_once() -> None:
    assert len({words for words, _ in DECLARED}) == len(DECLARED)
    assert len({command.handler for _, command in DECLARED}) == len(DECLARED)


def test_the_states_commands_filter_by_are_the_models() -> None:
    models = (JOURNAL_PENDING, JOURNAL_DONE, JOURNAL_IGNORED, JOURNAL_QUARANTINED)
    assert (*models, JOURNAL_DISMISSED) == JOURNAL_STATES
    assert (WEBHOOK_QUEUED, WEBHOOK_DELIVERED, WEBHOOK_FAILED) == WEBHOOK_STATES
    assert MODEL_TICKET_STATUSES == TICKET_STATUSES


def _modules_after(folder: Path, *words: str) -> set[str]:
    """sys.modules after `ticketd WORDS... FILE` (FILE a message) into a database already at
    the newest schema."""
    config = write_config(folder)
    message = folder / "m.eml"
    message.write_bytes(b"From: a@example.org\nSubject: hi\n\nhello\n")
    script = (
        "import sys\n"
        "from ticketd.cli import main\n"
        "assert main(['--config', sys.argv[1], *sys.argv[3:], sys.argv[2]]) == 0\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    command = [sys.executable, "-c", script, str(config), str(message), *words]
    first = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert first.returncode == 0, first.stderr  # it made the database: Alembic then
    run = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    *_, loaded = run.stdout.splitlines()
    return set(loaded.split())


def _ingest_modules(folder: Path) -> set[str]:
    return _modules_after(folder, "ingest")


def test_ingest_loads_the_journal_and_nothing_it_does_not_use(tmp_path: Path) -> None:
    """The MTA pipe starts once a message (issue 19): not the full state, the worker, the
    pipeline, the parser, Alembic (at the newest schema), the table printer, nor the heavy
    libraries of the rest of ticketd: the schema's pydantic (ingest checks the journal's keys
    without it, domain/config_journal.py), the ORM and its models (the journal writes with
    Core, storage/journal_table.py), X.509 (certificates are the listener's), the HTTP API,
    the templates, the scheduler, the SMTP server. Not a timing: bench/cli_startup.py measures
    that; this says which imports came back when it grows."""
    modules = _ingest_modules(tmp_path)
    assert "ingest.journal" in modules
    unused = (
        "ticketd.state", "ticketd.views", "ingest.worker", "ingest.pipeline", "ingest.parsing",
        "alembic", "rich", "jinja2", "outbound.sla",
    )  # fmt: skip
    assert not modules & set(unused), modules & set(unused)
    heavy = (
        "pydantic", "pydantic_core", "domain.config", "domain.config_schema",
        "cryptography.x509", "domain.tls_files", "fastapi", "starlette", "web", "jinja2",
        "apscheduler", "aiosmtpd", "aiosmtplib", "imapclient", "storage.webhook_events",
        "sqlalchemy.orm", "storage.models",
    )  # fmt: skip
    assert not modules & set(heavy), modules & set(heavy)


def test_a_command_on_a_database_at_the_newest_schema_loads_no_alembic(tmp_path: Path) -> None:
    """Alembic and its scripts (Mako, Pygments) were a tenth of every command's start-up, only
    to learn that nothing needed migrating (issue 19): storage/schema_version.py says so. Nor
    pypdf, which only the PDF check's own child process reads with."""
    modules = _modules_after(tmp_path, "import", "--no-process", "--json")
    assert {"ticketd.state", "ingest.documents_step"} <= modules
    assert not {"alembic", "storage.migrate", "mako", "pypdf"} & modules


_FORKSERVER_AT_LOAD = (
    "import sys\n"
    "from multiprocessing import forkserver\n"
    "from ticketd import commands\n"
    "from ticketd.cli import main\n"
    "load = commands.Command.load\n"
    "def recorded(self):\n"
    "    print('forkserver' if forkserver._forkserver._forkserver_pid else 'none')\n"
    "    return load(self)\n"
    "commands.Command.load = recorded\n"
    "sys.exit(main(['--config', *sys.argv[1:]]))\n"
)


@pytest.mark.parametrize(
    ("words", "started"),
    [
        (("import", "--json"), True),
        (("import", "--json", "--no-process"), False),
        (("ingest",), False),  # the MTA pipe only journals: no second process
    ],
)
def test_a_command_that_parses_starts_the_forkserver_before_its_imports(
    tmp_path: Path, words: tuple[str, ...], started: bool
) -> None:
    """The parsing process's imports run on the other core while the command imports its
    own (issue 19): one after the other, they were a second or more of every import."""
    config = write_config(tmp_path)
    folder = tmp_path / "mail"
    folder.mkdir()
    (folder / "m.eml").write_bytes(b"From: a@example.org\nSubject: hi\n\nhello\n")
    target = folder if words[0] == "import" else folder / "m.eml"
    command = [sys.executable, "-c", _FORKSERVER_AT_LOAD, str(config), *words, str(target)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == ("forkserver" if started else "none")


def test_the_forkserver_preloads_the_module_the_parsing_process_runs() -> None:
    from ticketd.commands import PARSING_MODULE
    from ticketd.state import State

    state = State.__new__(State)
    state.isolation = None
    state.isolate()  # what `import` parses with
    assert state.isolation is not None
    assert state.isolation.function.__module__ == PARSING_MODULE


def _private_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module != "__future__":
            found += [
                f"{path.relative_to(ROOT)}:{node.lineno}: {node.module}.{alias.name}"
                for alias in node.names
                if alias.name.startswith("_")
            ]
        elif isinstance(node, ast.Import):
            found += [
                f"{path.relative_to(ROOT)}:{node.lineno}: {alias.name}"
                for alias in node.names
                if any(part.startswith("_") for part in alias.name.split("."))
            ]
    return found


def test_no_module_imports_another_modules_private_names() -> None:
    """A leading underscore says "only this module relies on it": what another module needs is
    given a public name where it lives."""
    found = [
        line
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for line in _private_imports(path)
    ]
    assert found == []
