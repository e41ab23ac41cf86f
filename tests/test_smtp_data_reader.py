"""The DATA reader (ingest/smtp_data.py) reads in chunks as large as the stream's buffer; what it
returns and refuses must be what a reader of one line at a time finds, however the bytes
arrive: split anywhere (inside a CRLF, inside the final dot), with the next command right behind
the final dot, which must stay unread for the session."""

from __future__ import annotations

import asyncio
import itertools
import smtplib
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from domain.config import SmtpInConfig
from domain.config_kinds import HostPort
from ingest import smtp_data
from ingest.smtp_data import Refused, read_data

if TYPE_CHECKING:  # smtplib's annotation (typeshed); not needed at run time
    from typing_extensions import Buffer

NEXT_COMMAND = b"MAIL FROM:<sonraki@example.net>\r\n"


def _limits(max_message_size: int, **limits: int) -> SmtpInConfig:
    return SmtpInConfig(HostPort("127.0.0.1", 2525), max_message_size, **limits)  # type: ignore[arg-type]


def _line_by_line(stream: bytes) -> tuple[bytes, bytes]:
    """RFC 5321 4.5.2 the plain way: the message up to the line that is only a dot, each line's
    leading dot taken off; and what follows that line. Lines end at LF, as Postfix reads them
    (a dot doubled after a bare LF is taken off too); only a dot line after CR LF ends it."""
    message = bytearray()
    start = 0
    while True:
        end = stream.index(b"\n", start) + 1
        line = stream[start:end]
        after_crlf = start == 0 or stream[start - 2 : start] == b"\r\n"
        if line == b".\r\n" and after_crlf:
            return bytes(message), stream[end:]
        message += line[1:] if line.startswith(b".") else line
        start = end


def _longest_line(message: bytes) -> int:
    lines = message.split(b"\n")
    with_lf = [len(line) + 1 for line in lines[:-1]]
    return max([*with_lf, len(lines[-1])])


def _header_size(message: bytes) -> int:
    joined = b"\r\n" + message
    ends = [i + 1 for i in (joined.find(b"\n\n"), joined.find(b"\n\r\n")) if i >= 0]
    return min(ends) - 2 if ends else len(message)


def _read(
    stream: bytes,
    pieces: list[int],
    buffer_limit: int,
    config: SmtpInConfig,
    gather: int = smtp_data.GATHER,
) -> tuple[bytearray | Refused, bytes]:
    """`read_data` over `stream` fed in `pieces`; `gather` small: the chunks' counting is
    cut up too (it is the same for every edge between chunks that is not a batch's)."""

    async def run() -> tuple[bytearray | Refused, bytes]:
        reader = asyncio.StreamReader(limit=buffer_limit)

        async def feed() -> None:
            at = 0
            for size in [*pieces, len(stream)]:
                reader.feed_data(stream[at : at + size])
                at += size
                await asyncio.sleep(0)  # the reader sees each piece on its own
                if at >= len(stream):
                    break
            reader.feed_eof()

        feeding = asyncio.create_task(feed())
        received = await read_data(reader, config)
        await feeding
        return received, await reader.read()

    kept, smtp_data.GATHER = smtp_data.GATHER, gather
    try:
        return asyncio.run(run())
    finally:
        smtp_data.GATHER = kept


ATOMS = [b"a", b"xyz", b".", b"..", b"\r", b"\n", b"\r\n", b"\r\n.", b"\n\n", b".\r\n", b" "]


@settings(max_examples=400, deadline=None)
# Found by CI: the header "aaa\r\n" ends at the empty line's LF, in the next chunk; the CR
# before it, alone at the chunk's end, was counted as header and crossed a limit of 5.
@example([b"a", b"a", b"a", b"\r\n"], [8], 5, (0, 0, 0), 1)
@example([b"a", b"a", b"a", b"\r\n"], [8], 5, (0, 0, -1), 1)
@given(
    atoms=st.lists(st.sampled_from(ATOMS), max_size=60),
    pieces=st.lists(st.integers(1, 12), max_size=30),
    buffer_limit=st.integers(5, 40),
    slack=st.tuples(st.integers(-2, 2), st.integers(-2, 2), st.integers(-2, 2)),
    gather=st.sampled_from([1, 3, 8, 16 * 1024]),
)
def test_chunked_reading_finds_what_a_line_reader_finds(
    atoms: list[bytes],
    pieces: list[int],
    buffer_limit: int,
    slack: tuple[int, int, int],
    gather: int,
) -> None:
    stream = b"".join(atoms) + b"\r\n.\r\n" + NEXT_COMMAND
    message, rest = _line_by_line(stream)
    line, header, size = _longest_line(message), _header_size(message), len(message)
    config = _limits(
        max_message_size=max(1, size + slack[2]),
        max_header_size=max(1, header + slack[1]),
        max_line_length=max(1, line + slack[0]),
    )
    received, unread = _read(stream, pieces, buffer_limit, config, gather)
    assert unread == rest  # nothing read past the final dot: the next command is the session's
    crossed = {
        reply
        for reply, over in (
            ("552 5.3.4 Message too big", size > config.max_message_size),
            ("552 5.3.4 Message header too large", header > config.max_header_size),
            ("500 5.5.2 Line too long", line > config.max_line_length),
        )
        if over
    }
    if not crossed:
        assert received == bytearray(message)
    else:  # the first limit crossed as the bytes arrive: with several, it depends on the pieces
        assert isinstance(received, Refused) and received.reply.split(":")[0] in crossed
        assert received.size == size


