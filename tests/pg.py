"""A real PostgreSQL server for the PostgreSQL suite, started once per test session.

`initdb` refuses to run as root, so under root the server runs as the `postgres` user, in a
folder under /tmp that user can enter (pytest's tmp_path is not). As any other user it runs as
that user. The server listens on a free loopback port with its socket in the same folder, and is
stopped with `pg_ctl -m immediate stop` at the end of the session.

Missing server binaries fail the tests, with the fix in the message; TICKETD_SKIP_POSTGRESQL=1
turns that into a skip for a machine that cannot have them.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import psycopg
import pytest
from psycopg import sql

from tests.helpers import free_port

SKIP_VARIABLE = "TICKETD_SKIP_POSTGRESQL"
SUPERUSER = "postgres"


def find_bindir() -> Path | None:
    """The newest /usr/lib/postgresql/VERSION/bin with initdb, else initdb on PATH."""
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    if found:
        return max(found, key=lambda bindir: _version_key(bindir.parent.name))
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else -1 for part in name.split("."))


@dataclass
class PostgresServer:
    bindir: Path
    folder: Path
    port: int
    run_as: str | None  # a user to run the server binaries as (when the tests run as root)
    startup_seconds: float = 0.0

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def log(self) -> Path:
        return self.folder / "server.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def conninfo(self, database: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname={database}"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.run_as is not None:
            command = ["runuser", "-u", self.run_as, "--", *command]
        return subprocess.run(
            command, cwd=self.folder, capture_output=True, text=True, timeout=120, check=False
        )

    def _check(self, result: subprocess.CompletedProcess[str], what: str) -> None:
        if result.returncode != 0:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            raise RuntimeError(
                f"PostgreSQL {what} failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}{log}"
            )

    def initdb(self) -> None:
        result = self._run(
            "initdb",
            "--pgdata",
            str(self.data),
            "--username",
            SUPERUSER,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--locale",
            "C",
            "--no-sync",
        )
        self._check(result, "initdb")

    def start(self) -> None:
        options = (
            f"-c port={self.port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={self.folder} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=100"
        )
        started = time.monotonic()
        result = self._run(
            "pg_ctl", "--pgdata", str(self.data), "--log", str(self.log), "-w", "-t", "60",
            "-o", options, "start",
        )  # fmt: skip
        self._check(result, "pg_ctl start")
        self.startup_seconds = time.monotonic() - started

    def stop(self) -> None:
        self._run("pg_ctl", "--pgdata", str(self.data), "-m", "immediate", "-w", "stop")


def _missing_server(reason: str) -> NoReturn:
    if os.environ.get(SKIP_VARIABLE) == "1":
        pytest.skip(f"{reason} ({SKIP_VARIABLE}=1)")
    pytest.fail(
        f"{reason}: install the Debian package `postgresql` (scripts/test does so as root), "
        f"or set {SKIP_VARIABLE}=1 to skip the PostgreSQL suite",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def postgresql_server() -> Iterator[PostgresServer]:
    bindir = find_bindir()
    if bindir is None or not (bindir / "pg_ctl").exists():
        _missing_server("PostgreSQL server binaries (initdb, pg_ctl) not found")
    run_as: str | None = None
    folder = Path(tempfile.mkdtemp(prefix="ticketd-pg-", dir="/tmp"))
    try:
        if os.geteuid() == 0:
            try:
                account = pwd.getpwnam(SUPERUSER)
            except KeyError:
                _missing_server(f"running as root and there is no `{SUPERUSER}` user for initdb")
            os.chown(folder, account.pw_uid, account.pw_gid)
            run_as = SUPERUSER
        server = PostgresServer(bindir, folder, free_port(), run_as)
        server.initdb()
        # The port was free a moment ago; if another process took it since, try another one.
        for attempt in itertools.count(1):
            try:
                server.start()
                break
            except RuntimeError:
                if attempt == 3 or "could not bind" not in server.log.read_text(errors="replace"):
                    raise
                server.port = free_port()
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgresql_url(postgresql_server: PostgresServer) -> str:
    """The URL of the server's `postgres` database (the superuser, trust authentication)."""
    return postgresql_server.url()


_names = itertools.count(1)


@pytest.fixture
def pg_database(postgresql_server: PostgresServer, postgresql_url: str) -> Iterator[str]:
    """A fresh, empty database for one test: its postgresql+psycopg:// URL."""
    name = f"ticketd_test_{os.getpid()}_{next(_names)}"
    admin = postgresql_server.conninfo()
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield postgresql_server.url(name)
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
