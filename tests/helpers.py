"""Shared helpers for the tests: configurations on disk, free ports, mail builders."""

from __future__ import annotations

import socket
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import make_msgid
from pathlib import Path

from domain.config import Config, DeskConfig, load_config
from outbound.addresses import agent_reply_address
from storage import sealed_rows
from storage.db import Database
from storage.keyring import Keyring
from tests.dnsmasq import shared_nameserver

DESK = "destek@example.com"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_config(folder: Path, database: str | None = None, extra: str = "", **desk: str) -> Path:
    """A configuration file in `folder`; relay and listen ports are passed through `extra`."""
    lines = [
        "[desk]",
        f'name = "{desk.get("name", "Destek")}"',
        f'address = "{desk.get("address", DESK)}"',
        f'language = "{desk.get("language", "tr")}"',
        "",
        "[storage]",
        f'database = "{database or "sqlite:///var/ticketd.sqlite3"}"',
        'blobs = "var/blobs"',
        "",
    ]
    if "[smtp_in]" not in extra:
        lines += ["[smtp_in]", f'listen = "127.0.0.1:{free_port()}"', ""]
    if "[smtp_out]" not in extra:
        lines += ["[smtp_out]", 'maildir = "var/outbox"', ""]
    nameserver = None if "[dns]" in extra else shared_nameserver()
    if nameserver is not None:  # sender verification never asks the machine's resolver
        lines += ["[dns]", f'nameservers = ["{nameserver}"]', ""]
    path = folder / "ticketd.toml"
    path.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")
    return path


def make_config(folder: Path, database: str | None = None, extra: str = "") -> Config:
    return load_config(write_config(folder, database, extra))


def customer_mail(
    sender: str = "Ayşe Yılmaz <ayse@musteri.com.tr>",
    subject: str = "Para çekme talebim",
    body: str = "Para çekme talebim 3 gündür beklemede",
    to: str = DESK,
    message_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = to
    mail["Subject"] = subject
    mail["Message-ID"] = message_id or make_msgid(domain="musteri.com.tr")
    for name, value in (headers or {}).items():
        mail[name] = value
    mail.set_content(body)
    return mail.as_bytes(policy=SMTP)  # CRLF line ends, as SMTP clients send


def second_database(config: Config) -> Database:
    """An engine of its own on the desk's database, as a second daemon's open_state makes it:
    the outbox's bytes sealed and opened with the key file (storage/sealed_rows.py)."""
    db = Database(config.storage.database)
    sealed_rows.bind(db.engine, Keyring.open(config.kyc.key_file))
    return db


def forged_agent_reply(desk: DeskConfig, ref: str, subject: str) -> bytes:
    """A stranger's mail to the ticket's agent reply address: a security event, quarantined."""
    forged = EmailMessage()
    forged["From"] = "Sahte <mallory@evil.example>"
    forged["To"] = agent_reply_address(desk, ref)
    forged["Subject"] = subject
    forged.set_content("Hesabınız kapatıldı.")
    return forged.as_bytes()