def test_a_message_that_is_only_the_final_dot_is_empty() -> None:
    config = _limits(max_message_size=1024 * 1024)
    assert _read(b".\r\n" + NEXT_COMMAND, [1, 1], 1001, config) == (bytearray(), NEXT_COMMAND)
    assert _read(b"..\r\n.\r\n", [2], 1001, config) == (bytearray(b".\r\n"), b"")


def test_a_base64_attachment_is_read_in_few_chunks() -> None:
    # The reason for reading in chunks: 2,000 lines must not be 2,000 reads.
    body = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODkwYWJjZGVmZ2hpamtsbW5vcHFyc3R1\r\n" * 2000
    stream = b"Subject: ek\r\n\r\n" + body + b".\r\n"
    reads = 0

    class Counting(asyncio.StreamReader):
        async def readuntil(self, separator: Any = b"\n") -> bytes:
            nonlocal reads
            reads += 1
            return await super().readuntil(separator)

    async def run() -> bytearray | Refused:
        reader = Counting(limit=32 * 1024)
        reader.feed_data(stream)
        reader.feed_eof()
        return await read_data(reader, _limits(max_message_size=1024 * 1024))

    assert asyncio.run(run()) == bytearray(stream[:-3])
    assert reads < 20, reads


def test_every_split_of_a_stream_of_dotted_lines_reads_the_same() -> None:
    # Each split point and buffer limit puts a chunk's edge somewhere else: inside a CRLF that
    # begins a dotted line, between a CRLF and its dot, inside the final dot.
    stream = b"Subject: a\r\n\r\nabcde\r\n.x\r\n..\r\nd.\r\n\r\n.e\r\nf\r\n.\r\n" + NEXT_COMMAND
    message, rest = _line_by_line(stream)
    config = _limits(max_message_size=1024)
    for limit, gather in itertools.product(range(5, 14), (1, 4, 16 * 1024)):
        for cut in range(1, len(stream)):
            for second in (1, 3, len(stream)):
                result = _read(stream, [cut, second], limit, config, gather)
                assert result == (bytearray(message), rest), (limit, gather, cut, second)


class _Capturing(smtplib.SMTP):
    """smtplib's own DATA, the bytes it would send kept instead (no server)."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = b""
        self.replies = [(354, b"go ahead"), (250, b"ok")]

    def send(self, s: Buffer | str) -> None:
        self.sent += s.encode() if isinstance(s, str) else bytes(s)

    def getreply(self) -> tuple[int, bytes]:
        return self.replies.pop(0)


def test_a_script_sending_lf_bytes_with_smtplib_keeps_its_dots() -> None:
    # A web form's or a script's `sendmail(..., message.as_bytes())`: LF line ends, which
    # smtplib sends as they are, every line start's dot doubled, bare LF or not.
    message = b"Subject: Nokta\n\nFiyat .50 TL\n.50 TL\n...\n..\n.\nson\n"
    client = _Capturing()
    client.data(message)
    config = _limits(max_message_size=1024 * 1024)
    command, _, stream = client.sent.partition(b"\r\n")
    assert command == b"data" and b"\n..50" in stream  # what the script sent
    # smtplib ends the last line with CR LF before the final dot
    assert _read(stream, [7] * 20, 16, config) == (bytearray(message + b"\r\n"), b"")


@pytest.mark.parametrize(
    "smuggled", [b"\n.\r\n", b"\r\n.\n", b"\n.\n", b"\r.\r\n", b"\r\n.\r"], ids=repr
)
def test_only_crlf_dot_crlf_ends_the_data(smuggled: bytes) -> None:
    # SMTP smuggling: an end of data another server takes and we do not (or the other way
    # round) lets a second message ride inside the first. Whatever follows such an end is
    # still the first message's text; the session's next command comes after CR LF . CR LF.
    hidden = b"MAIL FROM:<ceo@example.com>\r\nRCPT TO:<destek@example.com>\r\nDATA\r\nsahte"
    stream = b"Subject: a\r\n\r\nmetin" + smuggled + hidden + b"\r\n.\r\n" + NEXT_COMMAND
    received, unread = _read(stream, [5] * 40, 32, _limits(max_message_size=1024 * 1024))
    assert unread == NEXT_COMMAND
    assert isinstance(received, bytearray) and received.endswith(hidden + b"\r\n")
