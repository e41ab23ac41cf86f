"""The proof of issue 14: every message of the shared corpus sent over SMTP to one daemon.

Each message file (the selection of tests/test_corpus.py) goes to the running daemon with
smtplib, with its own envelope sender: the Return-Path the file carries (empty for most
bounces), else the null sender for the files the corpus's own answers call bounces or feedback
reports, else the From address the parser finds, else `unknown@corpus.invalid` for the few test
messages that name nobody. One daemon takes them all, over a handful of connections. Then
`ticketd journal list --json` tells what became of each: the count per final state and per
reason is the figure in the README, and no message may be ignored for a reason outside the
documented list (bounce, auto-reply, loop, duplicate) or end pending or quarantined.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import smtplib
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from domain.header_addresses import usable
from ingest.parsing import parse_message
from tests.daemon import DaemonProcess, daemon_config
from tests.helpers import DESK
from tests.test_corpus import (
    SISIMAI_NOT_BOUNCES,
    SISIMAI_PERSON_FORWARDS,
    corpus_root,
    message_files,
)

pytestmark = pytest.mark.slow

# The reasons a message may end without a ticket (README, "How mail flows"); nobody is blocked
# and [classify] is at its default here, so neither `blocked` nor `list`/`bulk` may appear.
MACHINE_REASONS = frozenset({"bounce", "auto-reply", "loop", "duplicate"})
NOBODY = "unknown@corpus.invalid"
PER_CONNECTION = 100  # below [smtp_in] max_commands (200 of any one command per session)


def _bounce_files(root: Path) -> set[str]:
    """Files the corpus's own answers call bounces or feedback reports."""
    found: set[str] = set()
    flufl = json.loads((root / "flufl.bounce/expected.json").read_text(encoding="utf-8"))
    for name, answers in flufl["files"].items():
        if any(answer["addresses"] for answer in answers):
            found.add(f"flufl.bounce/data/{name}")
    sisimai = json.loads((root / "sisimai/expected-go-sisimai.json").read_text(encoding="utf-8"))
    names = {
        name
        for name, answers in sisimai["files"].items()
        if not {answer["reason"] for answer in answers} <= SISIMAI_NOT_BOUNCES
    }
    for path in (root / "sisimai").rglob("*"):
        if path.name in names:
            found.add(path.relative_to(root).as_posix())
    return found


def _return_path(raw: bytes) -> str | None:
    """The first Return-Path of the file's own header, as the MTA that delivered it saw it."""
    head = raw.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
    for line in head.split(b"\n"):
        if line.lower().startswith(b"return-path:"):
            return line[len(b"return-path:") :].decode("ascii", "replace").strip().strip("<>")
    return None


def envelope_sender(rel: str, raw: bytes, bounces: set[str]) -> str:
    path = _return_path(raw)
    if path is not None and (path == "" or (usable(path) and path.isascii())):
        return path
    if rel in bounces:
        return ""
    sender = parse_message(raw).sender.email
    return sender if sender and sender.isascii() else NOBODY


@dataclass(frozen=True)
class SmtpRun:
    sent: list[tuple[str, str]]  # (file, envelope sender) accepted with 250, in order
    refused: dict[str, str]  # file: the SMTP reply
    rows: list[dict[str, Any]]  # `ticketd journal list --json`


def _send_all(port: int, messages: list[tuple[str, bytes, str]]) -> SmtpRun:
    sent: list[tuple[str, str]] = []
    refused: dict[str, str] = {}
    for start in range(0, len(messages), PER_CONNECTION):
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
            for rel, raw, sender in messages[start : start + PER_CONNECTION]:
                try:
                    client.sendmail(sender, [DESK], raw)
                    sent.append((rel, sender))
                except smtplib.SMTPResponseException as error:
                    refused[rel] = f"{error.smtp_code} {error.smtp_error!r}"
                except smtplib.SMTPRecipientsRefused as error:
                    refused[rel] = repr(error.recipients)
    return SmtpRun(sent, refused, [])


