"""The SMTP listener: accepts mail for the desk's addresses and only journals it.

`handle_DATA` does one thing: make the bytes durable (in a thread, so fsync never blocks the
event loop) and answer 250 once they are. Parsing and tickets happen later, in the worker.
Reply codes say what is wrong: 550 for an address that is not ours (no open relay), 552 for a
message over the size limit (aiosmtpd enforces `data_size_limit`), 451 when storage failed.

While the daemon drains (`closing`), a new connection is greeted with 421 and a new MAIL gets
421, but a transaction already under way may finish: its client has sent MAIL and is owed an
answer to DATA, and a 250 is only ever sent once the message is durable.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from email.utils import format_datetime
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from ingest.journal import Arrival, Journal, StorageFailure
from ticketd.clock import Clock

log = logging.getLogger("ticketd.smtp")


def is_desk_address(address: str, desk_addresses: tuple[str, ...]) -> bool:
    """The desk's addresses and their plus-addressed forms (destek+REF.SIG@...)."""
    local, _, domain = address.lower().rpartition("@")
    base = local.partition("+")[0]
    return f"{base}@{domain}" in desk_addresses


class IntakeHandler:
    def __init__(
        self,
        journal: Journal,
        desk_addresses: tuple[str, ...],
        clock: Clock,
        hostname: str,
        on_accepted: Callable[[], None] = lambda: None,
    ) -> None:
        self.journal = journal
        self.desk_addresses = desk_addresses
        self.clock = clock
        self.hostname = hostname
        self.on_accepted = on_accepted
        self.closing = False
        self.in_flight = 0
        self.sessions: set[SMTP] = set()

    def busy_sessions(self) -> int:
        """Open sessions with a transaction under way (MAIL accepted, DATA not answered)."""
        return sum(1 for s in self.sessions if s.envelope and s.envelope.mail_from is not None)

    def close_sessions(self) -> None:
        """End every open session with 421: the drain is over."""
        for smtp in list(self.sessions):
            transport = smtp.transport
            if isinstance(transport, asyncio.WriteTransport) and not transport.is_closing():
                transport.write(b"421 4.3.2 Service shutting down, try again later\r\n")
                transport.close()

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.closing:
            return "421 4.3.2 Service shutting down, try again later"
        # The null sender of bounces and notifications arrives as "<>"; keep it as "".
        envelope.mail_from = "" if address.strip() in ("", "<>") else address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if not is_desk_address(address, self.desk_addresses):
            return f"550 5.7.1 <{address}>: relay access denied, not a mailbox of this desk"
        if len(envelope.rcpt_tos) >= 100:
            return "452 4.5.3 Too many recipients"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    def _trace_headers(self, session: Session, envelope: Envelope) -> bytes:
        peer: Any = session.peer
        peer_ip = peer[0] if isinstance(peer, tuple) else str(peer)
        helo = (session.host_name or "unknown").replace("\r", "").replace("\n", "")
        mail_from = (envelope.mail_from or "").replace("\r", "").replace("\n", "")
        when = format_datetime(self.clock.now())
        return (
            f"Return-Path: <{mail_from}>\r\n"
            f"Received: from {helo} ([{peer_ip}])\r\n\tby {self.hostname} (ticketd) with SMTP;"
            f" {when}\r\n"
        ).encode("utf-8", "replace")

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        # No 421 here when closing: this transaction began before the drain; let it finish.
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        peer: Any = session.peer
        arrival = Arrival(
            raw=self._trace_headers(session, envelope) + raw,
            source=f"smtp:{peer[0] if isinstance(peer, tuple) else peer}",
            envelope_from=envelope.mail_from,
            envelope_to=tuple(envelope.rcpt_tos),
        )
        self.in_flight += 1
        try:
            journal_id = await asyncio.to_thread(self.journal.accept, arrival)
        except StorageFailure as error:
            log.error("could not store a message from %s: %s", arrival.source, error)
            return "451 4.3.0 Requested action aborted: local storage failure, try again later"
        finally:
            self.in_flight -= 1
        self.on_accepted()
        return f"250 2.0.0 Ok: queued as {journal_id}"


class _TrackedSMTP(SMTP):
    """An SMTP session the handler knows about, so a drain can wait for it and end it."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.event_handler.sessions.add(self)

    def connection_lost(self, error: Exception | None) -> None:
        self.event_handler.sessions.discard(self)
        super().connection_lost(error)


class Refusal(asyncio.Protocol):
    """What a connection meets while the daemon drains: a 421 greeting (RFC 5321 3.1), then
    the end of the connection; the client's MTA tries again later or elsewhere."""

    def __init__(self, hostname: str) -> None:
        self.hostname = hostname

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        greeting = f"421 4.3.2 {self.hostname} Service shutting down, try again later\r\n"
        transport.write(greeting.encode("ascii", "replace"))
        transport.close()


def make_smtp(handler: IntakeHandler, max_size: int, hostname: str) -> asyncio.Protocol:
    if handler.closing:
        return Refusal(hostname)
    return _TrackedSMTP(
        handler,
        data_size_limit=max_size,
        hostname=hostname,
        ident="ticketd ESMTP",
        decode_data=False,
        timeout=300,
    )
