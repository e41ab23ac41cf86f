"""What unpacking a winmail.dat costs `parse_message`, next to the same message not unpacked.

A script, not a test: it prints figures and asserts nothing. Each row parses one message twice:
with its TNEF part as Outlook sends it (application/ms-tnef, winmail.dat: unpacked by
ingest/tnef.py) and, as the baseline, with the same bytes declared application/octet-stream
(kept as one attachment). The ratio is what the unpacking costs on this machine.

    .venv/bin/python bench/tnef_unpack.py             # corpus TNEFs, a large and a hostile one
    .venv/bin/python bench/tnef_unpack.py --repeat 5  # best of 5 (default 3)

Rows: every .tnef of the shared corpus (mimekit/tnef, TICKETD_CORPUS overrides the corpus path)
together; a large winmail.dat (20 files of 1 MB); a hostile one (4000 tiny attributes before one
8 MB file: tnefparse copies the rest of the data for each attribute, which is what ingest/tnef.py
bounds); and the same hostile one with 400 attributes (3.4 GB to copy: under the 4 GiB limit, so
it is unpacked: the worst a single winmail.dat of that size may cost).
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
import time
from collections.abc import Callable
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ingest.parsing import parse_message
from ingest.tnef import unpack
from tests.tnef_writer import TnefAttachment, write_tnef


def wrap(payload: bytes, unpacked: bool) -> bytes:
    mail = EmailMessage()
    mail["From"] = "musteri@example.com"
    mail["To"] = "destek@example.com"
    mail["Subject"] = "Belgeler"
    mail.set_content("Belgelerim ekte.")
    subtype, name = ("ms-tnef", "winmail.dat") if unpacked else ("octet-stream", "data.bin")
    mail.add_attachment(payload, maintype="application", subtype=subtype, filename=name)
    return mail.as_bytes(policy=SMTP)


def best(repeat: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def hostile(tiny: int) -> bytes:
    tnef = write_tnef([TnefAttachment(os.urandom(8 * 1024 * 1024), long_filename="big.bin")])
    # A message-level attribute of no meaning (attPriority, 2 bytes), repeated, after the header.
    filler = struct.pack("<BHHI", 1, 0x800D, 4, 2) + b"\x03\x00" + struct.pack("<H", 3)
    return tnef[:6] + filler * tiny + tnef[6:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    override = os.environ.get("TICKETD_CORPUS")
    corpus = Path(override) if override else Path(__file__).resolve().parents[2] / "shared/corpus"
    corpus_tnefs = sorted(corpus.glob("mimekit/tnef/*.tnef")) + sorted(
        corpus.glob("tnefparse/examples/*.tnef")
    )
    if not corpus_tnefs:
        print(f"no corpus at {corpus} (set TICKETD_CORPUS)", file=sys.stderr)
        return 1
    large = write_tnef(
        [TnefAttachment(os.urandom(1024 * 1024), long_filename=f"{n}.jpg") for n in range(20)]
    )
    rows: list[tuple[str, list[bytes]]] = [
        (f"corpus: {len(corpus_tnefs)} TNEF files", [p.read_bytes() for p in corpus_tnefs]),
        ("large: 20 files of 1 MB", [large]),
        ("hostile: 4000 attributes + 8 MB", [hostile(4000)]),
        ("hostile: 400 attributes + 8 MB", [hostile(400)]),
    ]
    print(f"python {sys.version.split()[0]}, load average {os.getloadavg()[0]:.2f}")
    print(f"{'row':36} {'MB':>6} {'unpacked':>9} {'baseline s':>11} {'unpack s':>9} {'ratio':>6}")
    for label, payloads in rows:
        size = sum(len(p) for p in payloads) / 1e6
        opened = sum(unpack(p) is not None for p in payloads)
        plain = [wrap(p, unpacked=False) for p in payloads]
        winmail = [wrap(p, unpacked=True) for p in payloads]
        base = best(args.repeat, lambda plain=plain: [parse_message(m) for m in plain])
        cost = best(args.repeat, lambda winmail=winmail: [parse_message(m) for m in winmail])
        print(
            f"{label:36} {size:6.1f} {opened:>4}/{len(payloads):<4} {base:11.3f} {cost:9.3f} "
            f"{cost / base:6.1f}"
        )
    print(f"load average {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
