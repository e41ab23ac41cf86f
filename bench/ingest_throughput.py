"""Ingest throughput: how fast ticketd turns mail into tickets, against bare parsing.

Run from the repository root:

    .venv/bin/python bench/ingest_throughput.py [--messages N] [--clients K] [--corpus [DIR]]

Every figure is measured in the same run on the same message set, so the ratios to bare parsing
say what ticketd's durability, database work and SMTP add on this machine. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import email
import email.policy
import io
import os
import pstats
import random
import re
import resource
import shutil
import signal
import smtplib
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, parseaddr
from pathlib import Path

from domain.config import load_config
from domain.refs import new_reference
from ingest.journal import Arrival
from ingest.parsing import parse_message
from ticketd.state import State, open_state

DESK = "destek@example.com"
PARSE_STDLIB = "parse: stdlib email (policy.default)"
PARSE_OURS = "parse: ingest.parsing.parse_message"
JOURNAL = "journal: Journal.accept (blob+fsync+row)"
PIPELINE = "pipeline: Worker.drain to tickets+outbox"
SMTP_INTAKE = "smtp: accepted with 250 (journaled)"
END_TO_END = "end to end: SMTP to committed tickets"
STAGES = (PARSE_STDLIB, PARSE_OURS, JOURNAL, PIPELINE, SMTP_INTAKE, END_TO_END)
DEFAULT_CORPUS = Path("/work/shared/corpus")
LOOPBACK = "127.0.0.1"


# --------------------------------------------------------------------------------------------
# The message set


@dataclass(frozen=True)
class Sample:
    raw: bytes  # CRLF line endings, as SMTP delivers them
    envelope_from: str
    origin: str  # "synthetic" or "corpus:<path>"


_TR_FIRST = ("Ayşe", "Mehmet", "Zeynep", "Ömer", "Gülşen", "Çağrı", "İbrahim", "Şule", "Emre")
_TR_LAST = ("Yılmaz", "Öztürk", "Kaya", "Çelik", "Şahin", "Doğan", "Arslan", "Güneş", "Aydın")
_EN_FIRST = ("Emily", "James", "Olivia", "Daniel", "Sophie", "Michael", "Hannah", "Thomas")
_EN_LAST = ("Clark", "Turner", "Hughes", "Wright", "Baker", "Foster", "Morgan", "Price")
_DOMAINS = ("musteri.com.tr", "gmail.com", "hotmail.com", "example.net", "outlook.com.tr")
_ASCII_FOLD = str.maketrans("çğıöşüÇĞİÖŞÜ", "cgiosuCGIOSU")

_TR_TOPICS = (
    ("Para çekme talebim", "Para çekme talebim 3 gündür beklemede, hâlâ hesabıma geçmedi."),
    ("Hesabım kilitlendi", "Merhaba, şifremi üç kez yanlış girdim ve hesabım kilitlendi."),
    ("Bonus yüklenmedi", "Yatırım yaptım ama hoş geldin bonusu hesabıma yüklenmedi."),
    ("Kimlik belgesi onayı", "Kimlik belgemi dün gönderdim, onay için ne kadar beklemeliyim?"),
    ("Yatırma işlemi görünmüyor", "Kredi kartımdan çekildi ama bakiyemde görünmüyor."),
    ("Şikâyet", "Canlı destekte kimse yanıt vermiyor, çok memnuniyetsizim."),
)
_EN_TOPICS = (
    ("Withdrawal still pending", "My withdrawal has been pending for three days now."),
    ("Cannot log in", "Hello, I reset my password twice and still cannot log in."),
    ("Deposit not credited", "I deposited yesterday but the money is not in my account."),
    ("Verification documents", "I uploaded my ID and a utility bill, please verify my account."),
    ("Bonus terms", "Can you explain the wagering requirements of the weekly bonus?"),
    ("Complaint about support", "I have been waiting for an answer for a week, this is not ok."),
)
_TR_EXTRA = (
    "Lütfen en kısa sürede dönüş yapın.",
    "Ekte dekontu gönderiyorum.",
    "Kullanıcı adım hesabımla aynı.",
    "Teşekkürler, iyi günler.",
)
_EN_EXTRA = (
    "Please get back to me as soon as possible.",
    "I attached the receipt.",
    "My username is the same as my email address.",
    "Thanks in advance.",
)


@dataclass(frozen=True)
class _Customer:
    name: str
    email: str
    turkish: bool


def _customers(rng: random.Random, count: int) -> list[_Customer]:
    people: list[_Customer] = []
    for index in range(count):
        turkish = rng.random() < 0.6
        first = rng.choice(_TR_FIRST if turkish else _EN_FIRST)
        last = rng.choice(_TR_LAST if turkish else _EN_LAST)
        local = f"{first}.{last}{index}".translate(_ASCII_FOLD).lower()
        people.append(_Customer(f"{first} {last}", f"{local}@{rng.choice(_DOMAINS)}", turkish))
    return people


def _attachment(rng: random.Random, mail: EmailMessage, turkish: bool) -> None:
    size = rng.randrange(2_000, 12_000)
    if rng.random() < 0.5:
        data = b"%PDF-1.4\n" + rng.randbytes(size)
        name = "dekont_ödeme.pdf" if turkish else "receipt.pdf"
        mail.add_attachment(data, maintype="application", subtype="pdf", filename=name)
    else:
        data = b"\x89PNG\r\n\x1a\n" + rng.randbytes(size)
        name = "kimlik_ön_yüz.png" if turkish else "id_front.png"
        mail.add_attachment(data, maintype="image", subtype="png", filename=name)


def _quote(parent: _Draft, turkish: bool) -> str:
    when = format_datetime(parent.date)
    if turkish:
        header = f"{when} tarihinde {parent.customer.name} <{parent.customer.email}> şunu yazdı:"
    else:
        header = f"On {when}, {parent.customer.name} <{parent.customer.email}> wrote:"
    quoted = "\n".join(f"> {line}" for line in parent.body.splitlines())
    return f"\n\n{header}\n{quoted}\n"


@dataclass(frozen=True)
class _Draft:
    customer: _Customer
    topic: str  # the subject of the conversation, without "Re:" or a reference
    body: str
    message_id: str
    references: tuple[str, ...]
    date: datetime


def synthetic_messages(count: int, seed: int) -> list[Sample]:
    """Customer mail: Turkish and English, plain and multipart, some follow-ups."""
    rng = random.Random(seed)
    people = _customers(rng, max(10, count // 4))
    drafts: list[_Draft] = []
    samples: list[Sample] = []
    start = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    for index in range(count):
        date = start + timedelta(seconds=37 * index)
        message_id = f"bench.{seed}.{index}@{rng.choice(_DOMAINS)}"
        parent = rng.choice(drafts) if drafts and rng.random() < 0.2 else None
        if parent is None:
            customer = rng.choice(people)
            topic, text = rng.choice(_TR_TOPICS if customer.turkish else _EN_TOPICS)
            extra = rng.choice(_TR_EXTRA if customer.turkish else _EN_EXTRA)
            subject, body = topic, f"{text}\n{extra}\n"
            references: tuple[str, ...] = ()
            in_reply_to: str | None = None
        else:
            customer = parent.customer
            topic = parent.topic
            subject = ("YNT: " if customer.turkish else "Re: ") + topic
            if rng.random() < 0.5:  # a ticket reference as mail clients keep it in the subject
                subject += f" [#{new_reference(rng.randrange)}]"
            extra = rng.choice(_TR_EXTRA if customer.turkish else _EN_EXTRA)
            body = extra + "\n" + _quote(parent, customer.turkish)
            references = (*parent.references, parent.message_id)
            in_reply_to = parent.message_id
        draft = _Draft(customer, topic, body, message_id, references, date)
        drafts.append(draft)

        mail = EmailMessage()
        mail["From"] = formataddr((customer.name, customer.email))
        mail["To"] = formataddr(("Destek", DESK))
        mail["Subject"] = subject
        mail["Date"] = format_datetime(date)
        mail["Message-ID"] = f"<{message_id}>"
        if in_reply_to:
            mail["In-Reply-To"] = f"<{in_reply_to}>"
            mail["References"] = " ".join(f"<{ref}>" for ref in references)
        charset = "utf-8"
        if customer.turkish and rng.random() < 0.3:
            charset = rng.choice(("iso-8859-9", "windows-1254"))  # Turkish Outlook and older
        mail.set_content(body, charset=charset)
        if rng.random() < 0.15:
            paragraphs = "".join(f"<p>{line}</p>" for line in body.splitlines() if line)
            mail.add_alternative(f"<html><body>{paragraphs}</body></html>", subtype="html")
        if rng.random() < 0.3:
            _attachment(rng, mail, customer.turkish)
        raw = mail.as_bytes(policy=email.policy.SMTP)
        samples.append(Sample(raw, customer.email, "synthetic"))
    return samples


def corpus_messages(folder: Path) -> list[Sample]:
    """The .eml files of the shared corpus, line endings made CRLF as SMTP would carry them."""
    samples: list[Sample] = []
    for path in sorted(folder.rglob("*.eml")):
        raw = re.sub(rb"\r\n|\r|\n", b"\r\n", path.read_bytes())
        head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii", "replace")
        match = re.search(r"^From:(.*(?:\r\n[ \t].*)*)", head, re.MULTILINE | re.IGNORECASE)
        address = parseaddr(match.group(1))[1] if match else ""
        if not address.isascii() or "@" not in address or " " in address:
            address = "corpus@example.net"
        samples.append(Sample(raw, address, f"corpus:{path.relative_to(folder)}"))
    return samples


# --------------------------------------------------------------------------------------------
# Results


@dataclass
class Row:
    stage: str
    messages: int
    seconds: float
    peak_rss_kib: int | None
    note: str = ""

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else float("inf")


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        rss = f", peak RSS {row.peak_rss_kib / 1024:.0f} MiB" if row.peak_rss_kib else ""
        print(
            f"  {row.stage}: {row.messages} messages in {row.seconds:.2f} s, "
            f"{row.rate:.1f} msg/s{rss}",
            flush=True,
        )

    def print_table(self) -> None:
        """Rows in pipeline order, rates also as a fraction of the two parsing baselines."""
        self.rows.sort(key=lambda row: STAGES.index(row.stage))
        base = next((r.rate for r in self.rows if r.stage == PARSE_STDLIB), None)
        ours = next((r.rate for r in self.rows if r.stage == PARSE_OURS), None)
        header = ("stage", "messages", "seconds", "msg/s", "÷ stdlib", "÷ parse_msg", "peak RSS")
        lines = [header]
        for row in self.rows:
            lines.append(
                (
                    row.stage,
                    str(row.messages),
                    f"{row.seconds:.3f}",
                    f"{row.rate:,.1f}",
                    f"{row.rate / base:.4f}" if base else "-",
                    f"{row.rate / ours:.4f}" if ours else "-",
                    f"{row.peak_rss_kib / 1024:.0f} MiB" if row.peak_rss_kib else "-",
                )
            )
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        print()
        for number, line in enumerate(lines):
            cells = [
                cell.ljust(width) if column == 0 else cell.rjust(width)
                for column, (cell, width) in enumerate(zip(line, widths, strict=True))
            ]
            print("  ".join(cells))
            if number == 0:
                print("  ".join("-" * width for width in widths))
        for row in self.rows:
            if row.note:
                print(f"  {row.stage}: {row.note}")
        for note in self.notes:
            print(f"note: {note}")


def percentiles(seconds: Sequence[float]) -> str:
    if not seconds:
        return "-"
    ordered = sorted(seconds)

    def at(fraction: float) -> str:
        return f"{ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000:.0f}"

    return f"p50 {at(0.5)} ms, p95 {at(0.95)} ms, max {ordered[-1] * 1000:.0f} ms"


def peak_rss_self() -> int:
    """Peak resident set size of this process so far, KiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


