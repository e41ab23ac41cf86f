"""Issue 10, the IMAP server dropping the connection in the middle of a FETCH.

A small TCP proxy sits between the account loop and the real Dovecot (tests/dovecot.py) and
cuts the connection part-way through the literal of a `BODY[] {n}` FETCH response, several times
over the sync. The loop reconnects and fetches the batch again; in the end every message is
one journal row and one ticket: none twice, none lost.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import pytest

from tests.dovecot import Dovecot
from tests.helpers import customer_mail
from tests.test_imap import SEEN, account_for, journal_rows, running, wait_for
from ticketd.state import State
from ticketd.views import list_tickets

pytestmark = pytest.mark.slow

BODY_LITERAL = b"BODY[] {"


@dataclass
class CuttingProxy:
    """Forwards 127.0.0.1:port to the upstream port, cutting the connection inside the body
    of the FETCH responses whose running number is in `cut_at` (1-based)."""

    upstream: int
    cut_at: set[int]
    port: int = 0
    bodies_seen: int = 0
    cuts: int = 0
    connections: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    listener: socket.socket = field(default_factory=socket.socket)
    open_sockets: list[socket.socket] = field(default_factory=list)

    def start(self) -> None:
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def stop(self) -> None:
        self.listener.close()
        for sock in self.open_sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # stopped
            server = socket.create_connection(("127.0.0.1", self.upstream))
            with self.lock:
                self.connections += 1
                self.open_sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _cut_point(self, chunk: bytes) -> int | None:
        """Where to cut this server chunk: 100 bytes into a body literal that is to be cut."""
        start = 0
        while (found := chunk.find(BODY_LITERAL, start)) >= 0:
            with self.lock:
                self.bodies_seen += 1
                if self.bodies_seen in self.cut_at:
                    self.cuts += 1
                    return found + len(BODY_LITERAL) + 100
            start = found + 1
        return None

    def _pump(self, source: socket.socket, target: socket.socket, from_server: bool) -> None:
        try:
            while chunk := source.recv(65536):
                cut = self._cut_point(chunk) if from_server else None
                if cut is not None:
                    target.sendall(chunk[:cut])
                    break
                target.sendall(chunk)
        except OSError:
            pass
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


@pytest.fixture
def proxy(dovecot: Dovecot) -> Iterator[CuttingProxy]:
    cutting = CuttingProxy(dovecot.imap_port, cut_at={2, 9, 17})
    cutting.start()
    yield cutting
    cutting.stop()


def test_connections_cut_mid_fetch_lose_nothing_and_duplicate_nothing(
    dovecot: Dovecot, state: State, proxy: CuttingProxy
) -> None:
    count = 24
    dovecot.drop_in(
        "destek",
        [
            customer_mail(
                sender=f"Müşteri {n} <musteri{n}@example.net>",
                subject=f"Talep {n}",
                body=f"Talep {n}: " + "ayrıntı " * 800,  # a literal spanning several reads
                message_id=f"<cut-{n}@example.net>",
            )
            for n in range(count)
        ],
    )
    account = replace(account_for(dovecot, security="none", batch_size=5), port=proxy.port)
    with running(state, account, backoff_max=0.5):
        wait_for(lambda: len(journal_rows(state)) >= count, timeout=90, what="the whole sync")
        wait_for(
            lambda: all(SEEN in flags for flags in dovecot.folder_state("destek").values()),
            timeout=30,
            what="every message marked seen",
        )
    assert proxy.cuts == 3 and proxy.connections >= 4  # cut three times, reconnected each time
    rows = journal_rows(state)
    assert len(rows) == count
    assert len({row.origin for row in rows}) == count
    assert all(row.state == "pending" for row in rows)
    results = state.worker.drain()
    assert [r.state for r in results] == ["done"] * count
    tickets = list_tickets(state.db)
    assert sorted(t["subject"] for t in tickets) == sorted(f"Talep {n}" for n in range(count))
