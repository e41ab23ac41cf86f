"""Content-Transfer-Encoding values as real senders write them (`quoted-printable;`, `"base64"`,
`base64; charset=utf-8`, `base64 (comment)`, any case, trailing spaces), sent over SMTP to the
daemon as a process: the ticket holds the customer's text and file, the identity queue the
photo, never the encoded text (ingest/transfer_encoding.py)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import smtplib
from pathlib import Path
from typing import Any

import pytest

from tests.daemon import DaemonProcess, Relay, daemon_config
from tests.helpers import DESK
from tests.test_kyc import JPEG, PDF, TEAM, kyc_mail
from tests.test_transfer_encoding import TEXT

pytestmark = pytest.mark.slow

BASE64_VALUES = ["base64;", '"base64"', "base64; charset=utf-8", "base64 (comment)", "BASE64  "]
QP_VALUES = ["quoted-printable;", '"Quoted-Printable"', "QUOTED-PRINTABLE (text) "]


def _lines(data: bytes) -> bytes:
    encoded = base64.b64encode(data)
    return b"\r\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76)) + b"\r\n"


def _encoded(value: str, data: bytes) -> bytes:
    if "quoted" in value.lower():
        # The file's own line ends encoded (=0A), so the lines the encoding adds are its own.
        return binascii.b2a_qp(data, istext=False).replace(b"\n", b"\r\n")
    return _lines(data)


def _mail(number: int, value: str) -> bytes:
    """A customer's identity request and its PDF, both parts sent with `value`; each mail from
    its own customer, so each opens a ticket of its own."""
    return (
        (
            f"From: Musteri {number} <musteri{number}@musteri.com.tr>\r\nTo: {DESK}\r\n"
            f"Subject: Hesap ekstresi {number}\r\nMessage-ID: <cte-{number}@musteri.com.tr>\r\n"
            "MIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="sinir"\r\n\r\n'
            "--sinir\r\n"
            'Content-Type: text/plain; charset="utf-8"\r\n'
            f"Content-Transfer-Encoding: {value}\r\n\r\n"
        ).encode()
        + _encoded(value, TEXT.encode())
        + (
            "\r\n--sinir\r\n"
            'Content-Type: application/pdf; name="ekstre.pdf"\r\n'
            'Content-Disposition: attachment; filename="ekstre.pdf"\r\n'
            f"Content-Transfer-Encoding: {value}\r\n\r\n"
        ).encode()
        + _encoded(value, PDF)
        + b"\r\n--sinir--\r\n"
    )


def _send(port: int, mails: list[tuple[str, bytes]]) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        for sender, raw in mails:
            client.sendmail(sender, [DESK], raw)


def _tickets_by_customer(desk: DaemonProcess, count: int) -> dict[str, dict[str, Any]]:
    def listed() -> list[dict[str, Any]] | None:
        tickets: list[dict[str, Any]] = desk.cli("tickets", "list", "--json")
        return tickets if len(tickets) >= count else None

    tickets = desk.wait_until(listed, timeout=60, what=f"{count} tickets")
    return {t["customer"]: desk.cli("tickets", "show", t["ref"], "--json") for t in tickets}


def _assert_stored(desk: DaemonProcess, ref: str, kind: str, content: bytes) -> None:
    """The identity queue holds the file itself: its type, size and digest."""
    [document] = desk.cli("kyc", "list", ref, "--json")
    assert (document["type"], document["size"]) == (kind, len(content)), ref
    assert document["sha256"] == hashlib.sha256(content).hexdigest(), ref


def test_each_value_as_senders_write_it_is_decoded_by_the_daemon(
    tmp_path: Path, relay: Relay
) -> None:
    values = BASE64_VALUES + QP_VALUES
    mails = [(f"musteri{n}@musteri.com.tr", _mail(n, v)) for n, v in enumerate(values)]
    photo = kyc_mail([("kimlik.jpg", "image/jpeg", JPEG)])
    photo = photo.replace(b"Transfer-Encoding: base64", b"Transfer-Encoding: base64 (phone)")
    mails.append(("ayse@musteri.com.tr", photo))
    desk = DaemonProcess(daemon_config(tmp_path, relay.port, extra=TEAM))
    desk.start()
    try:
        _send(desk.port, mails)
        shown = _tickets_by_customer(desk, len(mails))
        for number, value in enumerate(values):
            ticket = shown[f"musteri{number}@musteri.com.tr"]
            [message] = [m for m in ticket["messages"] if m["kind"] == "customer"]
            assert message["text"] == TEXT, value
            [attachment] = message["attachments"]
            assert (attachment["filename"], attachment["size"]) == ("ekstre.pdf", len(PDF)), value
            assert "refused" not in attachment, (value, attachment)
            _assert_stored(desk, ticket["ref"], "pdf", PDF)
        _assert_stored(desk, shown["ayse@musteri.com.tr"]["ref"], "jpeg", JPEG)
    finally:
        assert desk.stop() == 0, desk.log()