# --------------------------------------------------------------------------------------------
# Configuration and state


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def write_config(folder: Path, port: int) -> Path:
    """A configuration like tests/helpers.write_config: SQLite on disk, Maildir for outgoing."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "ticketd.toml"
    path.write_text(
        "\n".join(
            (
                "[desk]",
                'name = "Destek"',
                f'address = "{DESK}"',
                'language = "tr"',
                "",
                "[storage]",
                'database = "sqlite:///var/ticketd.sqlite3"',
                'blobs = "var/blobs"',
                "",
                "[smtp_in]",
                f'listen = "{LOOPBACK}:{port}"',
                "",
                "[smtp_out]",
                'maildir = "var/outbox"',
                "",
            )
        ),
        encoding="utf-8",
    )
    return path


def sqlite_path(folder: Path) -> Path:
    return folder / "var" / "ticketd.sqlite3"


def db_counts(database: Path) -> dict[str, int]:
    """Row counts straight from SQLite (read-only; WAL lets it read while the daemon writes)."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        counts: dict[str, int] = {}
        for state, number in connection.execute("SELECT state, count(*) FROM journal GROUP BY 1"):
            counts[f"journal:{state}"] = int(number)
        queries = {
            "tickets": "SELECT count(*) FROM tickets",
            "messages_in": "SELECT count(*) FROM messages WHERE direction = 'in'",
            "outbox": "SELECT count(*) FROM outbox",
            "outbox_sent": "SELECT count(*) FROM outbox WHERE state = 'sent'",
        }
        for name, query in queries.items():
            counts[name] = int(connection.execute(query).fetchone()[0])
        return counts
    finally:
        connection.close()


