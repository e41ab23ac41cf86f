"""The HTTP server's connections send without Nagle's delay (web/server.py's `bind`).

uvicorn writes a response's headers and its body apart; on a socket with Nagle's algorithm the
body waits for the client's ACK of the headers, which a client delays by up to 40 ms, so every
API request took 44 ms on loopback whatever its work (bench/api_latency.py). asyncio turns
Nagle off only for sockets whose protocol says TCP, which `bind` must therefore say."""

from __future__ import annotations

import asyncio
import socket

from domain.config import HostPort
from tests.helpers import free_port
from web.server import bind


async def _nodelay_of_an_accepted_connection(listen: HostPort) -> int:
    seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        seen.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(accepted, sock=bind(listen))
    async with server:
        _, writer = await asyncio.open_connection(listen.host, listen.port)
        try:
            return await asyncio.wait_for(seen, 10)
        finally:
            writer.close()
            await writer.wait_closed()


def test_accepted_http_connections_have_nagle_off() -> None:
    listen = HostPort("127.0.0.1", free_port())
    assert asyncio.run(_nodelay_of_an_accepted_connection(listen)) != 0
