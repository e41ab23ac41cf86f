"""Issue 14: a person's mail is never lost; only machine mail ends without a ticket, with its
reason in `ticketd journal list`. Everything through the real interface: smtplib to the daemon
process, `ticketd ingest`, the CLI; mail written the way the real senders write it."""

from __future__ import annotations

import contextlib
import io
import os
import smtplib
import subprocess
import sys
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path
from typing import Any

import pytest

from storage.keyring import read_keyring
from tests.daemon import DaemonProcess, Relay, daemon_config
from tests.helpers import DESK, customer_mail
from tests.test_corpus import corpus_root
from ticketd.cli import COMMANDS, main
from ticketd.commands import Arg, OneOf, Opens, every_command

pytestmark = pytest.mark.slow


def send(port: int, raw: bytes, sender: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.sendmail(sender, [DESK], raw)


def journal(daemon: DaemonProcess, count: int) -> list[dict[str, Any]]:
    """The journal once `count` messages were received and none is pending."""

    def settled() -> list[dict[str, Any]] | None:
        rows: list[dict[str, Any]] = daemon.cli("journal", "list", "--json")
        done = len(rows) >= count and all(r["state"] != "pending" for r in rows)
        return rows if done else None

    rows: list[dict[str, Any]] = daemon.wait_until(settled, what=f"{count} messages processed")
    return rows


def ticket_of(daemon: DaemonProcess, row: dict[str, Any]) -> dict[str, Any]:
    assert row["state"] == "done" and row["ticket"], row
    shown: dict[str, Any] = daemon.cli("tickets", "show", row["ticket"], "--json")
    return shown


def ingest(config: Path, raw: bytes, *options: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "ticketd.cli", "--config", str(config), "ingest", *options],
        input=raw,
        check=True,
        capture_output=True,
        env=os.environ,
    )


def _dsn(original_id: str, failed: str) -> bytes:
    """A Postfix delivery status notification about one of our mails."""
    mail = EmailMessage()
    mail["From"] = "Mail Delivery System <MAILER-DAEMON@mx.musteri.com.tr>"
    mail["To"] = DESK
    mail["Subject"] = "Undelivered Mail Returned to Sender"
    mail["Message-ID"] = "<20261201.dsn@mx.musteri.com.tr>"
    mail["Auto-Submitted"] = "auto-replied"
    mail.set_content("This is the mail system at host mx.musteri.com.tr.\n")
    status = EmailMessage()
    status.set_content(
        f"Reporting-MTA: dns; mx.musteri.com.tr\n\nFinal-Recipient: rfc822; {failed}\n"
        "Action: failed\nStatus: 5.1.1\n"
    )
    mail.make_mixed()
    mail.attach(status)
    headers = EmailMessage()
    headers.set_content(f"From: {DESK}\nTo: {failed}\nMessage-ID: {original_id}\n")
    mail.attach(headers)
    boundary = mail.get_boundary()
    mail.replace_header(
        "Content-Type", f'multipart/report; report-type=delivery-status; boundary="{boundary}"'
    )
    return mail.as_bytes(policy=SMTP_POLICY)


