"""The migrations build exactly the schema the models describe, and upgrade is idempotent."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from storage.db import Database
from storage.migrate import alembic_config, is_current, upgrade
from storage.schema_version import HEAD, at_head
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


def test_the_database_files_are_readable_by_the_daemon_only(tmp_path: Path) -> None:
    # Under the usual umask 022 SQLite would create the database, its -wal and its -shm 0644:
    # every local user could read every customer's mail. An existing 0644 file is closed too.
    old_umask = os.umask(0o022)
    try:
        config = tmp_path / "ticketd.toml"
        config.write_text('[desk]\naddress = "destek@example.com"\n')
        assert main(["--config", str(config), "db", "upgrade"]) == 0
        database = tmp_path / "var" / "ticketd.sqlite3"
        database.chmod(0o644)
        db = Database(f"sqlite:///{database}")
        try:
            upgrade(db)
            with db.transaction() as session:
                session.execute(text("CREATE TABLE IF NOT EXISTS probe (x INTEGER)"))
            files = [database, Path(f"{database}-wal"), Path(f"{database}-shm")]
            modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in files if f.exists()}
            assert Path(f"{database}-wal").exists(), modes
            assert all(mode == 0o600 for mode in modes.values()), modes
        finally:
            db.dispose()
    finally:
        os.umask(old_umask)


def test_schema_version_head_is_the_newest_migration(tmp_path: Path) -> None:
    """`ticketd ingest` asks storage/schema_version.py, not Alembic, whether to migrate: a new
    migration must move its HEAD (else the pipe would skip the upgrade)."""
    db = Database(f"sqlite:///{tmp_path}/t.sqlite3")
    try:
        assert ScriptDirectory.from_config(alembic_config(db)).get_heads() == [HEAD]
        assert not at_head(db)  # no alembic_version table yet
        upgrade(db)
        assert at_head(db)
        with db.engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = '0013'"))
        assert not at_head(db)
    finally:
        db.dispose()
