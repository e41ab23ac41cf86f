"""Coverage-guided fuzzing (atheris, libFuzzer) of what ticketd does with a received message.

Each input is one raw message. It goes through parse_message, classification, the checks an
identity document meets (real type from the bytes, zip and PDF bomb detection, without
expanding anything), then the journal and the worker on SQLite: threading, records, notes. The
properties: nothing raises, and the message ends done or ignored (a quarantine here is a crash
the worker caught, so it counts as a finding). Seeds are the shared corpus's messages.

The hypothesis suite (tests/test_hostile_fuzz.py) runs a bounded number of mutations in CI; this
harness is for longer runs by hand:

    .venv/bin/pip install -e '.[fuzz]'
    .venv/bin/python fuzz/atheris_pipeline.py -max_total_time=600          # ten minutes
    .venv/bin/python fuzz/atheris_pipeline.py -runs=2000 -rss_limit_mb=2048 state/fuzz-corpus

libFuzzer stops at the first finding (its fork mode does not work with this script). Findings
kept for replay are in fuzz/findings/ (see its README).

Without a folder argument it seeds state/fuzz-corpus from the shared corpus (TICKETD_CORPUS, else
shared/corpus beside the repository) and fuzzes into it, so a second run resumes. A crash is
written as crash-<hash> in the current folder; replay it with the file as the only argument.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import atheris

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SEED_MAX_BYTES = 64 * 1024

with atheris.instrument_imports():
    from ingest.bombs import describe_zip, pdf_inflates_past
    from ingest.classify import classify
    from ingest.documents_step import detect_type
    from ingest.journal import Arrival
    from ingest.parsing import parse_message
    from storage.models import JOURNAL_QUARANTINED, JournalEntry

from sqlalchemy import select  # noqa: E402

from domain.clock import FixedClock  # noqa: E402
from tests.helpers import DESK, make_config  # noqa: E402
from ticketd.state import State, open_state  # noqa: E402

_STATE: list[State] = []


def _state() -> State:
    if not _STATE:
        folder = Path(tempfile.mkdtemp(prefix="ticketd-fuzz-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        clock = FixedClock(datetime(2026, 11, 23, 9, 0, tzinfo=UTC))
        _STATE.append(open_state(make_config(folder), clock=clock))
    return _STATE[0]


def one_input(data: bytes) -> None:
    parsed = parse_message(data)
    classify(parsed, (DESK,))
    for attachment in parsed.attachments:
        kind = detect_type(attachment.payload)
        if kind == "zip":
            describe_zip(attachment.payload)
        elif kind == "pdf":
            pdf_inflates_past(attachment.payload, 16 * 1024 * 1024)
    state = _state()
    journal_id = state.journal.accept(Arrival(raw=data, source="fuzz", envelope_to=(DESK,)))
    state.worker.drain()
    with state.db.read() as session:
        entry = session.scalar(select(JournalEntry).where(JournalEntry.id == journal_id))
        assert entry is not None
        if entry.state == JOURNAL_QUARANTINED:
            raise AssertionError(f"quarantined: {entry.reason}")


def _seed(folder: Path) -> None:
    override = os.environ.get("TICKETD_CORPUS")
    root = Path(override) if override else REPO.parent / "shared" / "corpus"
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.iterdir()):
        return
    for number, path in enumerate(sorted(root.rglob("*.eml"))):
        if path.stat().st_size <= SEED_MAX_BYTES:
            (folder / f"seed-{number:05}").write_bytes(path.read_bytes())


def main() -> None:
    argv = list(sys.argv)
    if not any(not a.startswith("-") for a in argv[1:]):
        corpus = REPO / "state" / "fuzz-corpus"
        _seed(corpus)
        argv.append(str(corpus))
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
