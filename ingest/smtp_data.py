"""DATA read with every size limit enforced as the bytes arrive, in bounded memory.

aiosmtpd's own DATA reader refuses any line over 1,000 octets ("500 Line too long"), so an honest
HTML mail with a 2,000-byte line bounced, and while it drains an over-long line it keeps the
line's fragments: a 200 MB line would sit in memory. RFC 5321 4.5.3.1 asks receivers to impose no
such limits "to the maximum extent possible", and Postfix, Exim and Gmail accept long lines.

This reader keeps at most `max_message_size` bytes in one buffer. Once a limit is crossed it keeps
nothing more: it only counts and drains to the final dot, and then answers (RFC 5321 4.2.5: the
reply comes after the data). Limits, from `[smtp_in]`:
- `max_message_size`: 552 5.3.4, the limit the SIZE extension announces (RFC 1870);
- `max_header_size`: 552 5.3.4 too, like Exim's `header_maxsize` and sendmail's
  `MaxHeadersLength` (Postfix cuts the excess off instead);
- `max_line_length`: 500 5.5.2, the reply RFC 5321 4.5.3.1.6 names. Lines are counted to the
  next LF, so a message written with bare LFs is not one long line.
- `max_buffered_bytes`: what all sessions together may hold before their final dot (issue 22:
  100 sessions of 24 MB each took the daemon to 3.4 GB). DATA is answered 452 4.3.1 when the
  budget is spent; a message whose bytes would overrun it is drained, kept nothing of, and
  answered 452 4.3.1 after the dot. The sender's MTA tries again later, when others are stored.
- `min_data_rate`: bytes a second, on average since DATA began, once DATA has lasted
  `idle_timeout` seconds; a client slower than that (one line every few seconds keeps the idle
  timer going for ever) gets 421 4.4.2 and is disconnected.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, syntax

from domain.config import SmtpInConfig
from domain.errors import Permanent

log = logging.getLogger("ticketd.smtp")


class BufferBudget:
    """The bytes all sessions' DATA hold in memory at once, against `max_buffered_bytes`.
    One per listener; only the event loop's thread touches it."""

    def __init__(self) -> None:
        self.held = 0

    def take(self, size: int, limit: int) -> bool:
        if self.held + size > limit:
            return False
        self.held += size
        return True

    def give(self, size: int) -> None:
        self.held = max(0, self.held - size)


STORAGE_FULL = (
    "452 4.3.1 Insufficient system storage: too many messages arriving at once, try again later"
)


class TooSlow(Permanent):
    """The client sends DATA slower than `min_data_rate`."""


@dataclass(frozen=True)
class Refused:
    reply: str  # the SMTP reply, sent once the client has sent the final dot
    reason: str  # for the log
    size: int  # bytes the client sent


def _refusal(kind: str, limit: int) -> tuple[str, str]:
    if kind == "size":
        return f"552 5.3.4 Message too big: the limit is {limit} bytes", "message too big"
    if kind == "header":
        return (
            f"552 5.3.4 Message header too large: the limit is {limit} bytes",
            "header too large",
        )
    return f"500 5.5.2 Line too long: the limit is {limit} bytes", "line too long"


def _header_end(chunk: bytes, at_line_start: bool) -> int:
    """Where the empty line that ends the header is in `chunk` (CRLF or bare LF), or -1."""
    if at_line_start and chunk.startswith((b"\r\n", b"\n")):
        return 0
    ends = [i + 1 for i in (chunk.find(b"\n\n"), chunk.find(b"\n\r\n")) if i >= 0]
    return min(ends) if ends else -1


async def read_data(
    reader: asyncio.StreamReader,
    limits: SmtpInConfig,
    on_progress: Callable[[int], None] = lambda total: None,
    budget: BufferBudget | None = None,
) -> bytearray | Refused:
    """The message as the client meant it (dot transparency undone), or why it is refused.

    Reads to the final dot in either case, so the session can go on with the next transaction.
    `on_progress` is told the bytes read so far and may raise (TooSlow) to end the reading.
    The bytes returned stay counted in `budget`: the caller gives them back once stored. They
    are the very buffer they were read into: a copy into `bytes` would hold a 25 MB message
    twice (issue 19).
    """
    budget = budget if budget is not None else BufferBudget()
    kept = bytearray()
    try:
        return await _read_data(reader, limits, on_progress, budget, kept)
    except BaseException:
        budget.give(len(kept))
        raise