def test_the_null_sender_is_accepted_and_bounces_reach_the_bounce_handling(
    daemon: DaemonProcess, relay: Relay
) -> None:
    send(daemon.port, customer_mail(), "ayse@musteri.com.tr")
    ack = relay.wait_for(1)[0]
    with smtplib.SMTP("127.0.0.1", daemon.port, timeout=10) as client:
        client.ehlo()
        assert client.mail("")[0] == 250  # MAIL FROM:<>
        code, reply = client.rcpt(DESK)
        assert code == 250, reply  # was 503 "need MAIL command"
        client.rset()
    # Over SMTP as the remote MTA sends it: a DSN about our acknowledgement, null sender.
    send(daemon.port, _dsn(str(ack["Message-ID"]), "ayse@musteri.com.tr"), "")
    # And a real bounce from another project's corpus, about mail that is not ours.
    real = (corpus_root() / "flufl.bounce/data/postfix_01.txt").read_bytes()
    send(daemon.port, real, "")
    first, dsn, other = journal(daemon, 3)
    assert dsn["envelope_from"] == "<>" and other["envelope_from"] == "<>"
    # The DSN reached the bounce handling: a note on the ticket, the mail marked failed.
    assert dsn["state"] == "done" and dsn["ticket"] == first["ticket"]
    notes = [m for m in ticket_of(daemon, first)["messages"] if m["kind"] == "system"]
    assert notes and "failed permanently" in notes[-1]["text"]
    [outbox] = daemon.cli("outbox", "list", "--json")
    assert outbox["state"] == "failed"
    assert other["state"] == "ignored" and other["reason"].startswith("bounce:"), other
    assert len(relay.handler.messages()) == 1  # nothing answered either bounce


def _mail(headers: list[tuple[str, str]], body: str, charset: str = "utf-8") -> bytes:
    """A message written header by header, as a web mailer or an old client writes it."""
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    text = f"{head}To: {DESK}\r\nMIME-Version: 1.0\r\n"
    text += f"Content-Type: text/plain; charset={charset}\r\n\r\n{body}\r\n"
    return text.encode(charset)


# (From and other headers as real senders write them, the envelope sender, the customer found)
SENDERS = [
    (  # a web mailer: the whole value, name and address, in one encoded-word
        [("From", "=?utf-8?b?R8O8bMWfZW4gScWfxLFrIDxndWxzZW4wQG11c3RlcmkuZXhhbXBsZT4=?=")],
        "gulsen0@musteri.example",
        ("gulsen0@musteri.example", "Gülşen Işık"),
    ),
    (  # Turkish Outlook: raw windows-1254 bytes, no charset declared in the header
        [("From", "Gülşen Işık <gulsen1@musteri.example>")],
        "bounces+x@mailer.example",
        ("gulsen1@musteri.example", "Gülşen Işık"),
    ),
    (  # a script: no angle brackets around the address
        [("From", "Gülşen Işık gulsen2@musteri.example")],
        "gulsen2@musteri.example",
        ("gulsen2@musteri.example", "Gülşen Işık"),
    ),
    (  # several authors: the first is the sender
        [("From", "gulsen3@musteri.example, Esi <esi3@musteri.example>")],
        "gulsen3@musteri.example",
        ("gulsen3@musteri.example", None),
    ),
    (  # an unreadable From, a Sender that holds the address
        [("From", "undisclosed-recipients:;"), ("Sender", "Gülşen <gulsen4@musteri.example>")],
        "gulsen4@musteri.example",
        ("gulsen4@musteri.example", "Gülşen"),
    ),
    (  # no From at all: the envelope sender
        [("Subject", "Hesabım")],
        "gulsen5@musteri.example",
        ("gulsen5@musteri.example", None),
    ),
]


def test_the_sender_is_found_as_a_careful_parser_finds_it(
    daemon: DaemonProcess, relay: Relay
) -> None:
    for index, (headers, envelope, _) in enumerate(SENDERS):
        charset = "windows-1254" if index == 1 else "utf-8"
        raw = _mail(
            [*headers, ("Subject", f"Talep {index}"), ("Message-ID", f"<s{index}@m.example>")],
            f"Merhaba, {index}. talebim hakkında yazıyorum, hesabıma giremiyorum.",
            charset,
        )
        send(daemon.port, raw, envelope)
    # And a message with no usable sender anywhere, through an MTA pipe with no envelope.
    ingest(daemon.config_path, _mail([("Subject", "Kimsiz")], "Adressiz bir talep."))
    rows = journal(daemon, len(SENDERS) + 1)
    for row, (_, _, (customer, name)) in zip(rows, SENDERS, strict=False):
        ticket = ticket_of(daemon, row)
        assert ticket["customer"] == customer, (row, ticket["customer"])
        if name is not None:
            assert ticket["customer_name"] == name, ticket
        assert "acknowledged" in row["reason"], row
    acknowledged = {str(m["To"]).rpartition("<")[2].rstrip(">") for m in relay.wait_for(6)}
    assert acknowledged == {customer for _, _, (customer, _) in SENDERS}
    nobody = rows[-1]
    assert (
        nobody["state"] == "done"
        and "no usable sender address: not acknowledged" in (nobody["reason"])
    ), nobody
    assert len(relay.handler.messages()) == len(SENDERS)


