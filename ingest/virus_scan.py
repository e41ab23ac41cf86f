"""A client for clamd, ClamAV's daemon: INSTREAM a file's bytes, read the verdict.

Own code rather than a dependency: `clamd` and `pyClamd` on PyPI were last released in 2014 and
2017; the maintained fork `clamav-client` is GPL-2.0 (ticketd is MIT) and, like its parents, lets
the OSError of a stream clamd cut short escape instead of reading clamd's "size limit exceeded"
answer. The protocol is small (clamd(8)): send `zINSTREAM\\0`, then chunks each prefixed with its
length as 4 bytes big-endian, then a zero length; clamd answers one NUL-terminated line:
`stream: OK`, `stream: <signature> FOUND`, or `<reason> ERROR`.

`scan` returns None for a clean file and the signature for an infected one. Anything else raises
`ScannerUnavailable`: never is a file treated as clean without clamd's "OK". A connection that
fails or times out is `ScannerUnreachable`, temporary (clamd is down: try again later); an ERROR
answer is `ScannerRefused`, permanent (clamd refused this file, e.g. over its StreamMaxLength).
"""

from __future__ import annotations

import socket
import struct

from domain.config_kyc import ClamdAddress
from domain.errors import Permanent, Temporary, TicketdError

CHUNK = 64 * 1024
_MAX_REPLY = 4096
# The reason a pending journal row carries while clamd cannot be reached (ingest/worker.py);
# `ticketd health` looks for it.
WAITING_FOR_SCANNER = "waiting for the virus scanner"


class ScannerUnavailable(TicketdError):
    """clamd gave no verdict: `ScannerUnreachable` or `ScannerRefused`."""

    reachable = False

    def __init__(self, address: ClamdAddress, reason: str) -> None:
        super().__init__(f"clamd at {address}: {reason}")
        self.address = address
        self.reason = reason

    def __reduce__(self) -> tuple[type[ScannerUnavailable], tuple[ClamdAddress, str]]:
        # Sent back from the parsing process (ingest/isolation.py): pickle the constructor's
        # arguments, not the message.
        return (type(self), (self.address, self.reason))


class ScannerUnreachable(ScannerUnavailable, Temporary):
    """No answer (down, refused the connection, timed out): try again later."""


class ScannerRefused(ScannerUnavailable, Permanent):
    """An answer that is no verdict (an ERROR: a file over clamd's StreamMaxLength); the same
    file gets it again, so its message is quarantined as not scanned, never passed as clean."""

    reachable = True

    def quarantine_reason(self) -> str:
        return f"not scanned: {self}; nothing of the message stored"


def _connect(address: ClamdAddress, timeout: float) -> socket.socket:
    if address.path is not None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(str(address.path))
        except BaseException:
            sock.close()
            raise
        return sock
    return socket.create_connection((address.host, address.port), timeout=timeout)


def _reply(sock: socket.socket) -> str:
    data = b""
    while not data.endswith(b"\0") and len(data) < _MAX_REPLY:
        piece = sock.recv(_MAX_REPLY)
        if not piece:
            break
        data += piece
    return data.rstrip(b"\0").decode("utf-8", "replace").strip()


def _talk(address: ClamdAddress, timeout: float, command: bytes, payload: bytes | None) -> str:
    try:
        with _connect(address, timeout) as sock:
            sock.sendall(command)
            if payload is not None:
                try:
                    for start in range(0, len(payload), CHUNK):
                        chunk = payload[start : start + CHUNK]
                        sock.sendall(struct.pack(">I", len(chunk)) + chunk)
                    sock.sendall(struct.pack(">I", 0))
                except (BrokenPipeError, ConnectionResetError):
                    pass  # clamd stopped reading (a limit): its answer says why
            reply = _reply(sock)
    except TimeoutError:
        raise ScannerUnreachable(address, f"no answer within {timeout:g} s") from None
    except OSError as error:
        raise ScannerUnreachable(address, error.strerror or str(error)) from None
    if not reply:
        raise ScannerUnreachable(address, "closed the connection without an answer")
    return reply


def scan(address: ClamdAddress, payload: bytes, timeout: float = 30.0) -> str | None:
    """None when clamd says OK, the signature when it FOUND one; else ScannerUnavailable."""
    reply = _talk(address, timeout, b"zINSTREAM\0", payload)
    if reply == "stream: OK":
        return None
    if reply.startswith("stream: ") and reply.endswith(" FOUND"):
        return reply.removeprefix("stream: ").removesuffix(" FOUND").strip() or "unknown"
    raise ScannerRefused(address, f"answered {reply[:200]!r}")


def ping(address: ClamdAddress, timeout: float = 5.0) -> None:
    """Raises ScannerUnavailable unless clamd answers PONG."""
    reply = _talk(address, timeout, b"zPING\0", None)
    if reply != "PONG":
        raise ScannerRefused(address, f"answered {reply[:200]!r} to PING")
