"""uvicorn serving the API inside the daemon's event loop.

The daemon owns the signals (SIGTERM drains, SIGHUP reloads): uvicorn's own handlers are not
installed. The socket is bound by `bind` before the daemon says it is ready, so a port in use is
a clear start failure naming `http.listen`, never a server that silently is not there. TLS is
the reverse proxy's (README: an nginx example).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import uvicorn

from domain.config import ConfigError, HostPort
from web.app import create_app
from web.services import WebDeps

# What a request still running at the stop gets to finish.
GRACEFUL_SECONDS = 5


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the daemon's handlers stay in place


def bind(listen: HostPort) -> socket.socket:
    family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
    # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY only on sockets whose proto says TCP,
    # and an accepted socket inherits the listener's 0. Without it, every response (uvicorn
    # writes its headers and its body apart) waited 40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((listen.host, listen.port))
        sock.listen(128)
    except OSError as error:
        sock.close()
        raise ConfigError(
            [("http.listen", f"cannot listen on {listen}: {error.strerror or error}")]
        ) from error
    sock.setblocking(False)
    return sock


class HttpService:
    def __init__(self, deps: WebDeps, listen: HostPort) -> None:
        self.listen = listen
        self.sock = bind(listen)
        config = uvicorn.Config(
            create_app(deps),
            log_config=None,  # ticketd's logging (domain/logs.py)
            access_log=False,  # content access is in access_audit instead
            lifespan="off",
            proxy_headers=True,  # the client's address as the reverse proxy says it
            forwarded_allow_ips="127.0.0.1",
            timeout_graceful_shutdown=GRACEFUL_SECONDS,
            server_header=False,
        )
        self.server = _Server(config)

    async def serve(self) -> None:
        await self.server.serve(sockets=[self.sock])

    def stop(self) -> None:
        self.server.should_exit = True


async def stop_and_wait(service: HttpService, task: asyncio.Task[None]) -> None:
    service.stop()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await asyncio.wait_for(task, GRACEFUL_SECONDS + 2)
