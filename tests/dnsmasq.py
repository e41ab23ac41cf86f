"""A real DNS server for the sender-verification tests: Debian's dnsmasq on a loopback port.

It runs in the foreground as a child of the test (`--keep-in-foreground`), reads no
/etc/resolv.conf and asks no upstream (`--no-resolv`), no /etc/hosts, and serves only the TXT
records the test gives it (SPF, DKIM keys, DMARC policies); for any other name it answers NXDOMAIN
at once (`--local=/#/`), as a server with no such record does. `[dns] nameservers` points ticketd
at it; `shared_nameserver` is the one every test configuration uses unless it names its own. A
missing dnsmasq fails the tests that need records, with the fix in the message.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import dns.resolver
import pytest

DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
_shared: list[Dnsmasq] = []


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _split(text: str) -> list[str]:
    """A TXT record's text as dnsmasq's pieces: one DNS string holds at most 255 bytes."""
    return [text[i : i + 255] for i in range(0, len(text), 255)] or [""]


@dataclass
class Dnsmasq:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def nameserver(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        for pipe in (self.process.stdin, self.process.stderr):
            if pipe is not None:
                pipe.close()


def start_dnsmasq(records: Sequence[tuple[str, str]]) -> Dnsmasq:
    if not os.path.exists(DNSMASQ):
        pytest.fail("dnsmasq is not installed: apt-get install dnsmasq (scripts/test does)")
    # On a loaded machine (four workers, each with its PostgreSQL) a start now and then does not
    # answer in time; a second one on another port always has, so one retry before failing.
    for _attempt in range(2):
        server = _start_once(records)
        if server is not None:
            return server
    pytest.fail("dnsmasq did not answer within 10 s, twice")


def _start_once(records: Sequence[tuple[str, str]]) -> Dnsmasq | None:
    port = _free_udp_port()
    args = [
        DNSMASQ,
        "--keep-in-foreground",
        "--no-resolv",
        "--no-hosts",
        "--conf-file=/dev/null",
        "--bind-interfaces",
        "--listen-address=127.0.0.1",
        f"--port={port}",
        "--user=root",  # stays the user that started it; no switch to "nobody" and back
        "--pid-file=",
        "--local=/#/",  # every other name: NXDOMAIN at once, as from an authoritative server
    ]
    for name, text in records:
        # No quotes: they are config-file syntax; in argv they would be part of the text.
        args.append("--txt-record=" + ",".join([name, *_split(text)]))
    # dnsmasq under a shell that waits on a pipe from the test: when the test process ends,
    # however it ends (a `timeout`, SIGKILL), the pipe closes and the shell stops dnsmasq, so
    # none is left behind. (PR_SET_PDEATHSIG would not do: dnsmasq's change of user clears it.)
    watch = 'dnsmasq_bin="$1"; shift; "$dnsmasq_bin" "$@" & child=$!; read _; kill "$child"'
    process = subprocess.Popen(
        ["/bin/sh", "-c", watch, "sh", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    server = Dnsmasq(port, process)
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers, resolver.port = ["127.0.0.1"], port
    probe = records[0][0] if records else "probe.test"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            error = process.stderr.read().decode() if process.stderr else ""
            pytest.fail(f"dnsmasq exited {process.returncode}: {error}")
        try:
            resolver.resolve(probe, "TXT", lifetime=0.5)
            return server
        except dns.resolver.NXDOMAIN:  # an answer too: the server is up
            return server
        except dns.exception.DNSException:
            time.sleep(0.05)
    server.stop()
    return None


@contextlib.contextmanager
def dnsmasq(records: Sequence[tuple[str, str]]) -> Iterator[Dnsmasq]:
    server = start_dnsmasq(records)
    try:
        yield server
    finally:
        server.stop()


def shared_nameserver() -> str | None:
    """A dnsmasq with no records, started once per test run, for every configuration the tests
    write (tests/helpers.py): the listener's sender verification then gets NXDOMAIN at once for
    every name, whatever the machine's resolver would say (example.com publishes DMARC
    p=reject on the real Internet). None without dnsmasq: the system's resolver then."""
    if not os.path.exists(DNSMASQ):
        return None
    if not _shared:
        _shared.append(start_dnsmasq([]))
        atexit.register(_shared[0].stop)
    return _shared[0].nameserver
