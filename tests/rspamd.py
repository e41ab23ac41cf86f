"""A real rspamd (Debian's `rspamd`) for the spam-filter tests, started by the test.

It runs in the foreground (`-f`) as a child of the test, in its own process group, from a
minimal configuration in a folder of its own: one normal worker answering `/checkv2` on a free
127.0.0.1 port, no controller, no Redis, no network rules. GTUBE, the standard test pattern,
needs `enable_test_patterns` (rspamd 3.x ignores it otherwise) and gets the `reject` action
offline. `url_tld` names a five-line suffix list: the full list ships with rspamd but compiling it
takes rspamd about 25 s on two cores, the short one about a second. Under root it keeps root
(`-u root -g root`) instead of switching to the `_rspamd` user, who could not enter the test's
folder.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import free_port

RSPAMD = shutil.which("rspamd") or "/usr/bin/rspamd"
CONFIG = """\
options {{
  pidfile = "{dir}/rspamd.pid";
  dbdir = "{dir}/db";
  enable_test_patterns = true;
  url_tld = "{dir}/tld.dat";
}}
logging {{
  type = "file";
  filename = "{dir}/rspamd.log";
  level = "error";
}}
worker "normal" {{
  bind_socket = "127.0.0.1:{port}";
  count = 1;
}}
"""


def gtube() -> str:
    """GTUBE (rspamd.com/doc/gtube_patterns.html), put together at run time so no file of the
    repository is itself a spam test mail."""
    return "XJS*C4JDBQADN1.NSBN3*2IDNEN*" + "GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


@dataclass
class Rspamd:
    folder: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        (self.folder / "db").mkdir(parents=True, exist_ok=True)
        (self.folder / "tld.dat").write_text("com\nnet\norg\ntest\nexample\n")
        config = self.folder / "rspamd.conf"
        config.write_text(CONFIG.format(dir=self.folder, port=self.port))
        owner = ["-u", "root", "-g", "root"] if os.geteuid() == 0 else []
        self.process = subprocess.Popen(
            [RSPAMD, "-f", *owner, "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = self.folder / "rspamd.log"
                pytest.fail(f"rspamd exited: {log.read_text() if log.exists() else ''}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{self.url}/ping", timeout=1) as answer,
            ):
                if b"pong" in answer.read():
                    return
            time.sleep(0.1)
        self.stop()
        pytest.fail(f"rspamd did not answer within {timeout} s")

    def stop(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def rspamd(tmp_path: Path) -> Iterator[Rspamd]:
    if not os.path.exists(RSPAMD):
        pytest.fail("rspamd is not installed: apt-get install rspamd (scripts/test does)")
    server = Rspamd(tmp_path / "rspamd", free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()
