"""Key rotation and the orphan sweep over a journal of N messages: how long do they take?

Run from the repository root:

    .venv/bin/python bench/key_rotation.py [--messages 2000] [--size 20000] [--workdir DIR]

A fresh SQLite state gets N messages of about SIZE bytes through `Journal.accept` (blob written
and fsynced, row committed): that rate is the baseline, the cost of writing each blob once. Then
`rotate` re-encrypts all of them (read, decrypt, seal, temporary file, fsync, rename, each), a
second `rotate --retire`-style pass finds nothing left, and the sweep judges them all (made older
than the grace first) and removes the orphans among them (every tenth blob's row is deleted to
make orphans). Figures are messages per second, each next to the journal baseline.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import delete

from ingest.journal import Arrival
from storage.documents import DocumentStore
from storage.models import JournalEntry
from storage.rotation import RotationReport, reencrypt, rotate
from storage.sealed_blobs import SealedBlobStore
from storage.sweep import sweep
from tests.helpers import customer_mail, make_config
from ticketd.state import open_state


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--size", type=int, default=20000, help="bytes of body per message")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as folder:
        state = open_state(make_config(Path(folder)))
        blobs = state.blobs
        assert isinstance(blobs, SealedBlobStore)
        documents = DocumentStore.open(blobs, state.config.kyc.key_file)
        print(f"state folder: {folder} (load average {os.getloadavg()[0]:.2f})")
        body = ("Para çekme talebim beklemede. " * (args.size // 30 + 1))[: args.size]
        raws = [
            customer_mail(subject=f"Talep {n}", body=f"{n} {body}") for n in range(args.messages)
        ]

        started = time.perf_counter()
        for raw in raws:
            state.journal.accept(Arrival(raw=raw, source="bench"))
        journal_seconds = time.perf_counter() - started
        baseline = args.messages / journal_seconds
        print(f"journal accept (baseline): {baseline:8.0f} messages/s  ({journal_seconds:.2f} s)")

        started = time.perf_counter()
        report = rotate(state.db, blobs, documents, state.clock.now())
        seconds = time.perf_counter() - started
        assert report.finished and report.blobs == args.messages, report
        rate = args.messages / seconds
        print(
            f"rotate-key re-encrypting:  {rate:8.0f} messages/s  ({seconds:.2f} s, "
            f"{rate / baseline:.2f}x the baseline)"
        )

        started = time.perf_counter()
        again = reencrypt(state.db, blobs, documents, RotationReport(key=report.key))
        seconds = time.perf_counter() - started
        assert again.blobs == 0 and again.already == args.messages
        rate = args.messages / seconds
        print(
            f"a pass with nothing to do: {rate:8.0f} messages/s  ({seconds:.2f} s, "
            f"{rate / baseline:.2f}x the baseline)"
        )

        with state.db.transaction() as session:
            session.execute(delete(JournalEntry).where(JournalEntry.id % 10 == 0))
        old = time.time() - 2 * 86400
        for key in blobs.addresses():
            os.utime(blobs.path_for(key), (old, old))
        started = time.perf_counter()
        swept = sweep(state.db, blobs, grace=timedelta(days=1))
        seconds = time.perf_counter() - started
        rate = args.messages / seconds
        print(
            f"sweep judging every blob:  {rate:8.0f} messages/s  ({seconds:.2f} s, "
            f"{len(swept.removed)} orphans removed, {rate / baseline:.2f}x the baseline)"
        )
        state.close()
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