def journal_total(counts: dict[str, int]) -> int:
    return sum(v for k, v in counts.items() if k.startswith("journal:"))


def describe_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k.removeprefix('journal:')} {v}" for k, v in sorted(counts.items()) if v)


# --------------------------------------------------------------------------------------------
# Stages in this process


def stdlib_walk(raw: bytes) -> int:
    """Bare stdlib parsing: the modern policy, every leaf part decoded, the usual headers read."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    size = 0
    for name in ("From", "To", "Subject", "Message-ID", "In-Reply-To", "References"):
        with contextlib.suppress(Exception):  # corpus headers the modern policy cannot read
            size += len(str(message.get(name, "")))
    for part in message.walk():
        if part.is_multipart():
            continue
        try:
            content = part.get_content()
        except Exception:  # missing boundaries, unknown charsets: the corpus has them
            continue
        size += len(content) if isinstance(content, str | bytes) else 0
    return size


def best_of(
    repeat: int, samples: Sequence[Sample], parse: Callable[[bytes], object]
) -> tuple[float, list[str]]:
    """The fastest of `repeat` passes over the samples, and the samples the parser raised on."""
    best = float("inf")
    failures: list[str] = []
    for _ in range(repeat):
        failures = []
        started = time.perf_counter()
        for sample in samples:
            try:
                parse(sample.raw)
            except Exception as error:  # a benchmark reports a crash, it does not stop at it
                failures.append(f"{sample.origin}: {type(error).__name__}: {error}")
        best = min(best, time.perf_counter() - started)
    return best, failures


def failure_note(failures: Sequence[str]) -> str:
    if not failures:
        return ""
    return f"raised on {len(failures)} messages, e.g. {failures[0][:160]}"


@contextlib.contextmanager
def maybe_profile(enabled: bool, title: str) -> Iterator[None]:
    if not enabled:
        yield
        return
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        yield
    finally:
        profiler.disable()
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats(pstats.SortKey.CUMULATIVE).print_stats(25)
        print(f"\n--- cProfile: {title} (top 25 by cumulative time) ---")
        print("\n".join(out.getvalue().splitlines()[6:]))


def measure_durable_path(
    samples: Sequence[Sample], folder: Path, report: Report, profile: bool
) -> None:
    """Journal.accept for every message, then the worker drains the journal into tickets."""
    count = len(samples)
    state: State = open_state(load_config(write_config(folder, free_port())))
    try:
        print("journal and pipeline, SQLite on disk:", flush=True)
        journal = state.journal
        with maybe_profile(profile, "Journal.accept"):
            started = time.perf_counter()
            for sample in samples:
                journal.accept(
                    Arrival(
                        raw=sample.raw,
                        source="bench",
                        envelope_from=sample.envelope_from,
                        envelope_to=(DESK,),
                    )
                )
            seconds = time.perf_counter() - started
        report.add(
            Row(
                JOURNAL,
                count,
                seconds,
                peak_rss_self(),
                note=f"{seconds / max(count, 1) * 1000:.2f} ms per message",
            )
        )

        worker = state.worker
        with maybe_profile(profile, "Worker.drain"):
            started = time.perf_counter()
            results = worker.drain()
            seconds = time.perf_counter() - started
        counts = db_counts(sqlite_path(folder))
        report.add(
            Row(
                PIPELINE,
                len(results),
                seconds,
                peak_rss_self(),
                note=(
                    f"{seconds / max(len(results), 1) * 1000:.2f} ms per message; "
                    f"{describe_counts(counts)}"
                ),
            )
        )
        if len(results) != count:
            report.notes.append(f"pipeline processed {len(results)} of {count} messages")
    finally:
        state.close()


def measure_parsing(samples: Sequence[Sample], report: Report, repeat: int) -> None:
    """The baselines; run after the durable path so its peak RSS is not hidden behind theirs."""
    print(f"bare parsing, best of {repeat}:", flush=True)
    for stage, parse in ((PARSE_OURS, parse_message), (PARSE_STDLIB, stdlib_walk)):
        seconds, failures = best_of(repeat, samples, parse)
        report.add(Row(stage, len(samples), seconds, peak_rss_self(), failure_note(failures)))


# --------------------------------------------------------------------------------------------
# End to end: the daemon as a process, mail over SMTP


@dataclass
class ClientTally:
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)  # seconds per accepted transaction
    lock: threading.Lock = field(default_factory=threading.Lock)


def smtp_client(port: int, samples: Sequence[Sample], tally: ClientTally) -> None:
    """One connection (reopened when dropped) sending its share of the messages in turn."""
    client: smtplib.SMTP | None = None
    try:
        for sample in samples:
            for attempt in range(2):
                try:
                    if client is None:
                        client = smtplib.SMTP(LOOPBACK, port, timeout=120)
                        client.ehlo("bench.localhost")
                    started = time.perf_counter()
                    client.sendmail(sample.envelope_from, [DESK], sample.raw)
                    latency = time.perf_counter() - started
                    with tally.lock:
                        tally.accepted += 1
                        tally.latencies.append(latency)
                    break
                except smtplib.SMTPServerDisconnected:
                    client = None
                    if attempt:
                        with tally.lock:
                            tally.rejected["disconnected"] += 1
                except smtplib.SMTPResponseException as error:
                    with tally.lock:
                        tally.rejected[f"{error.smtp_code} {sample.origin}"] += 1
                    with contextlib.suppress(smtplib.SMTPException):
                        assert client is not None
                        client.rset()
                    break
                except smtplib.SMTPRecipientsRefused as error:
                    with tally.lock:
                        tally.rejected[f"refused {error.recipients}"] += 1
                    break
    finally:
        if client is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                client.quit()


def wait_for_port(port: int, process: subprocess.Popen[bytes], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"ticketd exited with {process.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"ticketd did not listen on {LOOPBACK}:{port} within {seconds:.0f} s")


@dataclass(frozen=True)
class ProcSample:
    cpu_seconds: float  # user + system, every thread
    peak_rss_kib: int  # VmHWM


def proc_sample(pid: int) -> ProcSample | None:
    """CPU time and peak RSS of a running process from /proc (Linux); None elsewhere.

    getrusage(RUSAGE_CHILDREN) would be wrong here: Linux charges a child with the memory its
    parent had when it forked, so the daemon would inherit this process's peak.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # fields[0] is field 3 (state) of proc(5)
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    hwm = [int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")]
    return ProcSample(ticks / os.sysconf("SC_CLK_TCK"), hwm[0] if hwm else 0)


def ticketd_command() -> str:
    beside = Path(sys.executable).parent / "ticketd"
    if beside.exists():
        return str(beside)
    found = shutil.which("ticketd")
    if found is None:
        raise RuntimeError("no ticketd executable beside the interpreter or on PATH")
    return found


def run_end_to_end(
    samples: Sequence[Sample], folder: Path, clients: int, report: Report, timeout: float
) -> None:
    port = free_port()
    config = write_config(folder, port)
    log_path = folder / "ticketd.log"
    print(f"end to end: ticketd run on {LOOPBACK}:{port}, {clients} SMTP clients:", flush=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [ticketd_command(), "--config", str(config), "run"],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=folder,
        )
    try:
        wait_for_port(port, process, 60.0)
        database = sqlite_path(folder)
        tally = ClientTally()
        threads = [
            threading.Thread(target=smtp_client, args=(port, samples[k::clients], tally))
            for k in range(clients)
        ]
        before = proc_sample(process.pid)
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        sent_at: float | None = None
        done_at: float | None = None
        counts: dict[str, int] = {}
        while time.perf_counter() - started < timeout:
            if sent_at is None and not any(thread.is_alive() for thread in threads):
                sent_at = time.perf_counter() - started
            counts = db_counts(database)
            settled = sent_at is not None and counts.get("journal:pending", 0) == 0
            if settled and journal_total(counts) >= tally.accepted:
                done_at = time.perf_counter() - started
                break
            if process.poll() is not None:
                break
            time.sleep(0.05)
        after = proc_sample(process.pid)
        for thread in threads:
            thread.join(timeout=5)

        if before is not None and after is not None:
            cpu = after.cpu_seconds - before.cpu_seconds
            wall = done_at or (time.perf_counter() - started)
            report.notes.append(
                f"ticketd used {cpu:.1f} s CPU in {wall:.1f} s ({cpu / wall:.0%} of one core), "
                f"{cpu / max(tally.accepted, 1) * 1000:.1f} ms CPU per message; "
                f"peak RSS {after.peak_rss_kib / 1024:.0f} MiB"
            )
            daemon_rss: int | None = after.peak_rss_kib
        else:
            daemon_rss = None
        if tally.rejected:
            top = ", ".join(f"{key}: {n}" for key, n in tally.rejected.most_common(5))
            report.notes.append(f"SMTP rejected {sum(tally.rejected.values())} messages ({top})")
        if sent_at is not None:
            report.add(
                Row(
                    SMTP_INTAKE,
                    tally.accepted,
                    sent_at,
                    daemon_rss,
                    note=(
                        f"{clients} client threads, one connection each; "
                        f"MAIL..250 latency {percentiles(tally.latencies)}"
                    ),
                )
            )
        if done_at is None:
            report.notes.append(
                f"end to end did not settle within {timeout:.0f} s: {describe_counts(counts)}"
            )
        else:
            report.add(
                Row(
                    END_TO_END,
                    tally.accepted,
                    done_at,
                    daemon_rss,
                    note=describe_counts(counts),
                )
            )
            synthetic = sum(1 for sample in samples if sample.origin == "synthetic")
            if counts.get("messages_in", 0) < synthetic:
                report.notes.append(
                    f"only {counts.get('messages_in', 0)} ticket messages for "
                    f"{synthetic} synthetic customer messages"
                )
    finally:
        stopped = time.perf_counter()
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
            report.notes.append("ticketd ignored SIGTERM for 60 s and was killed")
        stop_seconds = time.perf_counter() - stopped
    status = "ok" if code == 0 else "FAILED"
    report.notes.append(
        f"ticketd exit status after SIGTERM: {code} ({status}), stopped in {stop_seconds:.2f} s"
    )
    if code != 0:
        tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-20:]
        report.notes.append("ticketd log tail:\n    " + "\n    ".join(tail))


