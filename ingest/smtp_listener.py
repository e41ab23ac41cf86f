"""The SMTP listener: accepts mail for the desk's addresses and only journals it.

`handle_DATA` does one thing: make the bytes durable (in a thread, so fsync never blocks the
event loop) and answer 250 once they are. Parsing and tickets happen later, in the worker.
Reply codes say what is wrong: 550 for an address that is not ours (no open relay), 552 for a
message over the size limit or with a header over its limit, 500 for a line over its limit (all
enforced while DATA is read, in bounded memory: ingest/smtp_data.py), 451 when storage failed.

Abuse limits come from `[smtp_in]` and are read per connection, so a SIGHUP changes them: open
connections in total and per client address (the excess is greeted with 421 and closed, so one
client cannot take every slot), recipients per message (452), how often any one command may be
sent in a session (aiosmtpd's `command_call_limit`: 421 and closed) and an idle timeout.

STARTTLS is offered when `[smtp_in] tls_cert` and `tls_key` are set: the daemon passes the ssl
context (built by domain/tls_files.py, rebuilt on SIGHUP) to each new session. With
`require_tls`, MAIL before STARTTLS gets 530 5.7.0 (RFC 3207); EHLO, STARTTLS, NOOP and QUIT
still work, so a client can find out what to do. A session is counted once against the
connection limits although STARTTLS makes aiosmtpd call `connection_made` a second time.

Slow clients (issue 22): a session ends at `session_timeout` (421 4.4.2) whatever it does, DATA
slower than `min_data_rate` is cut (ingest/smtp_data.py), and when every connection slot is
taken, a new client does not wait for one: the oldest slow session (open at least SLOW_AFTER
seconds, on average fewer than `min_data_rate` bytes a second since it connected) is dropped
with 421 4.7.0 to make room. What all sessions hold before their final dot is bounded by
`max_buffered_bytes` (452 4.3.1 beyond it).

While the daemon drains (`closing`), a new connection is greeted with 421 and a new MAIL gets
421, but a transaction already under way may finish: its client has sent MAIL and is owed an
answer to DATA, and a 250 is only ever sent once the message is durable.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import Counter
from collections.abc import Callable
from email.utils import format_datetime
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from domain.clock import Clock
from domain.config import SmtpInConfig, owns_address
from ingest.journal import Arrival, Journal, StorageFailure
from ingest.smtp_data import BoundedDataSMTP, BufferBudget, ReceivedEnvelope

log = logging.getLogger("ticketd.smtp")
# A session younger than this is never dropped for a newcomer: every session starts slow.
SLOW_AFTER = 5.0

# The null reverse-path (`MAIL FROM:<>`, RFC 5321 4.5.5) of bounces, delay notices and read
# receipts. aiosmtpd reads an empty `envelope.mail_from` as "no MAIL yet" and refuses RCPT with
# 503, so the envelope holds this marker instead; `reverse_path` turns it back into "".
NULL_SENDER = "<>"


def reverse_path(envelope: Envelope) -> str:
    """The envelope sender as the client gave it: "" for the null sender."""
    mail_from = envelope.mail_from or ""
    return "" if mail_from == NULL_SENDER else mail_from


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
        self.last_stored = 0.0  # time.monotonic() when the last message was stored (or failed)
        self.sessions: set[_TrackedSMTP] = set()
        self.per_client: Counter[str] = Counter()
        self.budget = BufferBudget()  # what all sessions' DATA hold ([smtp_in] max_buffered_bytes)

    def admit(self, client: str, limits: SmtpInConfig, now: float) -> str | None:
        """Take a connection slot for `client`, or say why there is none (a 421 reply)."""
        if self.per_client[client] >= limits.max_connections_per_client:
            return "421 4.7.0 Too many connections from your address, try again later"
        if len(self.sessions) >= limits.max_connections:
            slow = self._oldest_slow(limits, now)
            if slow is None:
                return "421 4.7.0 Too many connections, try again later"
            log.warning("dropped the slow session of %s to let %s in", slow.client, client)
            slow.drop("421 4.7.0 Too many connections and yours is slow, try again later")
        self.per_client[client] += 1
        return None

    def _oldest_slow(self, limits: SmtpInConfig, now: float) -> _TrackedSMTP | None:
        slow = [
            session
            for session in self.sessions
            if now - session.connected_at >= SLOW_AFTER
            and session.received < limits.min_data_rate * (now - session.connected_at)
        ]
        return min(slow, key=lambda session: session.connected_at, default=None)

    def release(self, client: str) -> None:
        self.per_client[client] -= 1
        if self.per_client[client] <= 0:
            del self.per_client[client]

    def storing(self, quiet: float) -> bool:
        """A message is being stored now, or one was less than `quiet` seconds ago: the
        listener is taking mail (the worker gives way: ticketd/give_way.py)."""
        return self.in_flight > 0 or time.monotonic() - self.last_stored < quiet

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
        if isinstance(server, _TrackedSMTP) and server.limits.require_tls and not session.ssl:
            return "530 5.7.0 Must issue a STARTTLS command first"
        null = address.strip() in ("", NULL_SENDER)
        envelope.mail_from = NULL_SENDER if null else address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if not owns_address(self.desk_addresses, address):
            return f"550 5.7.1 <{address}>: relay access denied, not a mailbox of this desk"
        limit = server.limits.max_recipients if isinstance(server, _TrackedSMTP) else 100
        if len(envelope.rcpt_tos) >= limit:
            return "452 4.5.3 Too many recipients"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    def _trace_headers(self, session: Session, envelope: Envelope) -> bytes:
        peer: Any = session.peer
        peer_ip = peer[0] if isinstance(peer, tuple) else str(peer)
        helo = (session.host_name or "unknown").replace("\r", "").replace("\n", "")
        mail_from = reverse_path(envelope).replace("\r", "").replace("\n", "")
        when = format_datetime(self.clock.now())
        protocol = "ESMTPS" if session.ssl else "SMTP"  # RFC 3848: ESMTPS says TLS was used
        return (
            f"Return-Path: <{mail_from}>\r\n"
            f"Received: from {helo} ([{peer_ip}])\r\n"
            f"\tby {self.hostname} (ticketd) with {protocol}; {when}\r\n"
        ).encode("utf-8", "replace")

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        # No 421 here when closing: this transaction began before the drain; let it finish.
        assert isinstance(envelope, ReceivedEnvelope) and envelope.message is not None
        raw = envelope.message
        raw[:0] = self._trace_headers(session, envelope)  # in place: no second copy of it
        peer: Any = session.peer
        arrival = Arrival(
            raw=raw,
            source=f"smtp:{peer[0] if isinstance(peer, tuple) else peer}",
            envelope_from=reverse_path(envelope),
            envelope_to=tuple(envelope.rcpt_tos),
        )
        self.in_flight += 1
        try:
            journal_id = await asyncio.to_thread(self.journal.accept_together, arrival)
        except StorageFailure as error:
            log.error("could not store a message from %s: %s", arrival.source, error)
            return "451 4.3.0 Requested action aborted: local storage failure, try again later"
        finally:
            self.in_flight -= 1
            self.last_stored = time.monotonic()
        self.on_accepted()
        return f"250 2.0.0 Ok: queued as {journal_id}"


def _client_of(transport: asyncio.BaseTransport) -> str:
    peer: Any = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else str(peer)


class _TrackedSMTP(BoundedDataSMTP):
    """An SMTP session the handler knows about, so a drain can wait for it and end it, and
    so the connection limits can count it."""

    def __init__(self, handler: IntakeHandler, limits: SmtpInConfig, **options: Any) -> None:
        super().__init__(handler, limits, handler.budget, **options)
        self.client: str | None = None  # set once admitted; a refused connection holds no slot
        self.admitted = False
        self.connected_at = 0.0
        self.received = 0  # bytes the client sent, commands and DATA
        self._deadline: asyncio.TimerHandle | None = None

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        super().data_received(data)

    def drop(self, reply: str) -> None:
        """End the session now with `reply`, its slot free at once for a newcomer."""
        self._release_slot()
        self.close_with(reply)

    def _release_slot(self) -> None:
        handler: IntakeHandler = self.event_handler
        handler.sessions.discard(self)
        if self.client is not None:
            handler.release(self.client)
            self.client = None

    def _session_over(self) -> None:
        log.warning("disconnected %s: the session lasted session_timeout", self.client)
        self.drop("421 4.4.2 Session time limit reached, closing")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._original_transport is not None:
            # STARTTLS calls this again for the same, already counted, connection.
            super().connection_made(transport)
            return
        handler: IntakeHandler = self.event_handler
        client = _client_of(transport)
        now = self.loop.time()
        refusal = handler.admit(client, self.limits, now)
        if refusal is not None:
            # Refused before aiosmtpd sets anything up: no session, no timer, no task; closing
            # stops reading at once, so nothing the client sends is ever parsed.
            log.warning("refused a connection from %s: %s", client, refusal)
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(refusal.encode("ascii") + b"\r\n")
            transport.close()
            return
        self.client, self.admitted, self.connected_at = client, True, now
        super().connection_made(transport)
        handler.sessions.add(self)
        self._deadline = self.loop.call_later(self.limits.session_timeout, self._session_over)

    def connection_lost(self, error: Exception | None) -> None:
        if not self.admitted:
            return  # refused in connection_made: aiosmtpd never saw this connection
        self.admitted = False
        if self._deadline is not None:
            self._deadline.cancel()
        self._release_slot()
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


def make_smtp(
    handler: IntakeHandler,
    limits: SmtpInConfig,
    hostname: str,
    tls_context: ssl.SSLContext | None = None,
) -> asyncio.Protocol:
    if handler.closing:
        return Refusal(hostname)
    return _TrackedSMTP(
        handler,
        limits,
        data_size_limit=limits.max_message_size,
        hostname=hostname,
        ident="ticketd ESMTP",
        decode_data=False,
        timeout=limits.idle_timeout,
        command_call_limit=limits.max_commands,
        tls_context=tls_context,  # None: no STARTTLS offered
    )
