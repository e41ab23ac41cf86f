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
from dataclasses import dataclass
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, syntax

from domain.config import SmtpInConfig

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


# The end of DATA (RFC 5321 4.1.1.4): a line holding only a dot. The stream is read up to each
# DOT_LINE_END, and it is the end when the two bytes before it end a line.
DOT_LINE_END = b".\r\n"
LINE_END = b"\r\n"


def _header_end(before: bytes, chunk: bytes) -> int | None:
    """Where the header ends in `chunk` (just after its last line's LF; -1 when that LF was the
    chunk's first byte's predecessor), given the two bytes kept `before` it; None when it goes
    on. An empty line ends it, CRLF or bare LF."""
    joined = before + chunk
    ends = [i + 1 for i in (joined.find(b"\n\n"), joined.find(b"\n\r\n")) if i >= 0]
    return min(ends) - len(before) if ends else None


def _unstuffed(raw: bytes, before: bytes) -> bytes:
    """`raw` with the dot that the client doubled at each line's start taken off (RFC 5321
    4.5.2), `before` being the two bytes read before it: a line may begin in the last chunk.

    A line begins after any LF, as Postfix reads it (`smtpd_forbid_bare_newline = normalize`):
    Python's smtplib, which web forms and scripts send with, doubles the dot after a bare LF
    too (it stuffs every line start of bytes it is given as they are), and "..." written
    with LF line ends came as "....". Only the end of data needs CR LF . CR LF (RFC 5321
    4.1.1.4; an end after a bare LF is how SMTP smuggling hides a second message)."""
    if before.endswith(b"\n") and raw.startswith(b"."):
        raw = raw[1:]
    return raw.replace(b"\n.", b"\n") if b"\n." in raw else raw


def _longest_line(chunk: bytes, carried: int) -> tuple[int, int]:
    """The longest line that `chunk` ends or holds, counting the `carried` bytes of a line begun
    before it (LF included), and the bytes of the line it leaves open."""
    first_lf = chunk.find(b"\n")
    if first_lf < 0:
        return carried + len(chunk), carried + len(chunk)
    longest = carried + first_lf + 1
    last_lf = chunk.rfind(b"\n")
    if last_lf > first_lf:
        longest = max(longest, 1 + max(map(len, chunk[first_lf + 1 : last_lf].split(b"\n"))))
    return max(longest, len(chunk) - last_lf - 1), len(chunk) - last_lf - 1


async def _next_chunk(reader: asyncio.StreamReader) -> bytes:
    """The stream up to its next dot-CRLF, or as much as the buffer limit allows. Never a part
    of a dot-CRLF (readuntil leaves it in the buffer), and nothing past it: what follows the
    final dot is the client's next command."""
    try:
        return await reader.readuntil(DOT_LINE_END)
    except asyncio.LimitOverrunError as error:
        return await reader.read(max(error.consumed, 1))


@dataclass
class _Reading:
    """What `_read_data` knows of the message so far."""

    limits: SmtpInConfig
    total: int = 0  # bytes kept or counted, dot transparency undone
    line_length: int = 0  # bytes of the line under way
    in_header: bool = True
    kept_tail: bytes = LINE_END  # the last two bytes counted (the header may end across chunks)
    refused: tuple[str, str] | None = None

    def count(self, chunk: bytes) -> tuple[str, str] | None:
        """Count `chunk` in; the limit it crosses, if any."""
        header_size = 0
        if self.in_header:
            header_end = _header_end(self.kept_tail, chunk)
            self.in_header = header_end is None
            # A CR after the chunk's last LF may begin the empty line: not the header's yet.
            open_cr = header_end is None and (self.kept_tail + chunk).endswith(b"\n\r")
            header_size = self.total + (len(chunk) - open_cr if header_end is None else header_end)
        self.total += len(chunk)
        self.kept_tail = (self.kept_tail + chunk[-2:])[-2:]
        longest, self.line_length = _longest_line(chunk, self.line_length)
        limits = self.limits
        if self.total > limits.max_message_size:
            return _refusal("size", limits.max_message_size)
        if header_size > limits.max_header_size:
            return _refusal("header", limits.max_header_size)
        if longest > limits.max_line_length:
            return _refusal("line", limits.max_line_length)
        return None


async def read_data(
    reader: asyncio.StreamReader,
    limits: SmtpInConfig,
    budget: BufferBudget | None = None,
) -> bytearray | Refused:
    """The message as the client meant it (dot transparency undone), or why it is refused.

    Reads to the final dot in either case, so the session can go on with the next transaction.
    The bytes returned stay counted in `budget`: the caller gives them back once stored. They
    are the very buffer they were read into: a copy into `bytes` would hold a 25 MB message
    twice (issue 19). The stream is read in chunks as large as its buffer limit, not line by
    line: a line at a time, the event loop spent more on a 137 KB attachment's 1,800 lines
    than on storing it (issue 19).
    """
    budget = budget if budget is not None else BufferBudget()
    kept = bytearray()
    try:
        return await _read_data(reader, limits, budget, kept)
    except BaseException:
        budget.give(len(kept))
        raise