def test_an_exact_copy_lands_once_and_a_reused_message_id_lands_as_its_own_message(
    daemon: DaemonProcess, relay: Relay
) -> None:
    # Issue 22.13: no Message-ID; the same bytes sent twice (a retry after a lost 250). Our
    # own Received and Return-Path differ between the two, what the sender sent does not.
    no_id = _mail([("From", "ayse@musteri.com.tr"), ("Subject", "Para")], "Para çekme talebim.")
    send(daemon.port, no_id, "ayse@musteri.com.tr")
    send(daemon.port, no_id, "ayse@musteri.com.tr")
    # A web form that gives every mail the same Message-ID: different people, different text.
    form = [("Message-ID", "<form@site.example>"), ("Subject", "İletişim formu")]
    first = _mail([("From", "Ali <ali@musteri.com.tr>"), *form], "Bonusum yüklenmedi.")
    second = _mail([("From", "Veli <veli@musteri.com.tr>"), *form], "Şifremi unuttum.")
    send(daemon.port, first, "ali@musteri.com.tr")
    send(daemon.port, second, "veli@musteri.com.tr")
    # The same message over SMTP and through the MTA pipe (LF line ends, its trace headers).
    both = customer_mail(sender="Esra <esra@musteri.com.tr>", message_id="<both@m.example>")
    send(daemon.port, both, "esra@musteri.com.tr")
    piped = b"Delivered-To: destek@example.com\nX-Original-To: destek@example.com\n"
    piped += b"Received: from mx1 by mx2; Tue, 1 Dec 2026 10:00:00 +0000\n"
    ingest(daemon.config_path, piped + both.replace(b"\r\n", b"\n"), "--sender", "esra@m.example")
    rows = journal(daemon, 6)
    states = [(r["state"], (r["reason"] or "").split(":")[0]) for r in rows]
    assert states[1] == ("ignored", "duplicate") and states[5] == ("ignored", "duplicate"), states
    assert [s for s, _ in states] == ["done", "ignored", "done", "done", "done", "ignored"]
    assert rows[1]["reason"].startswith("duplicate: an exact copy of message")
    ali, veli = ticket_of(daemon, rows[2]), ticket_of(daemon, rows[3])
    assert ali["ref"] != veli["ref"] and veli["customer"] == "veli@musteri.com.tr"
    assert veli["messages"][0]["text"] == "Şifremi unuttum."
    [note] = [m for m in veli["messages"] if m["kind"] == "system"]
    assert "<form@site.example>" in note["text"] and ali["ref"] in note["text"]
    # One message each, each acknowledged once.
    assert len(relay.wait_for(4)) == 4
    assert [m["direction"] for m in ticket_of(daemon, rows[0])["messages"]] == ["in", "out"]