@pytest.fixture(scope="module")
def smtp_run() -> Iterator[SmtpRun]:
    root = corpus_root()
    bounces = _bounce_files(root)
    messages = []
    for path in message_files(root):
        raw = path.read_bytes()
        if raw.strip():
            rel = path.relative_to(root).as_posix()
            messages.append((rel, raw, envelope_sender(rel, raw, bounces)))
    shm = Path("/dev/shm")  # fsync per message is the point in production, not here
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    folder = Path(tempfile.mkdtemp(prefix="ticketd-corpus-smtp-", dir=base))
    daemon = DaemonProcess(daemon_config(folder, None))
    daemon.start()
    try:
        run = _send_all(daemon.port, messages)

        def settled() -> list[dict[str, Any]] | None:
            rows: list[dict[str, Any]] = daemon.cli("journal", "list", "--json")
            finished = len(rows) == len(run.sent) and all(r["state"] != "pending" for r in rows)
            return rows if finished else None

        rows = daemon.wait_until(settled, timeout=600, what="the corpus processed")
        yield SmtpRun(run.sent, run.refused, rows)
    finally:
        code = daemon.stop()
        shutil.rmtree(folder, ignore_errors=True)
        assert code == 0


def _outcome(row: dict[str, Any]) -> str:
    if row["state"] != "ignored":
        return str(row["state"])
    return f"ignored: {str(row['reason']).split(':', 1)[0]}"


def _why(row: dict[str, Any]) -> str:
    """An ignored row's reason without the addresses, subjects and ids it names."""
    reason = re.sub(r"[\w.+=-]+@[\w.-]+", "ADDRESS", str(row["reason"]))
    reason = re.sub(r"'[^']*'", "'...'", reason)
    reason = re.sub(r"message \d+ of ticket \S+", "message N of ticket REF", reason)
    return re.sub(r"(, ADDRESS)+", "", reason.split(" (")[0])


def test_every_corpus_message_over_smtp_ends_visibly_for_a_documented_reason(
    smtp_run: SmtpRun,
) -> None:
    assert not smtp_run.refused, smtp_run.refused
    assert len(smtp_run.sent) >= 800
    nulls = sum(1 for _, sender in smtp_run.sent if sender == "")
    assert nulls >= 300, "the bounces went with the null sender"
    rows = smtp_run.rows
    figure = Counter(_outcome(row) for row in rows)
    print(f"\n{len(rows)} messages over SMTP ({nulls} with MAIL FROM:<>): {dict(figure)}")
    reasons = Counter(_why(row) for row in rows if row["state"] == "ignored")
    for reason, count in reasons.most_common():
        print(f"  {count:4} {reason}")
    bad = [
        f"{rel}: {row['state']} {row['reason']}"
        for (rel, _), row in zip(smtp_run.sent, rows, strict=True)
        if row["state"] in ("pending", "quarantined")
        or (row["state"] == "ignored" and _outcome(row).split(": ")[1] not in MACHINE_REASONS)
    ]
    assert not bad, "\n".join(bad)
    # What the null sender makes of a message: every one reached the bounce handling or its
    # ticket, none was refused at RCPT (issue 14: 0 of 401 were accepted before).
    pairs = zip(smtp_run.sent, rows, strict=True)
    assert all(row["envelope_from"] == "<>" for (_, sender), row in pairs if sender == "")


def test_no_bounce_of_the_corpus_becomes_a_ticket_over_smtp(smtp_run: SmtpRun) -> None:
    bounces = _bounce_files(corpus_root())
    tickets = [
        f"{rel}: {row['reason']}"
        for (rel, _), row in zip(smtp_run.sent, smtp_run.rows, strict=True)
        if rel in bounces
        and row["state"] == "done"
        and Path(rel).name not in SISIMAI_PERSON_FORWARDS
    ]
    assert not tickets, "\n".join(tickets)
