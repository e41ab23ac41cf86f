"""The shared real-world corpus through the `ingest` command path, in process.

Every message file of the corpus (see `message_files` for which files count as messages) is
stored with `ticketd ingest FILE` (exit status 0), then the worker drains the journal once. Every
journal row must end visibly (promise 3): done, ignored with a reason, or quarantined with a
reason; none may stay pending, and none of this corpus may be quarantined (each file here is
mail that a real system produced; a quarantine means the parser failed it).

Assertions derived from the corpus's expected answers:

- flufl.bounce/expected.json: each file for which flufl.bounce expects failing addresses is a
  bounce: ignored with a bounce reason, never a ticket, never acknowledged. Its entries with no
  addresses at all are flufl's negative cases (a detector must find nothing there: a person's
  reply, an auto-reply), so only the general rules apply to them.
- sisimai/expected-go-sisimai.json: the rfc3834 vacation auto-replies are ignored as
  auto-replies; no file sisimai decodes as a bounce or a feedback report is acknowledged, except
  the ones in `SISIMAI_PERSON_FORWARDS` (a person forwarding a bounce to us is a person writing).
- talon/expected.json: the reply text `parse_message(...).text` extracts matches talon's
  expected reply, modulo whitespace (for the HTML bodies, with all whitespace removed, as talon
  compares them; they are bodies, not messages, so the test wraps each in a text/html message).

The corpus lives beside the repository in shared/corpus (TICKETD_CORPUS overrides the path). If it
is missing these tests fail: a skipped corpus would prove nothing.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select

from domain.clock import FixedClock
from domain.config import load_config
from ingest.parsing import parse_message
from storage.models import (
    JOURNAL_DONE,
    JOURNAL_IGNORED,
    JOURNAL_QUARANTINED,
    JournalEntry,
    OutboxMail,
    TicketMessage,
)
from tests.helpers import write_config
from ticketd.cli import main
from ticketd.state import open_state

EX_OK, EX_DATAERR = 0, 65

# Folders (relative to the corpus) that hold no whole messages: reply bodies only
# (email_reply_parser, talon/signature), HTML bodies (talon/html_replies: used by the talon test,
# wrapped), raw TNEF payloads and what they unpack to (tnefparse, mimekit/tnef), mbox files that
# hold many messages each (mimekit/mbox, sisimai/mailbox: that is `ticketd import`'s input, not
# `ingest`'s), and media files (flanker/messages/attachments).
NOT_MESSAGE_FOLDERS = (
    "email_reply_parser",
    "talon/signature",
    "talon/html_replies",
    "tnefparse",
    "mimekit/tnef",
    "mimekit/mbox",
    "sisimai/mailbox",
    "flanker/messages/attachments",
)
# Suffixes of files that are not messages: expected answers and notes, TNEF and other payloads,
# images, sounds, HTML bodies.
NOT_MESSAGE_SUFFIXES = frozenset(
    {
        *(".json", ".list", ".md", ".py"),
        *(".tnef", ".dat", ".rtf", ".doc", ".pdf", ".html", ".htm"),
        *(".png", ".jpg", ".gif", ".bmp", ".exr", ".pbm", ".pgm", ".ppm", ".ras", ".sgi"),
        *(".tiff", ".webp", ".xbm", ".aifc", ".aiff", ".au", ".wav", ".mp3"),
    }
)
# Folders that must each contribute messages: a guard against a selection rule that skips too much.
MESSAGE_FOLDERS = (
    "cpython-test_email",
    "mail-parser",
    "flufl.bounce",
    "sisimai",
    "talon",
    "ruby-mail",
    "flanker",
    "nodemailer-mailparser",
    "mimekit",
    "mailman",
    "django-helpdesk",
    "spamassassin",
)
# Selected although they do not start like a message, as hostile input that must end visibly.
KEPT_ODD_FILES = {
    "cpython-test_email/msg_19.txt": "a digest body without any header",
    "mail-parser/mails/mail_outlook_1": "an Outlook .msg (OLE) file, not MIME at all",
    "mimekit/messages/feedback-report.txt": "a message that starts with a UTF-8 byte order mark",
}
# Quarantine is for mail that is truly unprocessable; none of this corpus is. Name a file here,
# with the reason, only if it truly cannot be processed.
ALLOWED_QUARANTINE: dict[str, str] = {}
# sisimai decodes these as bounces, but a person sent them: they forward a bounce to us
# ("Fwd: Returned mail: ...") and are rightly a ticket.
SISIMAI_PERSON_FORWARDS = frozenset({"lhost-sendmail-14.eml"})
SISIMAI_NOT_BOUNCES = frozenset({"delivered", "vacation"})


def corpus_root() -> Path:
    override = os.environ.get("TICKETD_CORPUS")
    root = Path(override) if override else Path(__file__).resolve().parents[2] / "shared" / "corpus"
    if not (root / "README.md").is_file():
        pytest.fail(
            f"the shared mail corpus is missing at {root}: it belongs in shared/corpus beside "
            "the repository (or set TICKETD_CORPUS to its folder); these tests do not skip",
            pytrace=False,
        )
    return root


def is_message_file(root: Path, path: Path) -> bool:
    """The rule: what is neither in a NOT_MESSAGE folder, nor a known non-message file."""
    rel = path.relative_to(root).as_posix()
    if "/" not in rel:  # the corpus's own README
        return False
    if any(rel.startswith(folder + "/") for folder in NOT_MESSAGE_FOLDERS):
        return False
    name = path.name
    if path.suffix.lower() in NOT_MESSAGE_SUFFIXES:
        return False
    if name.upper().startswith(("LICENSE", "README", "MIT-LICENSE")):
        return False
    if rel.startswith("flanker/messages/dkim/") and not name.startswith("email."):
        return False  # canonicalised copies (*.expected.*) and descriptions (purpose.*)
    return not name.endswith("_reply_text")  # talon's expected reply texts


def message_files(root: Path) -> list[Path]:
    return [p for p in sorted(root.rglob("*")) if p.is_file() and is_message_file(root, p)]


@dataclass(frozen=True)
class Row:
    rel: str  # the file, relative to the corpus
    state: str
    reason: str
    acknowledged: bool


@dataclass(frozen=True)
class CorpusRun:
    root: Path
    rows: dict[str, Row]
    refused: dict[str, int]  # files that ingest refused (empty files), with the exit status
    exit_codes: dict[str, int]
    seconds_ingest: float
    seconds_drain: float


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CorpusRun]:
    root = corpus_root()
    files = message_files(root)
    # The state lives in memory where it can (/dev/shm): ingest and the worker fsync every
    # message, which is the point in production and half the runtime of this test on a disk.
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        folder = Path(tempfile.mkdtemp(prefix="ticketd-corpus-", dir=shm))
    else:
        folder = tmp_path_factory.mktemp("corpus")
    try:
        yield _run_corpus(root, files, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _run_corpus(root: Path, files: list[Path], folder: Path) -> CorpusRun:
    config_path = write_config(folder)
    exit_codes: dict[str, int] = {}
    refused: dict[str, int] = {}
    ingested: list[str] = []
    started = time.monotonic()
    for path in files:
        rel = path.relative_to(root).as_posix()
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["--config", str(config_path), "ingest", str(path)])
        if path.stat().st_size == 0 or not path.read_bytes().strip():
            refused[rel] = code  # an empty file is no message: ingest must refuse it
            continue
        exit_codes[rel] = code
        if code == EX_OK:
            ingested.append(rel)
    seconds_ingest = time.monotonic() - started
    state = open_state(
        load_config(config_path), clock=FixedClock(datetime(2026, 11, 23, tzinfo=UTC))
    )
    try:
        started = time.monotonic()
        state.worker.drain()
        seconds_drain = time.monotonic() - started
        with state.db.transaction() as session:
            entries = list(session.scalars(select(JournalEntry).order_by(JournalEntry.id)))
            acked_tickets = set(session.scalars(select(OutboxMail.ticket_id)))
            acked_journal = {
                m.journal_id
                for m in session.scalars(
                    select(TicketMessage).where(TicketMessage.direction == "in")
                )
                if m.ticket_id in acked_tickets
            }
            # One journal row per stored file, in the order the files were ingested.
            assert len(entries) == len(ingested), (len(entries), len(ingested))
            rows = {
                rel: Row(rel, e.state, e.reason or "", e.id in acked_journal)
                for rel, e in zip(ingested, entries, strict=True)
            }
    finally:
        state.close()
    return CorpusRun(root, rows, refused, exit_codes, seconds_ingest, seconds_drain)


def _load(root: Path, rel: str) -> dict[str, object]:
    data: dict[str, object] = json.loads((root / rel).read_text(encoding="utf-8"))
    return data


def test_selection_finds_messages_in_every_message_folder() -> None:
    root = corpus_root()
    files = message_files(root)
    per_folder = Counter(p.relative_to(root).parts[0] for p in files)
    missing = [f for f in MESSAGE_FOLDERS if per_folder[f] == 0]
    assert not missing, f"no message files selected in {missing}"
    assert len(files) >= 800, f"only {len(files)} message files selected: {dict(per_folder)}"
    # Every selected file starts like a message (a header line or an mbox "From " line), but for
    # three that are kept on purpose, as hostile input that must still end visibly.
    header = re.compile(rb"^(From |[!-9;-~]+:)")
    not_mail = {
        p.relative_to(root).as_posix()
        for p in files
        if p.stat().st_size and not header.match(p.read_bytes().lstrip()[:200])
    }
    assert not_mail <= set(KEPT_ODD_FILES), f"selected files that do not look like mail: {not_mail}"


def test_every_file_is_stored_by_ingest(corpus_run: CorpusRun) -> None:
    failed = {rel: code for rel, code in corpus_run.exit_codes.items() if code != EX_OK}
    assert not failed, f"ingest did not exit 0 for {failed}"
    wrong = {rel: code for rel, code in corpus_run.refused.items() if code != EX_DATAERR}
    assert not wrong, f"ingest of an empty file must exit {EX_DATAERR}: {wrong}"


def test_every_message_ends_in_a_visible_state(corpus_run: CorpusRun) -> None:
    unfinished = {
        r.rel: r.state
        for r in corpus_run.rows.values()
        if r.state not in (JOURNAL_DONE, JOURNAL_IGNORED, JOURNAL_QUARANTINED)
    }
    assert not unfinished, f"messages not processed: {unfinished}"
    no_reason = [
        r.rel
        for r in corpus_run.rows.values()
        if r.state in (JOURNAL_IGNORED, JOURNAL_QUARANTINED) and not r.reason.strip()
    ]
    assert not no_reason, f"ignored or quarantined without a reason: {no_reason}"


def test_nothing_in_the_corpus_is_quarantined(corpus_run: CorpusRun) -> None:
    quarantined = {
        r.rel: r.reason
        for r in corpus_run.rows.values()
        if r.state == JOURNAL_QUARANTINED and r.rel not in ALLOWED_QUARANTINE
    }
    listing = "\n".join(f"  {rel}: {reason}" for rel, reason in sorted(quarantined.items()))
    assert not quarantined, f"{len(quarantined)} quarantined:\n{listing}"


def test_flufl_bounces_are_ignored_as_bounces_and_never_acknowledged(
    corpus_run: CorpusRun,
) -> None:
    expected = _load(corpus_run.root, "flufl.bounce/expected.json")["files"]
    assert isinstance(expected, dict)
    bounces = [
        name for name, answers in expected.items() if any(answer["addresses"] for answer in answers)
    ]
    assert len(bounces) >= 100, "flufl.bounce/expected.json lost its entries"
    wrong: list[str] = []
    for name in bounces:
        row = corpus_run.rows.get(f"flufl.bounce/data/{name}")
        if row is None:
            wrong.append(f"{name}: not ingested")
        elif row.state != JOURNAL_IGNORED or not row.reason.startswith("bounce:"):
            wrong.append(f"{name}: {row.state} ({row.reason})")
        elif row.acknowledged:
            wrong.append(f"{name}: acknowledged")
    assert not wrong, f"{len(wrong)} of {len(bounces)} bounces mishandled:\n" + "\n".join(wrong)


def _sisimai_rows(corpus_run: CorpusRun) -> Iterator[tuple[Row, set[str]]]:
    expected = _load(corpus_run.root, "sisimai/expected-go-sisimai.json")["files"]
    assert isinstance(expected, dict)
    for row in corpus_run.rows.values():
        if row.rel.startswith("sisimai/") and Path(row.rel).name in expected:
            yield row, {answer["reason"] for answer in expected[Path(row.rel).name]}


def test_sisimai_vacation_replies_are_ignored_as_auto_replies(corpus_run: CorpusRun) -> None:
    vacations = [row for row, reasons in _sisimai_rows(corpus_run) if reasons == {"vacation"}]
    assert len(vacations) >= 3, "the rfc3834 vacation replies went missing"
    wrong = [
        f"{row.rel}: {row.state} ({row.reason}) acknowledged={row.acknowledged}"
        for row in vacations
        if row.state != JOURNAL_IGNORED
        or not row.reason.startswith("auto-reply:")
        or row.acknowledged
    ]
    assert not wrong, "\n".join(wrong)


def test_sisimai_bounces_are_never_acknowledged(corpus_run: CorpusRun) -> None:
    bounces = [
        row
        for row, reasons in _sisimai_rows(corpus_run)
        if not reasons <= SISIMAI_NOT_BOUNCES and Path(row.rel).name not in SISIMAI_PERSON_FORWARDS
    ]
    assert len(bounces) >= 250
    wrong = [f"{row.rel}: {row.state} ({row.reason})" for row in bounces if row.acknowledged]
    assert not wrong, f"{len(wrong)} bounces acknowledged:\n" + "\n".join(wrong)
    tickets = [f"{row.rel}: {row.reason}" for row in bounces if row.state == JOURNAL_DONE]
    assert not tickets, f"{len(tickets)} bounces became tickets:\n" + "\n".join(tickets)


# A person's own reply that flufl.bounce keeps as a negative case (its expected.json names no
# failing address): a customer writing, so it is acknowledged like any customer.
PERSONS_IN_BOUNCE_CORPORA = {"flufl.bounce/data/groupwise_03.txt": "an Outlook reply by a person"}


def test_not_one_acknowledgement_over_the_bounce_corpora(corpus_run: CorpusRun) -> None:
    """Issue 4: over the whole of flufl.bounce and sisimai, nothing automatic is sent."""
    expected = _load(corpus_run.root, "flufl.bounce/expected.json")["files"]
    assert isinstance(expected, dict)
    for rel in PERSONS_IN_BOUNCE_CORPORA:
        answers = expected[Path(rel).name]
        assert not any(answer["addresses"] for answer in answers), f"{rel} is a bounce after all"
    rows = [
        r
        for r in corpus_run.rows.values()
        if r.rel.startswith(("flufl.bounce/", "sisimai/"))
        and r.rel not in PERSONS_IN_BOUNCE_CORPORA
    ]
    assert len(rows) >= 450
    acknowledged = sorted(f"{r.rel}: {r.reason}" for r in rows if r.acknowledged)
    assert not acknowledged, f"{len(acknowledged)} acknowledged:\n" + "\n".join(acknowledged)


def _html_message(html: str) -> bytes:
    mail = EmailMessage()
    mail["From"] = "Alex <alex@example.com>"
    mail["To"] = "destek@example.com"
    mail["Subject"] = "Re: Test message"
    mail.set_content(html, subtype="html")
    return mail.as_bytes()


def test_talon_replies_are_extracted() -> None:
    root = corpus_root() / "talon"
    expected = _load(root, "expected.json")["expected_reply"]
    assert isinstance(expected, dict) and len(expected) == 21
    mismatches: list[str] = []
    for rel, want in expected.items():
        path = root / rel
        if rel.endswith(".html"):
            want = want.split("  (compare")[0]  # the note on how talon compares
            got = parse_message(_html_message(path.read_text(encoding="utf-8"))).text
            same = re.sub(r"\s", "", got) == re.sub(r"\s", "", want)
        else:
            got = parse_message(path.read_bytes()).text
            same = got.split() == want.split()
        if not same:
            mismatches.append(f"{rel}: got {got[:200]!r}, want {want!r}")
    matched = len(expected) - len(mismatches)
    assert not mismatches, f"{matched}/{len(expected)} match:\n" + "\n".join(mismatches)


def test_flufl_bounces_name_their_failing_addresses() -> None:
    """Each bounce of flufl.bounce/expected.json yields the addresses the file names."""
    from ingest.parsing import parse_message

    root = corpus_root() / "flufl.bounce"
    expected = _load(corpus_root(), "flufl.bounce/expected.json")["files"]
    assert isinstance(expected, dict)
    checked, missing = 0, []
    for name, answers in expected.items():
        wanted = {a.lower() for answer in answers for a in answer["addresses"]}
        if not wanted:
            continue
        parsed = parse_message((root / "data" / name).read_bytes())
        found = {a.lower() for a in (*parsed.failed_recipients, *parsed.delayed_recipients)}
        checked += 1
        if not wanted <= found:
            missing.append(f"{name}: {sorted(wanted - found)}")
    assert checked >= 100
    assert not missing, "\n".join(missing)