def _no_answer_mail() -> list[tuple[str, bytes, str]]:
    """Mail a person's request arrives in that nothing automatic may answer."""
    noreply = _mail(
        [("From", "Ödeme <noreply@odeme.example>"), ("Subject", "Ödeme iadesi başarısız")],
        "Müşterimiz ayse@musteri.com.tr için iade yapılamadı; lütfen inceleyin.",
    )
    group = _mail(
        [
            ("From", "Ayşe <ayse@musteri.com.tr>"),
            ("Subject", "[destek-grubu] Hesabım kilitlendi"),
            ("List-Id", "<destek-grubu.googlegroups.com>"),
            ("List-Unsubscribe", "<mailto:googlegroups-manage+1+unsubscribe@googlegroups.com>"),
            ("Precedence", "list"),
        ],
        "Hesabım kilitlendi, yardım eder misiniz?",
    )
    bulk = _mail(
        [
            ("From", "Partner <partner@ortak.example>"),
            ("Subject", "Aylık mutabakat"),
            ("Precedence", "bulk"),
        ],
        "Aylık mutabakat tablosu ektedir.",
    )
    return [
        ("noreply", noreply, "bounces@odeme.example"),
        ("list", group, "destek-grubu+bncBD@googlegroups.com"),
        ("bulk", bulk, "partner@ortak.example"),
    ]


def test_system_list_and_bulk_mail_becomes_a_ticket_without_an_answer(
    daemon: DaemonProcess, relay: Relay
) -> None:
    for _, raw, envelope in _no_answer_mail():
        send(daemon.port, raw, envelope)
    rows = journal(daemon, 3)
    assert [r["state"] for r in rows] == ["done", "done", "done"], rows
    assert all("not acknowledged" in r["reason"] for r in rows), rows
    assert daemon.cli("outbox", "list", "--json") == []
    assert len(daemon.cli("tickets", "list", "--json")) == 3


def test_an_admin_can_ignore_list_and_bulk_mail(tmp_path: Path, relay: Relay) -> None:
    extra = '[classify]\nlists = "ignore"\nbulk = "ignore"\n'
    daemon = DaemonProcess(daemon_config(tmp_path, relay.port, extra=extra))
    daemon.start()
    try:
        for _, raw, envelope in _no_answer_mail():
            send(daemon.port, raw, envelope)
        rows = journal(daemon, 3)
        assert rows[0]["state"] == "done"  # a no-reply sender is not a list: still a ticket
        assert rows[1]["state"] == rows[2]["state"] == "ignored"
        assert rows[1]["reason"].endswith("(classify.lists = ignore)"), rows[1]
        assert rows[2]["reason"] == "bulk: Precedence: bulk (classify.bulk = ignore)", rows[2]
        ignored = daemon.cli("journal", "list", "--state", "ignored", "--json")
        assert [r["id"] for r in ignored] == [rows[1]["id"], rows[2]["id"]]
    finally:
        assert daemon.stop() == 0


READ_ONLY = [
    ("tickets", "list"),
    ("tickets", "show", "7KQM-X3P9"),
    ("stats",),
    ("journal", "list"),
    ("quarantine", "list"),
    ("outbox", "list"),
    ("sla", "report"),
    ("survey", "report"),
    ("kyc", "list", "7KQM-X3P9"),
    ("kyc", "audit"),
    ("kyc", "status"),
    ("blocked", "list"),
]


def declared_read_only() -> list[tuple[str, ...]]:
    """Every command the table of ticketd/cli.py declares `Opens.READ`, a value for each
    positional it needs."""
    return [
        (*words, *("7KQM-X3P9" for arg in command.arguments if _needed_positional(arg)))
        for words, command in every_command(COMMANDS)
        if command.opens is Opens.READ
    ]


def _needed_positional(argument: Arg | OneOf) -> bool:
    return isinstance(argument, Arg) and argument.name[0] != "-" and not argument.nargs


