"""A refused file does not look accepted (issue 15, point 12): the notification and `tickets
show` give the type found in the bytes and mark the refused file, and identity agents' footer
lists the #kyc commands."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from domain.clock import FixedClock
from domain.config import load_config
from tests.helpers import customer_mail, write_config
from tests.test_kyc import JPEG, KYC_AGENT, OTHER_AGENT, TEAM, kyc_mail
from tests.test_sla_survey import outbox
from tests.test_threading import deliver
from ticketd.state import State, open_state
from ticketd.views import show_ticket

# A Windows program renamed to look like a photo: "MZ", then a PE header's worth of bytes.
PROGRAM = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\x00" * 200


@pytest.fixture
def desk(tmp_path: Path, clock: FixedClock) -> Iterator[State]:
    opened = open_state(load_config(write_config(tmp_path, extra=TEAM)), clock=clock)
    yield opened
    opened.close()


def test_a_renamed_program_is_shown_as_what_it_is_and_refused(desk: State) -> None:
    files = [("selfie.jpg", "image/jpeg", PROGRAM), ("kimlik.jpg", "image/jpeg", JPEG)]
    result = deliver(desk, kyc_mail(files))
    assert result.state == "done" and "1 refused" in result.detail, result.detail
    ref = result.detail.split()[1].rstrip(":")

    [note] = [m for m in outbox(desk, "notify") if m.recipient == KYC_AGENT]
    assert "selfie.jpg (bildirilen image/jpeg, içeriği application/x-msdownload" in note.text
    assert "REDDEDİLDİ: not_accepted" in note.text or "REDDEDİLDİ: unknown_type" in note.text
    assert "kimlik.jpg (bildirilen image/jpeg," in note.text
    assert "kimlik.jpg (bildirilen image/jpeg, içeriği" not in note.text  # it is a JPEG
    assert "#kyc onayla" in note.text  # an identity agent is shown the #kyc commands

    shown = show_ticket(desk.db, ref)
    assert shown is not None
    files_shown = {a["filename"]: a for a in shown["messages"][0]["attachments"]}
    assert files_shown["selfie.jpg"]["detected"] == "application/x-msdownload"
    # A script reading `content_type` is not told the program is a JPEG; the mail's claim stays
    # beside it. A file whose bytes show no known type keeps what the mail declared.
    assert files_shown["selfie.jpg"]["content_type"] == "application/x-msdownload"
    assert files_shown["selfie.jpg"]["declared_type"] == "image/jpeg"
    assert files_shown["kimlik.jpg"]["content_type"] == "image/jpeg"
    assert files_shown["selfie.jpg"]["refused"]
    assert "refused" not in files_shown["kimlik.jpg"]
    text = subprocess.run(
        [
            sys.executable,
            "-m",
            "ticketd.cli",
            "--config",
            str(desk.config.path),
            "tickets",
            "show",
            ref,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert "selfie.jpg (image/jpeg, content application/x-msdownload" in text
    assert "REFUSED" in text


def test_other_agents_are_not_shown_the_kyc_commands(desk: State) -> None:
    deliver(desk, customer_mail(subject="Bonus", body="Bonusum yüklenmedi"))
    [note] = [m for m in outbox(desk, "notify") if m.recipient == OTHER_AGENT]
    assert "#kyc" not in note.text
