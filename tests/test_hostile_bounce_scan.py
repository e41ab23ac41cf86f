"""Hostile delivery reports: the bounce detectors' cost must grow with the size of a message as
bare parsing does, whatever its lines hold (ingest/report_scan.py).

A null-sender mail whose text starts with the phrases flufl.bounce's detectors look for, then
many lines of 998 characters that make their address patterns backtrack, took before the
bounded view (CPU per MB of message): spaces or tabs after every detector's start line 26 s,
"<" 9 s, quotes 8.5 s; "<" after Netscape's start line 1,000 s (cubic), in a Postfix
notification 3 s. Each shape is timed at 1 and 2 MB beside a benign message of the same size
parsed the same way (the baseline): ratios, not seconds, so a loaded machine only widens both.
The better of three runs of CPU time (process time, not the wall clock: a busy neighbour does
not count).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable

import pytest
from flufl.bounce._detectors import simplematch, simplewarning

from ingest.bounces import is_permanent
from ingest.classify import classify
from ingest.parsing import parse_message
from tests.helpers import DESK

MB = 1024 * 1024
LINE = 998  # SMTP's limit on a line, without its CRLF


def _fill(unit: str) -> bytes:
    return (unit * (LINE // len(unit) + 1))[:LINE].encode()


def _start_line(pattern: str) -> str:
    """A line each of simplematch's and simplewarning's start patterns finds."""
    for old, new in (("\\s*", " "), ("(i|e)", "i"), ("(failed|was aborte", "failed")):
        pattern = pattern.replace(old, new)
    return pattern.strip("^$").replace("\\", "")


_STARTS = "\r\n".join(
    _start_line(str(start.pattern)) for start, _, _ in simplematch.PATTERNS + simplewarning.PATTERNS
).encode()

_HEAD = (
    b"Return-Path: <>\r\nFrom: Mail Delivery Subsystem <MAILER-DAEMON@mx.example.net>\r\n"
    b"To: " + DESK.encode() + b"\r\nSubject: Undelivered Mail Returned to Sender\r\n"
    b"Message-ID: <report@mx.example.net>\r\nMIME-Version: 1.0\r\n"
)


def plain_report(body: bytes) -> bytes:
    """A report in prose (no MIME): every simple detector's start line, then the body."""
    return _HEAD + b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + _STARTS + b"\r\n" + body


def netscape_report(body: bytes) -> bytes:
    return (
        _HEAD
        + b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n'
        + b"\r\nThis Message was undeliverable due to the following reason:\r\n"
        + body
        + b"\r\n--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--\r\n"
    )


def postfix_report(body: bytes) -> bytes:
    return (
        _HEAD
        + b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        + b"--b\r\nContent-Description: Notification\r\nContent-Type: text/plain\r\n\r\n"
        + b"The Postfix program\r\n"
        + body
        + b"\r\n--b--\r\n"
    )


def base64_report(body: bytes) -> bytes:
    """Lines the transfer encoding hides: decoded, one line of the whole body."""
    decoded = b"This Message was undeliverable due to the following reason:\n" + body
    return (
        _HEAD
        + b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n'
        + b"Content-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(decoded.replace(b"\r\n", b" "))
        + b"\r\n--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--\r\n"
    )


REPORTS: dict[str, Callable[[bytes], bytes]] = {
    "plain": plain_report,
    "netscape": netscape_report,
    "postfix": postfix_report,
}
# (report, line): each was seconds to minutes a megabyte before.
SHAPES = [
    ("plain", " " * 997 + "x"),
    ("plain", "\t" * 997 + "x"),
    ("plain", "<"),
    ("plain", '"'),
    ("plain", "a"),
    ("plain", "1:"),
    ("plain", ">"),
    ("netscape", "<"),
    ("netscape", " <"),
    ("netscape", "<a@"),
    ("postfix", "<"),
    ("postfix", " " * 997 + "x"),
]


def _body(line: bytes, size: int) -> bytes:
    return b"\r\n".join([line] * (size // (len(line) + 2))) + b"\r\n"


def _seconds(raw: bytes) -> float:
    def once() -> float:
        began = time.process_time()
        message = parse_message(raw, envelope_from="<>")
        classify(message, (DESK,))
        is_permanent(message)
        return time.process_time() - began

    return min(once() for _ in range(3))


# 128 KB: below the old code's limit on what the detectors read (512 KB), so that the old
# cost shows; 1 and 2 MB: the growth.
SIZES = (128 * 1024, MB, 2 * MB)


def assert_linear(build: Callable[[int], bytes], baseline: Callable[[int], bytes]) -> None:
    """2 MB costs at most 2.5 times 1 MB, and no size more than a few times bare parsing of a
    benign message of its size, plus a start (the view of the report built and read once)."""
    bare = [_seconds(baseline(size)) for size in SIZES]
    hostile = [_seconds(build(size)) for size in SIZES]
    figures = ", ".join(
        f"{size // 1024} KB: {h * 1000:.0f} ms (bare {b * 1000:.0f})"
        for size, h, b in zip(SIZES, hostile, bare, strict=True)
    )
    slack = 0.1 + bare[0]
    assert hostile[2] <= 2.5 * hostile[1] + slack, figures
    for spent, base in zip(hostile, bare, strict=True):
        assert spent <= 6 * base + slack, figures


def _benign(size: int) -> bytes:
    return plain_report(b"")[: -len(_STARTS) - 2] + _body(_fill("lorem ipsum "), size)


@pytest.mark.parametrize(
    ("report", "line"),
    SHAPES,
    ids=[f"{report}-{line[:3].strip() or repr(line[:1])}" for report, line in SHAPES],
)
def test_a_hostile_report_costs_what_parsing_costs(report: str, line: str) -> None:
    assert_linear(lambda size: REPORTS[report](_body(_fill(line), size)), _benign)


def test_lines_hidden_by_base64_are_bounded_too() -> None:
    assert_linear(lambda size: base64_report(_body(_fill("<"), size * 3 // 4)), _benign)


def test_a_real_report_is_still_read_past_its_hostile_padding() -> None:
    # The view cuts lines and whitespace runs, never the report at the start of a long line.
    report = plain_report(
        b"<kijitora@example.net>" + b" " * 40 + b"\r\n" + _body(_fill("<"), 256 * 1024)
    )
    found = parse_message(report, envelope_from="<>")
    assert found.failed_recipients == ("kijitora@example.net",)


def test_the_detectors_are_flufl_bounces_own_in_its_order() -> None:
    # A new release of flufl.bounce that adds, drops or reorders detectors must be looked at.
    from flufl.bounce import _scan
    from flufl.bounce._detectors import netscape

    from ingest.report_scan import DETECTORS, _Netscape

    ours = [netscape.Netscape if detector is _Netscape else detector for detector in DETECTORS]
    assert ours == list(_scan._DETECTORS)