def test_read_only_commands_against_a_missing_database_create_nothing(tmp_path: Path) -> None:
    config = daemon_config(tmp_path, None)
    before = sorted(tmp_path.rglob("*"))

    def run(*args: str) -> tuple[int, str, str]:
        """The command line's entry point, in this process (each command is a separate run)."""
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["--config", str(config), *args])
        return code, out.getvalue(), err.getvalue()

    declared = declared_read_only()
    assert set(READ_ONLY) <= set(declared)  # none of them may start creating what it reads
    for command in declared:
        code, out, err = run(*command)
        assert code == 1, (command, out, err)
        assert "no database at" in err and "ticketd.sqlite3" in err, (command, err)
        assert "Traceback" not in err + out
    code, out, _ = run("health")
    assert code == 2, out
    assert "no database at" in out and "SELECT" not in out
    # No database, no blob folder, no key file. (Reading the configuration makes the desk
    # secret beside the key file on first use, for every command: domain/config_secret.py.)
    made = {p.relative_to(tmp_path).as_posix() for p in set(tmp_path.rglob("*")) - set(before)}
    assert made <= {"var", "var/desk.secret"}, made


def test_a_daemon_whose_key_file_lacks_the_databases_keys_refuses_to_start(
    tmp_path: Path, relay: Relay
) -> None:
    first_folder, second_folder = tmp_path / "a", tmp_path / "b"
    first_folder.mkdir()
    second_folder.mkdir()
    first = DaemonProcess(daemon_config(first_folder, relay.port))
    first.start()
    try:
        send(first.port, customer_mail(), "ayse@musteri.com.tr")
        journal(first, 1)
    finally:
        assert first.stop() == 0
    # A second daemon on the same database that created its own key file, as each of three
    # daemons on one PostgreSQL did with its own var/kyc.key.
    database = f"sqlite:///{first_folder}/var/ticketd.sqlite3"
    config = daemon_config(second_folder, relay.port).read_text(encoding="utf-8")
    config = config.replace('"sqlite:///var/ticketd.sqlite3"', f'"{database}"')
    second_config = second_folder / "ticketd.toml"
    second_config.write_text(config, encoding="utf-8")
    own_key = second_folder / "var" / "kyc.key"
    run = [sys.executable, "-m", "ticketd.cli", "--config", str(second_config), "run"]
    refused = subprocess.run(run, capture_output=True, text=True, timeout=60)
    first_key = read_keyring(first_folder / "var" / "kyc.key")[0].write
    assert refused.returncode == 78, refused
    assert first_key in refused.stderr and str(own_key) in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr
    # Given the same key file as the first, it starts and takes the mail.
    own_key.write_bytes((first_folder / "var" / "kyc.key").read_bytes())
    second = DaemonProcess(second_config)
    second.start()
    try:
        send(second.port, customer_mail(subject="Bonus", body="Bonusum yok."), "ali@m.example")
        assert [r["state"] for r in journal(second, 2)] == ["done", "done"]
    finally:
        assert second.stop() == 0


def test_a_rotated_key_is_registered_so_an_old_copy_of_the_key_file_refuses_to_start(
    tmp_path: Path,
) -> None:
    first_folder, second_folder = tmp_path / "a", tmp_path / "b"
    first_folder.mkdir()
    second_folder.mkdir()
    first = daemon_config(first_folder, None)
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        assert main(["--config", str(first), "kyc", "keys"]) == 0  # makes the key file
        old_key = (first_folder / "var" / "kyc.key").read_bytes()
        # Nothing is in the journal: only the registry knows the new key.
        assert main(["--config", str(first), "kyc", "rotate-key"]) == 0
    new_key = read_keyring(first_folder / "var" / "kyc.key")[0].write
    database = f"sqlite:///{first_folder}/var/ticketd.sqlite3"
    config = daemon_config(second_folder, None).read_text(encoding="utf-8")
    second = second_folder / "ticketd.toml"
    second.write_text(config.replace('"sqlite:///var/ticketd.sqlite3"', f'"{database}"'))
    (second_folder / "var").mkdir()
    stale = second_folder / "var" / "kyc.key"
    stale.write_bytes(old_key)  # a copy taken before the rotation
    stale.chmod(0o600)
    run = [sys.executable, "-m", "ticketd.cli", "--config", str(second), "run"]
    refused = subprocess.run(run, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 78 and new_key in refused.stderr, refused