# --------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=500, help="synthetic messages (500)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent SMTP clients (4)")
    parser.add_argument(
        "--corpus",
        nargs="?",
        type=Path,
        const=DEFAULT_CORPUS,
        default=None,
        help=f"also send the .eml files of DIR (default {DEFAULT_CORPUS}) when present",
    )
    parser.add_argument("--seed", type=int, default=2026, help="seed of the message set")
    parser.add_argument("--repeat", type=int, default=3, help="bare parsing: best of N runs (3)")
    parser.add_argument("--timeout", type=float, default=300.0, help="end to end limit, seconds")
    parser.add_argument("--no-smtp", action="store_true", help="skip the end to end stage")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="cProfile the journal and pipeline stages (their figures then include its overhead)",
    )
    parser.add_argument("--workdir", type=Path, help="where the temporary state goes ($TMPDIR)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary state")
    args = parser.parse_args(argv)
    if args.messages < 0 or args.clients < 1 or args.repeat < 1:
        parser.error("--messages must be at least 0, --clients and --repeat at least 1")
    return args


def code_state() -> str:
    """The commit measured and whether the working tree differed from it."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "code: not a git checkout"
    return f"code: {commit}{' with uncommitted changes' if dirty else ''}"


def load_text() -> str:
    """Other work on the machine skews every figure; the load average shows it."""
    with contextlib.suppress(OSError):
        return " ".join(f"{value:.2f}" for value in os.getloadavg())
    return "unknown"


def filesystem_of(path: Path) -> str:
    """The mount holding `path`, so a reader knows whether fsync reached a disk."""
    best = ("?", "?")
    best_length = -1
    with contextlib.suppress(OSError), open("/proc/mounts", encoding="utf-8") as mounts:
        for line in mounts:
            fields = line.split()
            if (
                len(fields) >= 3
                and str(path).startswith(fields[1])
                and len(fields[1]) > best_length
            ):
                best, best_length = (fields[0], fields[2]), len(fields[1])
    return f"{best[1]} on {best[0]}"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    samples = synthetic_messages(args.messages, args.seed)
    if args.corpus is not None:
        if args.corpus.is_dir():
            samples += corpus_messages(args.corpus)
        else:
            print(f"no corpus at {args.corpus}; synthetic messages only", file=sys.stderr)
    if not samples:
        print("no messages to measure", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="ticketd-bench-", dir=args.workdir)).resolve()
    total_bytes = sum(len(sample.raw) for sample in samples)
    origins = Counter(sample.origin.partition(":")[0] for sample in samples)
    print(
        f"{len(samples)} messages ({', '.join(f'{n} {k}' for k, n in origins.items())}), "
        f"{total_bytes / 1024:.0f} KiB; Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs; state in {workdir} ({filesystem_of(workdir)})",
        flush=True,
    )
    print(f"{code_state()}; load average {load_text()}", flush=True)
    report = Report()
    try:
        measure_durable_path(samples, workdir / "inprocess", report, args.profile)
        measure_parsing(samples, report, args.repeat)
        if not args.no_smtp:
            run_end_to_end(samples, workdir / "daemon", args.clients, report, args.timeout)
    except RuntimeError as error:  # the daemon did not start: say so under the table
        report.notes.append(f"FAILED: {error}")
    finally:
        report.notes.append(f"load average at the end {load_text()} on {os.cpu_count()} CPUs")
        report.print_table()
        if args.keep:
            print(f"state kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    failed = any("FAILED" in note or "did not settle" in note for note in report.notes)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