# Chunks shorter than this are gathered and counted together: a message of short lines that end
# in a dot ("a.\r\n" again and again) is a chunk per line, and counting each on its own cost
# three times what reading it a line at a time had (issue 19).
GATHER = 16 * 1024


async def _read_data(
    reader: asyncio.StreamReader, limits: SmtpInConfig, budget: BufferBudget, kept: bytearray
) -> bytearray | Refused:
    reading = _Reading(limits)
    before = LINE_END  # the two bytes read before the chunk: the DATA command's line end
    gathered: list[bytes] = []  # raw chunks read and not yet counted, in order
    gathered_size, gathered_before = 0, before
    while True:
        raw = await _next_chunk(reader)
        ended = raw.endswith(DOT_LINE_END) and (before + raw[-5:])[-5:] == b"\r\n.\r\n"
        before = (before + raw[-2:])[-2:]
        gathered.append(raw[:-3] if ended else raw)
        gathered_size += len(raw)
        if not ended and gathered_size < GATHER:
            continue
        joined = gathered[0] if len(gathered) == 1 else b"".join(gathered)
        _take(reading, _unstuffed(joined, gathered_before), budget, kept)
        gathered, gathered_size, gathered_before = [], 0, before
        if ended:
            break
    if reading.refused is not None:
        return Refused(reading.refused[0], reading.refused[1], reading.total)
    return kept


def _take(reading: _Reading, chunk: bytes, budget: BufferBudget, kept: bytearray) -> None:
    """`chunk` counted against the limits and kept, or only counted once one is crossed."""
    if reading.refused is not None:
        reading.total += len(chunk)
        return
    limits = reading.limits
    reading.refused = reading.count(chunk)
    if reading.refused is None and not budget.take(len(chunk), limits.max_buffered_bytes):
        reading.refused = (STORAGE_FULL, "all sessions together hold max_buffered_bytes")
    if reading.refused is not None:
        budget.give(len(kept))
        kept.clear()  # keep nothing of a message that will be refused
    else:
        kept += chunk


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

    # The stream's buffer limit: what DATA reads at a time, and what a session may have waiting
    # unread (twice this, then the transport stops reading). aiosmtpd's 1,001 bytes (its line
    # limit) made DATA a read and a pause of the socket per line. A command line still gets
    # "500 Command line too long" over `command_size_limit` (512), read whole or drained.
    line_length_limit = 32 * 1024

    def __init__(
        self, handler: Any, limits: SmtpInConfig, budget: BufferBudget, **options: Any
    ) -> None:
        super().__init__(handler, **options)
        self.limits = limits
        self.budget = budget
        self._data_started = 0.0  # the loop's time DATA began; 0 outside DATA
        self._data_bytes = 0  # bytes received since
        self._last_arrival = 0.0  # the loop's time the last byte of DATA came

    def _create_envelope(self) -> Envelope:
        return ReceivedEnvelope()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._data_started:
            self._data_bytes += len(data)
            self._data_arrived()

    def _data_arrived(self) -> None:
        """`idle_timeout` is time without a byte, in DATA too (as Postfix's smtpd_timeout is per
        read): aiosmtpd resets its timer only per command, so a large message on a slow link
        was cut off after `idle_timeout` seconds of DATA in all. The time of the last byte is
        noted here, and the timer, when it runs out, waits again for what is left of
        `idle_timeout` since then (`_timeout_cb`): no timer per read, and no pause shorter than
        `idle_timeout` ends the session (a reset at most once a second cut off a client pausing
        2.4 s of 3 just after bytes that came 0.9 s after a reset).
        A client that sends a byte now and then, to keep the timer going, is held to
        `min_data_rate` instead. Counted as the bytes arrive, not as DATA is read: the reader
        waits for whole chunks, and a dripping client would never finish one."""
        now = self.loop.time()
        self._last_arrival = now
        lasted = now - self._data_started
        total = self._data_bytes
        if lasted >= self.limits.idle_timeout and total < self.limits.min_data_rate * lasted:
            log.warning(
                "disconnected %s: too slow in DATA: %d bytes in %.0f s", self._peer(), total, lasted
            )
            self._data_started = 0.0
            # Written and closed here: DATA's reader is waiting for bytes that do not come.
            # The connection's end cancels it (aiosmtpd's connection_lost).
            self.close_with("421 4.4.2 Too slow: below the minimum data rate, closing")
            return

    def close_with(self, reply: str) -> None:
        """End the session now with `reply`, whatever it is waiting for."""
        transport = self.transport
        if isinstance(transport, asyncio.WriteTransport) and not transport.is_closing():
            transport.write(reply.encode("ascii") + b"\r\n")
            transport.close()

    def _timeout_cb(self) -> None:
        if self._data_started:
            quiet = self.loop.time() - self._last_arrival
            if quiet < self._timeout_duration:
                self._reset_timeout(self._timeout_duration - quiet)
                return
        super()._timeout_cb()  # type: ignore[no-untyped-call]

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
        self._data_started, self._data_bytes = self.loop.time(), 0
        self._last_arrival = self._data_started
        try:
            received = await read_data(self._reader, self.limits, self.budget)
        finally:
            self._data_started = 0.0
        self._reset_timeout()  # storing it is not the client's silence
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
