"""flufl.bounce's address patterns cost the square of a line's length: the detectors read a
report whose lines are cut at REPORT_LINE_LIMIT (ingest/report_scan.py), and still find the
failed recipient. A 4 KB bounce with one long line took a third of a second, a 60 KB line
seconds; the suite's hypothesis check (tests/test_hostile_fuzz.py) found it."""

from __future__ import annotations

from email.iterators import body_line_iterator
from email.message import Message

import pytest
from flufl.bounce import all_failures

from ingest.parsing import parse_message
from ingest.report_scan import REPORT_LINE_LIMIT


def _bounce(line_end: bytes, filler: bytes) -> bytes:
    lines = [
        b"From: Mail Delivery Subsystem <MAILER-DAEMON@example.com>",
        b"To: <destek@example.com.tr>",
        b"Subject: Returned mail: see transcript for details",
        b"Auto-Submitted: auto-generated (failure)",
        b"",
        b"The original message was received at Thu, 29 Apr 2009 23:45:10 -0000",
        b"",
        b"   ----- The following addresses had permanent fatal errors -----",
        b"<kijitora@example.net>",
        b"    (reason: 551 not our user)",
        filler,
        b"",
    ]
    return line_end.join(lines)


@pytest.mark.parametrize("line_end", [b"\r\n", b"\n", b"\r"], ids=["crlf", "lf", "cr"])
def test_a_report_with_a_huge_line_is_read_from_short_lines(
    line_end: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []

    def measured(message: Message) -> object:
        seen.append(max(len(line) for line in body_line_iterator(message)))
        return all_failures(message)

    monkeypatch.setattr("ingest.parsing.all_failures", measured)
    parsed = parse_message(_bounce(line_end, b"</a" * 20_000))
    assert seen and seen[0] <= REPORT_LINE_LIMIT + 1  # the line end
    assert parsed.failed_recipients == ("kijitora@example.net",)


def test_a_report_of_short_lines_is_read_as_it_came(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = _bounce(b"\r\n", b"Diagnostic-Code: SMTP; 551 not our user")
    assert parse_message(raw).failed_recipients == ("kijitora@example.net",)
