"""A delivery report's message/delivery-status part is read wherever it lies, at a bounded
cost (ingest/status_part.py): the bounce detectors read a report's first REPORT_VIEW_BYTES, so
a report whose first part is long (a transcript, a returned text of long lines) did not name
its failed address; and a delivery-status part of megabytes of blank lines cost the parser a
Message per line (12-14 s for 2 MB)."""

from __future__ import annotations

import re
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path

import pytest

from ingest import parsing
from ingest.parsing import parse_message
from ingest.report_scan import REPORT_VIEW_BYTES
from ingest.status_part import STATUS_VIEW_LINES, find_status
from tests.test_corpus import corpus_root, message_files

PADDING = 200 * 1024
# A transcript line as mail systems write them: long, and no address in it.
LONG_LINE = (b"Transcript of session follows. " * 40)[:990]


def _report(
    status_body: bytes, first: bytes = b"Your message could not be delivered.\r\n"
) -> bytes:
    return (
        b"From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\r\n"
        b"To: destek@example.com\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/report; "
        b'report-type=delivery-status; boundary="sinir"\r\n\r\n'
        b"--sinir\r\nContent-Type: text/plain\r\n\r\n" + first + b"--sinir\r\n"
        b"Content-Type: message/delivery-status\r\n\r\n"
        b"Reporting-MTA: dns; mx.example.net\r\n\r\n"
        b"Final-Recipient: rfc822; yok@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        + status_body
        + b"--sinir\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        b"From: destek@example.com\r\nMessage-ID: <geri-1@example.com>\r\n\r\n"
        b"--sinir--\r\n"
    )


def test_a_status_part_past_a_long_first_part_names_its_address() -> None:
    raw = _report(b"", first=(LONG_LINE + b"\r\n") * (PADDING // len(LONG_LINE)))
    part = find_status(raw)
    assert part is not None and part.opened_at > REPORT_VIEW_BYTES
    message = parse_message(raw, envelope_from="<>")
    assert message.failed_recipients == ("yok@example.net",)
    assert "geri-1@example.com" in message.embedded_message_ids


def test_a_status_part_of_megabytes_of_blank_lines_is_parsed_only_to_its_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Cut before the parser sees it; the parts after it are read as they came."""
    parsed: list[Message] = []
    original = parsing._parse_bytes

    def spy(raw: bytes | bytearray) -> Message:
        parsed.append(original(raw))
        return parsed[-1]

    monkeypatch.setattr(parsing, "_parse_bytes", spy)
    message = parse_message(_report(b"\r\n" * 1_000_000), envelope_from="<>")
    assert message.failed_recipients == ("yok@example.net",)
    assert "geri-1@example.com" in message.embedded_message_ids
    [status] = [p for p in parsed[0].walk() if p.get_content_type() == "message/delivery-status"]
    blocks = status.get_payload()
    assert isinstance(blocks, list) and len(blocks) <= STATUS_VIEW_LINES


def _boundary(raw: bytes) -> bytes | None:
    header = BytesHeaderParser(policy=compat32).parsebytes(raw)
    boundary = header.get_boundary()
    if header.get_content_type() != "multipart/report" or not boundary:
        return None
    return boundary.encode("latin-1", "replace")


def _with_long_first_part(raw: bytes) -> bytes | None:
    """The report with PADDING bytes of long lines at the end of its first part, so that its
    delivery-status part begins past them; None when it has no first part to lengthen."""
    boundary = _boundary(raw)
    if boundary is None:
        return None
    delimiter = re.compile(rb"(?m)^--" + re.escape(boundary) + rb"[ \t]*\r?$")
    found = list(delimiter.finditer(raw))
    if len(found) < 2:
        return None
    line_end = b"\r\n" if b"\r\n" in raw[:4096] else b"\n"
    padding = (LONG_LINE + line_end) * (PADDING // len(LONG_LINE) + 1)
    return raw[: found[1].start()] + padding + raw[found[1].start() :]


def _corpus_reports() -> list[Path]:
    return [p for p in message_files(corpus_root()) if b"delivery-status" in p.read_bytes().lower()]


def test_every_corpus_report_still_names_its_failed_address_past_a_long_first_part() -> None:
    """Before the status part was looked for past the view, 135 of these 219 named the wrong
    addresses or none."""
    checked, wrong = 0, []
    for path in _corpus_reports():
        raw = path.read_bytes()
        failed = parse_message(raw, envelope_from="<>").failed_recipients
        far = _with_long_first_part(raw) if failed else None
        if far is None:
            continue
        checked += 1
        found = parse_message(far, envelope_from="<>").failed_recipients
        if found != failed:
            wrong.append(f"{path.name}: {failed} became {found}")
    assert checked > 200, checked  # the corpus's reports, not a selection that came out empty
    assert wrong == []
