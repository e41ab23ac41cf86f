"""A real clamd (ClamAV's daemon) for the virus-scanning tests, one per test.

clamd runs in the foreground (`Foreground yes`) as a child of the test, in its own process group,
from a configuration in a folder of its own: a Unix socket there and TCP on a free 127.0.0.1
port, its database directory there too, no freshclam and no network. The official signature
databases are downloaded by freshclam, so the test writes the one signature it needs:
`Ticketd.Test.EICAR`, an .ndb body signature (hex of the EICAR test string, found anywhere in a
file); clamd reports it as `Ticketd.Test.EICAR.UNOFFICIAL`. The EICAR string is put together
from pieces at run time, so the repository holds no file a virus scanner would flag.

clamd stays the user that starts it: the configuration has no `User` line, so under root (as
scripts/test runs) it does not switch to Debian's `clamav` user, who could not enter the folder.
The folder lives under /tmp, because a Unix socket path must stay under 108 bytes. StreamMaxLength
is 1 MB, so a test can make clamd answer "size limit exceeded ... ERROR".

A missing clamd fails the tests with the fix in the message; TICKETD_SKIP_CLAMD=1 skips them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from domain.config_kyc import ClamdAddress
from ingest.virus_scan import ScannerUnavailable, ping
from tests.helpers import free_port

SKIP_VARIABLE = "TICKETD_SKIP_CLAMD"
# /usr/sbin is not on every user's PATH.
CLAMD = shutil.which("clamd") or "/usr/sbin/clamd"
SIGNATURE = "Ticketd.Test.EICAR"
FOUND_AS = f"{SIGNATURE}.UNOFFICIAL"
STREAM_MAX = 1024 * 1024
CONFIG = """\
Foreground yes
LocalSocket {dir}/clamd.sock
TCPSocket {port}
TCPAddr 127.0.0.1
DatabaseDirectory {dir}/db
TemporaryDirectory {dir}/tmp
LogFile {dir}/clamd.log
LogTime yes
StreamMaxLength {stream_max}
SelfCheck 3600
"""


def eicar() -> bytes:
    """The EICAR antivirus test string (eicar.org), assembled so no source file contains it."""
    pieces = ("X5O!P%@AP[4\\PZX54(P^)7CC)7}$", "EICAR-STANDARD-", "ANTIVIRUS-TEST-", "FILE!$H+H*")
    return "".join(pieces).encode("ascii")


@dataclass
class Clamd:
    folder: Path
    tcp_port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def config(self) -> Path:
        return self.folder / "clamd.conf"

    @property
    def unix(self) -> ClamdAddress:
        return ClamdAddress(path=self.folder / "clamd.sock")

    @property
    def tcp(self) -> ClamdAddress:
        return ClamdAddress(host="127.0.0.1", port=self.tcp_port)

    def kyc_section(self, address: ClamdAddress | None = None, timeout: float = 10) -> str:
        """The `[kyc]` lines of a ticketd configuration that uses this clamd."""
        return f'\n[kyc]\nclamd = "{address or self.unix}"\nclamd_timeout = {timeout}\n'

    def log(self) -> str:
        text = ""
        for name in ("clamd.log", "stderr.log"):
            path = self.folder / name
            if path.exists():
                text += path.read_text(errors="replace")
        return text

    def start(self) -> None:
        with (self.folder / "stderr.log").open("ab") as stderr:
            self.process = subprocess.Popen(
                [CLAMD, f"--config-file={self.config}"],
                stdout=stderr,
                stderr=stderr,
                start_new_session=True,
            )
        # Loading one signature takes a moment; a loaded machine may take many.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"clamd exited {self.process.returncode}: {self.log()}")
            try:
                ping(self.unix, timeout=5)
                ping(self.tcp, timeout=5)
                return
            except ScannerUnavailable:
                time.sleep(0.05)
        raise AssertionError(f"clamd did not answer PING: {self.log()}")

    def stop(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None
        # A clamd killed hard leaves its socket file: connecting to it is refused, as wanted.


def start_clamd() -> Clamd:
    if not os.access(CLAMD, os.X_OK):
        message = (
            "clamd is not installed: run ./scripts/test as root, or apt-get install clamav-daemon"
        )
        if os.environ.get(SKIP_VARIABLE):
            pytest.skip(message)
        pytest.fail(message + f" (or set {SKIP_VARIABLE}=1 to skip the virus-scanning tests)")
    folder = Path(tempfile.mkdtemp(prefix="ticketd-clamd-"))
    (folder / "db").mkdir()
    (folder / "tmp").mkdir()
    # name:target type (0: any file):offset (*: anywhere):hex of the bytes
    (folder / "db" / "ticketd-test.ndb").write_text(f"{SIGNATURE}:0:*:{eicar().hex()}\n")
    server = Clamd(folder, free_port())
    server.config.write_text(CONFIG.format(dir=folder, port=server.tcp_port, stream_max=STREAM_MAX))
    server.start()
    return server


@pytest.fixture
def clamd() -> Iterator[Clamd]:
    server = start_clamd()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.folder, ignore_errors=True)
