"""Where an import's time goes, process by process: a timeline and the CPU of each.

    .venv/bin/python bench/import_timeline.py              # 1,000 synthetic desk mails
    .venv/bin/python bench/import_timeline.py --messages 2000
    .venv/bin/python bench/import_timeline.py --source DIR # the .eml files of DIR

`import_path` runs in this process, as `ticketd import` runs it (the parsing process, the
storing thread), with marks at the points that decide the wall clock: the imports and the state
opened, the first and every 250th message applied, the storing's end, the last message. Then the
CPU seconds of this process (the writer and the storing threads; user and kernel) beside the
parsing process's, against the wall clock of the import: the process whose CPU is close to the
wall clock is the one to make cheaper (on 8 December 2026 it was this one: the writer's
transaction, bench/README.md). A tool for finding the bottleneck, not a figure for the goals:
`import_floor.py` measures those against their floors.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from desk_mail import desk_mail
from import_floor import write_config, write_set

STARTED = [time.perf_counter()]  # the command's start: set again once the mail is written


def mark(what: str) -> None:
    print(f"  {time.perf_counter() - STARTED[0]:7.3f} s  {what}", flush=True)


def cpu_of(pid: int) -> float:
    """User and kernel CPU seconds of a process of ours, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def watch_progress() -> None:
    """Marks as messages are applied and as the storing thread ends (wrapping, not editing)."""
    import ingest.importer as importer
    import ingest.worker as worker

    applied = [0]
    process_run = worker.Worker.process_run

    def counted(self: worker.Worker, most: int = worker.RUN_MESSAGES) -> list[worker.Processed]:
        results = process_run(self, most)
        before, applied[0] = applied[0], applied[0] + len(results)
        if before == 0 < applied[0] or before // 250 < applied[0] // 250:
            mark(f"{applied[0]} messages applied")
        return results

    worker.Worker.process_run = counted  # type: ignore[method-assign]
    store = importer._store

    def stored(*args: object, **kwargs: object) -> object:
        result = store(*args, **kwargs)  # type: ignore[arg-type]
        mark(f"storing ended ({threading.current_thread().name})")
        return result

    importer._store = stored  # type: ignore[assignment]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--source", type=Path, default=None, help="a folder of .eml files")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-timeline-"))
    try:
        source = args.source or write_set(desk_mail(args.messages), work / "synth")
        config = write_config(work / "desk")
        count = len(list(source.rglob("*.eml")))
        print(f"{source}: {count} messages; load average {os.getloadavg()[0]:.1f}")
        STARTED[0] = began = time.perf_counter()
        # As `ticketd import` does (ticketd/commands.py): the forkserver's imports beside ours.
        from ingest.isolation import start_forkserver
        from ticketd.commands import PARSING_MODULE

        start_forkserver([PARSING_MODULE])
        from domain.config import load_config
        from ingest.importer import import_path
        from ticketd.state import open_state

        mark(f"imports ({time.perf_counter() - began:.2f} s)")
        watch_progress()
        state = open_state(load_config(config))
        state.isolate()
        mark("state opened")
        own_before, wall_before = os.times(), time.perf_counter()
        summary = import_path(state, source, acknowledge=False, process=True, progress=False)
        wall = time.perf_counter() - wall_before
        own = os.times()
        mark(f"import done: {summary}")
        child = state.isolation._child if state.isolation is not None else None
        child_cpu = cpu_of(child.pid) if child is not None and child.pid is not None else 0.0
        user, kernel = own.user - own_before.user, own.system - own_before.system
        print(
            f"import {wall:.2f} s wall: this process {user:.2f} s user + {kernel:.2f} s kernel"
            f" (writer and storing threads), the parsing process {child_cpu:.2f} s"
            " (since its last start)"
        )
        state.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":  # the forkserver imports this module: nothing may run then
    main()
    os._exit(0)  # the parsing process's pipe is closed; nothing is left to wait for
