"""Issue 22: `ticketd ingest --process` and `ticketd import` parse like the daemon, in a child
process stopped past `[limits] max_parse_seconds`. A message that stalls the parser is
quarantined with the reason (nothing lost: `quarantine retry` can take it again), the messages
beside it are processed, and the command returns in time. The stalling shape is the hostile
freeze tests' slow HTML: about 40 s to parse in one process on this machine, unbounded."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.helpers import customer_mail, write_config
from tests.test_hostile_freeze import _slow_html
from tests.test_ingest_command import run_cli

LIMIT = "[limits]\nmax_parse_seconds = 1\n"
# The proof that the limit stopped the parse is the quarantine reason (unbounded, the message
# is parsed whole, in about 35 s, and ends done). The time is a guard against a command that
# hangs: the forkserver's start and imports and the store of 20 MB take 6 to 10 s on a quiet
# machine, over 20 s on one loaded by other test runs.
IN_TIME = 60.0


def _quarantined(config: Path) -> list[dict[str, object]]:
    result = run_cli(config, "quarantine", "list", "--json")
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, object]] = json.loads(result.stdout)
    return rows


def test_ingest_process_stops_a_stalling_parse_and_quarantines_the_message(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, extra=LIMIT)
    began = time.monotonic()
    result = run_cli(config, "ingest", "--process", stdin=_slow_html(20))
    elapsed = time.monotonic() - began
    print(f"ingest --process of a stalling message returned in {elapsed:.1f} s")
    assert result.returncode == 0, result.stderr  # stored: the MTA must not retry it
    assert elapsed < IN_TIME
    assert b"quarantined" in result.stdout, result.stdout
    [row] = _quarantined(config)
    assert "max_parse_seconds (1 s)" in str(row["reason"]), row


def test_import_quarantines_the_stalling_message_and_processes_the_rest(tmp_path: Path) -> None:
    folder = tmp_path / "mail"
    folder.mkdir()
    (folder / "1-slow.eml").write_bytes(_slow_html(20))
    for n in range(2):
        honest = customer_mail(subject=f"Talep {n}", message_id=f"<honest-{n}@musteri.com.tr>")
        (folder / f"2-honest-{n}.eml").write_bytes(honest)
    config = write_config(tmp_path, extra=LIMIT)
    began = time.monotonic()
    result = run_cli(config, "import", str(folder), "--json")
    elapsed = time.monotonic() - began
    print(f"import of a stalling message and two honest ones returned in {elapsed:.1f} s")
    assert elapsed < IN_TIME
    summary = json.loads(result.stdout)
    assert summary["stored"] == 3, summary
    assert summary["quarantined"] == 1 and summary["done"] == 2, summary
    [row] = _quarantined(config)
    assert "max_parse_seconds (1 s)" in str(row["reason"]), row
