"""A large message's long base64 runs are decoded beside the parser (ingest/base64_runs.py,
issue 19: the parser held a 24 MB mail's attachment seven times over). What is read must be
exactly what parsing the message whole reads, whatever the run lies in."""

from __future__ import annotations

import base64
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager

from hypothesis import given, settings
from hypothesis import strategies as st

from ingest import base64_runs
from ingest.content_hash import PIECE
from ingest.parsing import parse_message

HEAD = b"From: ayse@musteri.com.tr\r\nTo: destek@example.com\r\nSubject: Ekstre\r\n"


@contextmanager
def _thresholds(lift_from: int, run_min: int) -> Iterator[None]:
    kept = base64_runs.LIFT_FROM, base64_runs.RUN_MIN
    base64_runs.LIFT_FROM, base64_runs.RUN_MIN = lift_from, run_min
    try:
        yield
    finally:
        base64_runs.LIFT_FROM, base64_runs.RUN_MIN = kept


def _lines(data: bytes, width: int = 76) -> bytes:
    text = base64.b64encode(data)
    return b"".join(text[i : i + width] + b"\r\n" for i in range(0, len(text), width))


def _part(headers: bytes, body: bytes) -> bytes:
    return headers + b"\r\n" + body


def _multipart(*parts: bytes, kind: bytes = b"mixed", boundary: bytes = b"sinir") -> bytes:
    out = b"Content-Type: multipart/" + kind + b'; boundary="' + boundary + b'"\r\n\r\n'
    for part in parts:
        out += b"--" + boundary + b"\r\n" + part + b"\r\n"
    return out + b"--" + boundary + b"--\r\n"


BASE64 = b"Content-Type: application/pdf; name=ek.pdf\r\nContent-Transfer-Encoding: base64\r\n"
TEXT = b"Content-Type: text/plain; charset=utf-8\r\n"


def _bodies() -> st.SearchStrategy[bytes]:
    """A part's body that is, or looks like, or spoils, a base64 run."""
    data = st.binary(min_size=0, max_size=300)
    return st.one_of(
        data.map(_lines),  # clean
        data.map(lambda d: _lines(d, 64)),
        data.map(lambda d: _lines(d)[:-2] + b"\r\n"),  # its last line's CRLF, and nothing else
        data.map(lambda d: _lines(d).replace(b"\r\n", b"\n")),  # LF only
        data.map(lambda d: _lines(d).rstrip(b"=\r\n") + b"\r\n"),  # padding lost: not clean
        data.map(lambda d: _lines(d) + b"\r\n\r\n"),  # blank lines before the boundary
        data.map(lambda d: b"QUJD=\r\n" + _lines(d)),  # padding inside: not clean
        data.map(lambda d: _lines(d) + b"-- \r\nimza\r\n"),  # a text line after the run
        data.map(lambda d: b"Merhaba,\r\n" + _lines(d)),
        st.just(b"A" * 76 + b"\r\n"),
    )


def _headers() -> st.SearchStrategy[bytes]:
    return st.sampled_from(
        [
            BASE64,
            TEXT + b"Content-Transfer-Encoding: base64\r\n",
            TEXT,  # base64-looking text, shown as it is
            BASE64.replace(b"base64", b"BASE64"),
            BASE64.replace(b"base64\r\n", b"base64 \r\n"),  # not base64 to the parser
            b"Content-Type: message/rfc822\r\n",
            b"Content-Type: image/png\r\nContent-ID: <logo>\r\n"
            b"Content-Transfer-Encoding: base64\r\n",
        ]
    )


def _forwards() -> st.SearchStrategy[tuple[bytes, bytes]]:
    """A forwarded mail whose own body is a base64 run: its bytes are kept whole."""
    inner = b"Subject: ilk\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    return _bodies().map(lambda body: (b"Content-Type: message/rfc822\r\n", inner + body))


@settings(max_examples=300, deadline=None)
@given(
    parts=st.lists(st.tuples(_headers(), _bodies()) | _forwards(), min_size=0, max_size=4),
    nested=st.booleans(),
    top_body=_bodies(),
)
def test_what_is_read_is_what_parsing_it_whole_reads(
    parts: list[tuple[bytes, bytes]], nested: bool, top_body: bytes
) -> None:
    if parts:
        body = _multipart(*(_part(h, b) for h, b in parts))
        if nested:
            body = _multipart(_part(TEXT, b"Ekte.\r\n"), body, boundary=b"dis")
        raw = HEAD + b"MIME-Version: 1.0\r\n" + body
    else:
        raw = HEAD + b"Content-Transfer-Encoding: base64\r\n\r\n" + top_body
    with _thresholds(lift_from=10**12, run_min=0):
        whole = parse_message(raw)
    with _thresholds(lift_from=0, run_min=8):
        assert parse_message(raw) == whole


def _large_mail(attachment: bytes) -> bytes:
    text = _part(TEXT, b"Ekstrem ekte.\r\n")
    return HEAD + b"MIME-Version: 1.0\r\n" + _multipart(text, _part(BASE64, _lines(attachment)))


def test_a_large_attachment_is_decoded_beside_the_parser() -> None:
    attachment = bytes(range(256)) * (4 * 1024 * 1024 // 256)
    raw = _large_mail(attachment)
    assert len(raw) > base64_runs.LIFT_FROM
    lifted = base64_runs.lift(raw)
    assert len(lifted.text) < 1024 and list(lifted.decoded.values()) == [attachment]
    tracemalloc.start()
    try:
        parsed = parse_message(raw)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert parsed.attachments[0].payload == attachment
    # The decoded file once, and the hash's few pieces (parsed whole: about seven times the mail).
    assert peak < len(attachment) + 4 * PIECE


def test_a_run_the_shortcut_cannot_place_is_parsed_as_it_came() -> None:
    # The same run as a text part's body: not base64 to the parser, so it is the text.
    run = _lines(bytes(range(256)) * 1024)
    raw = HEAD + b"MIME-Version: 1.0\r\n" + _multipart(_part(TEXT, run))
    with _thresholds(lift_from=0, run_min=1024):
        assert base64_runs.lift(raw).decoded  # cut out, then put back
        parsed = parse_message(raw)
    assert parsed.full_text.strip() == run.decode().replace("\r\n", "\n").strip()