async def _read_data(
    reader: asyncio.StreamReader,
    limits: SmtpInConfig,
    on_progress: Callable[[int], None],
    budget: BufferBudget,
    kept: bytearray,
) -> bytearray | Refused:
    total = 0
    line_length = 0  # bytes since the last LF
    in_header = True
    at_line_start = True
    refused: tuple[str, str] | None = None
    while True:
        try:
            chunk = await reader.readuntil(b"\r\n")
        except asyncio.LimitOverrunError as error:
            # A line longer than the stream's buffer limit: take what is there, never more
            # than the buffer holds; the rest of the line comes in the next rounds.
            chunk = await reader.read(max(error.consumed, 1))
        on_progress(total + len(chunk))
        if at_line_start and chunk == b".\r\n":
            break
        if at_line_start and chunk.startswith(b"."):
            chunk = chunk[1:]  # RFC 5321 4.5.2: a leading dot was doubled by the client
        ends_line = chunk.endswith(b"\r\n")
        header_size = 0  # the header's bytes so far, while this chunk is part of it
        if in_header:
            header_end = _header_end(chunk, at_line_start)
            in_header = header_end < 0
            header_size = total + (len(chunk) if in_header else header_end)
        total += len(chunk)
        first_lf = chunk.find(b"\n")
        longest = line_length + (len(chunk) if first_lf < 0 else first_lf + 1)
        if refused is None:
            if total > limits.max_message_size:
                refused = _refusal("size", limits.max_message_size)
            elif header_size > limits.max_header_size:
                refused = _refusal("header", limits.max_header_size)
            elif longest > limits.max_line_length:
                refused = _refusal("line", limits.max_line_length)
            elif not budget.take(len(chunk), limits.max_buffered_bytes):
                refused = (STORAGE_FULL, "all sessions together hold max_buffered_bytes")
            if refused is not None:
                budget.give(len(kept))
                kept.clear()  # keep nothing of a message that will be refused
            else:
                kept += chunk
        if first_lf >= 0:
            line_length = len(chunk) - chunk.rfind(b"\n") - 1
        else:
            line_length += len(chunk)
        at_line_start = ends_line
    if refused is not None:
        return Refused(refused[0], refused[1], total)
    return kept


class ReceivedEnvelope(Envelope):
    """aiosmtpd's envelope with the message as `read_data` kept it, in `message` (aiosmtpd's
    `content` and `original_content` are bytes or str, and stay None): the handler may add to
    it in place, and the journal stores it as it is, without a copy."""

    def __init__(self) -> None:
        super().__init__()
        self.message: bytearray | None = None


class BoundedDataSMTP(SMTP):
    """aiosmtpd's SMTP with `read_data` for DATA; the rest of DATA is aiosmtpd's, unchanged.
    `budget` is shared by every session of the listener (`max_buffered_bytes`)."""

    def __init__(
        self, handler: Any, limits: SmtpInConfig, budget: BufferBudget, **options: Any
    ) -> None:
        super().__init__(handler, **options)
        self.limits = limits
        self.budget = budget
        self._timer_reset_at = 0.0
        self._data_started = 0.0

    def _create_envelope(self) -> Envelope:
        return ReceivedEnvelope()

    def _data_arrived(self, total: int) -> None:
        """`idle_timeout` is time without a byte, in DATA too (as Postfix's smtpd_timeout is per
        read): aiosmtpd resets its timer only per command, so a large message on a slow link
        was cut off after `idle_timeout` seconds of DATA in all. Reset at most once a second:
        a timer per line would cost more than the lines. A client that sends a line now and
        then, to keep the timer going, is held to `min_data_rate` instead."""
        now = self.loop.time()
        lasted = now - self._data_started
        if lasted >= self.limits.idle_timeout and total < self.limits.min_data_rate * lasted:
            raise TooSlow(f"{total} bytes in {lasted:.0f} s of DATA")
        if now - self._timer_reset_at >= 1.0:
            self._timer_reset_at = now
            self._reset_timeout()

    def _peer(self) -> str:
        peer: Any = self.session.peer if self.session is not None else None
        return str(peer[0] if isinstance(peer, tuple) else peer)

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        envelope = self.envelope
        assert envelope is not None and self.session is not None
        if not envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        if self.budget.held >= self.limits.max_buffered_bytes:
            log.warning("DATA from %s refused: max_buffered_bytes held", self._peer())
            await self.push(STORAGE_FULL)
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        self._data_started = self.loop.time()
        try:
            received = await read_data(self._reader, self.limits, self._data_arrived, self.budget)
        except TooSlow as slow:
            log.warning("disconnected %s: too slow in DATA: %s", self._peer(), slow)
            await self.push("421 4.4.2 Too slow: below the minimum data rate, closing")
            assert self.transport is not None
            self.transport.close()
            return
        if isinstance(received, Refused):
            log.warning(
                "refused a message from %s: %s (%d bytes sent): %s",
                self._peer(),
                received.reason,
                received.size,
                received.reply,
            )
            self._set_post_data_state()  # type: ignore[no-untyped-call]
            await self.push(received.reply)
            return
        assert isinstance(envelope, ReceivedEnvelope)
        envelope.message, counted = received, len(received)  # the handler may add trace headers
        try:
            status = await self._call_handler_hook("DATA")
        finally:
            self.budget.give(counted)  # stored (or not): no longer held here
        self._set_post_data_state()  # type: ignore[no-untyped-call]
        await self.push("250 OK" if status is None or not isinstance(status, str) else status)
