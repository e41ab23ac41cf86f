"""How long `ticketd ingest FILE` (the MTA pipe) takes, beside `python -c "import sqlalchemy"`.

Run from the repository root:

    .venv/bin/python bench/cli_startup.py [--rounds 15] [--imports 15]

Issue 19's goal: one `ticketd ingest` of a small message, into a database already at the newest
schema, in at most twice the start-up of an interpreter that imports SQLAlchemy, on the same
machine in the same run. The two (and a bare `python -c pass`) run interleaved, one after the
other for `--rounds` rounds, so load on the machine weighs on each alike; the figures are the
median and the fastest wall time of each. With `--imports N`, the N costliest top-level imports
of one more `ticketd ingest` (`python -X importtime`), to see where its time goes. The exit
status is 1 when an ingest did not exit 0, else 0 (the goal is printed, not asserted).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIG = """\
[desk]
name = "Destek"
address = "destek@example.com"
language = "tr"

[storage]
database = "sqlite:///var/ticketd.sqlite3"
blobs = "var/blobs"

[smtp_in]
listen = "127.0.0.1:2525"

[smtp_out]
maildir = "var/outbox"
"""

MESSAGE = (
    b"From: Ay\xc5\x9fe <ayse@musteri.com.tr>\r\nTo: destek@example.com\r\n"
    b"Subject: =?utf-8?q?Para_=C3=A7ekme_talebim?=\r\nMessage-ID: <bench@musteri.com.tr>\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
    + "Merhaba, dün yaptığım para çekme talebi hâlâ beklemede.\r\n".encode()
)


def ticketd_command() -> list[str]:
    """The installed `ticketd` script beside this interpreter, as an MTA runs it; else -m."""
    script = Path(sys.executable).with_name("ticketd")
    return [str(script)] if script.exists() else [sys.executable, "-m", "ticketd.cli"]


def timed(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, timeout=120)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)}: exit {done.returncode}: {done.stderr.decode()}")
    return elapsed


def measure(folder: Path, rounds: int) -> dict[str, list[float]]:
    config, message = folder / "ticketd.toml", folder / "message.eml"
    ingest = [*ticketd_command(), "--config", str(config), "ingest", str(message)]
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        'python -c "import sqlalchemy"': [sys.executable, "-c", "import sqlalchemy"],
        "ticketd ingest FILE": ingest,
    }
    timed(ingest, folder)  # the first makes the database and the key file
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(rounds):
        for name, command in commands.items():
            times[name].append(timed(command, folder))
    return times


def costliest_imports(folder: Path, count: int) -> list[tuple[int, str]]:
    """(cumulative microseconds, module) of the top-level imports of one ingest."""
    config, message = folder / "ticketd.toml", folder / "message.eml"
    command = [sys.executable, "-X", "importtime", "-m", "ticketd.cli", "--config", str(config)]
    done = subprocess.run(
        [*command, "ingest", str(message)], cwd=folder, capture_output=True, text=True, timeout=120
    )
    found = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line.removeprefix("import time:").split("|")
        if not name.startswith("  "):  # one space: imported by the command itself
            found.append((int(cumulative), name.strip()))
    return sorted(found, reverse=True)[:count]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--imports", type=int, default=0, metavar="N")
    options = parser.parse_args()
    repository = Path(__file__).resolve().parent.parent
    os.environ["PYTHONPATH"] = str(repository)
    with tempfile.TemporaryDirectory(prefix="ticketd-startup-") as name:
        folder = Path(name)
        (folder / "ticketd.toml").write_text(CONFIG, encoding="utf-8")
        (folder / "message.eml").write_bytes(MESSAGE)
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        times = measure(folder, options.rounds)
        for name, values in times.items():
            median, fastest = statistics.median(values), min(values)
            print(f"{name:32} median {median * 1000:6.0f} ms   fastest {fastest * 1000:6.0f} ms")
        ingest = statistics.median(times["ticketd ingest FILE"])
        floor = statistics.median(times['python -c "import sqlalchemy"'])
        verdict = "met" if ingest <= 2 * floor else "NOT met"
        print(f"ingest / import sqlalchemy: {ingest / floor:.2f} (goal <= 2: {verdict})")
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        if options.imports:
            print("costliest imports of one ingest (cumulative):")
            for micros, module in costliest_imports(folder, options.imports):
                print(f"  {micros / 1000:6.1f} ms  {module}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
