"""The migrations build exactly the schema the models describe, and upgrade is idempotent."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import inspect

from storage.db import Database
from storage.migrate import alembic_config, is_current, upgrade
from ticketd.cli import main


def test_migrations_match_the_models(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path}/t.sqlite3")
    try:
        assert not is_current(db)
        upgrade(db)
        assert is_current(db)
        # Raises when the models and the migrated schema differ (a forgotten migration).
        command.check(alembic_config(db))
        tables = set(inspect(db.engine).get_table_names())
        assert {"journal", "tickets", "messages", "outbox", "participants"} <= tables
    finally:
        db.dispose()


def test_db_upgrade_command_is_idempotent(tmp_path: Path) -> None:
    config = tmp_path / "ticketd.toml"
    config.write_text('[desk]\naddress = "destek@example.com"\n')
    assert main(["--config", str(config), "db", "upgrade"]) == 0
    assert main(["--config", str(config), "db", "upgrade"]) == 0
    db = Database(f"sqlite:///{tmp_path}/var/ticketd.sqlite3")
    try:
        assert is_current(db)
    finally:
        db.dispose()
