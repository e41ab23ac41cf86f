"""Issue 10, STARTTLS on the SMTP listener with ordinary clients: Python's smtplib and
`openssl s_client -starttls smtp`, both checking the certificate against the test CA; require_tls;
the connection limits across STARTTLS; the certificate re-read on SIGHUP; bad files named."""

from __future__ import annotations

import os
import shutil
import signal
import smtplib
import ssl
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from domain.config import ConfigError, load_config, load_listener_config
from domain.tls_files import describe
from storage.models import JournalEntry
from tests.daemon import DaemonProcess, Relay, Start, daemon_config, make_certificate
from tests.helpers import DESK, customer_mail, free_port
from ticketd.state import open_state


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    folder = tmp_path / "tls"
    folder.mkdir()
    return make_certificate(folder)


@pytest.fixture
def start(start: Start, certificate: tuple[Path, Path]) -> Start:
    """The daemon with STARTTLS (the `certificate` fixture) and these other `[smtp_in]` lines:
    the plugin's `start` (tests/daemon.py), with the certificate added."""
    cert, key = certificate
    return lambda smtp_in: start(f'tls_cert = "{cert}"\ntls_key = "{key}"\n{smtp_in}')


def _trusting(cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))


def _journaled(daemon: DaemonProcess) -> list[bytes]:
    state = open_state(load_config(daemon.config_path), migrate=False)
    try:
        with state.db.transaction() as session:
            keys = session.scalars(select(JournalEntry.blob_key).order_by(JournalEntry.id)).all()
        return [state.blobs.get(key) for key in keys]
    finally:
        state.close()


pytestmark = pytest.mark.slow


def test_smtplib_delivers_over_starttls_checking_the_certificate(
    start: Start, relay: Relay, certificate: tuple[Path, Path]
) -> None:
    daemon = start("")
    with smtplib.SMTP("127.0.0.1", daemon.port, timeout=10) as client:
        client.ehlo("client.example")
        assert client.has_extn("starttls")
        assert client.starttls(context=_trusting(certificate[0]))[0] == 220
        client.ehlo("client.example")
        assert not client.has_extn("starttls")  # offered once, not inside TLS again
        assert isinstance(client.sock, ssl.SSLSocket)
        assert client.sock.version() in ("TLSv1.2", "TLSv1.3")
        client.sendmail("ayse@musteri.com.tr", [DESK], customer_mail(message_id="<tls-1@x>"))
    relay.wait_for(1)  # the acknowledgement: the mail became a ticket
    assert len(daemon.cli("tickets", "list", "--json")) == 1
    # The trace header records that the message came over TLS (RFC 3848).
    assert b"(ticketd) with ESMTPS;" in _journaled(daemon)[0]


def test_openssl_s_client_delivers_over_starttls(
    start: Start, relay: Relay, certificate: tuple[Path, Path]
) -> None:
    daemon = start("require_tls = true")
    raw = customer_mail(subject="Over openssl", message_id="<tls-openssl@x>")
    session = (
        b"EHLO client.example\nMAIL FROM:<ayse@musteri.com.tr>\nRCPT TO:<"
        + DESK.encode()
        + b">\nDATA\n"
        + raw.replace(b"\r\n", b"\n")
        + b"\n.\nQUIT\n"
    )
    result = subprocess.run(
        [
            "openssl",
            "s_client",
            "-starttls",
            "smtp",
            "-connect",
            f"127.0.0.1:{daemon.port}",
            "-CAfile",
            str(certificate[0]),
            "-verify_return_error",
            "-verify_ip",
            "127.0.0.1",
            "-crlf",
            "-quiet",  # no session dump; implies -ign_eof: wait for the server to close
        ],
        input=session,
        capture_output=True,
        timeout=60,
        check=False,
    )
    output = result.stdout.decode(errors="replace")
    assert result.returncode == 0, output + result.stderr.decode(errors="replace")
    assert "250 2.0.0 Ok: queued as" in output, output
    assert "221" in output
    relay.wait_for(1)
    assert [t["subject"] for t in daemon.cli("tickets", "list", "--json")] == ["Over openssl"]


def test_require_tls_refuses_mail_before_starttls(
    start: Start, relay: Relay, certificate: tuple[Path, Path]
) -> None:
    daemon = start("require_tls = true")
    with smtplib.SMTP("127.0.0.1", daemon.port, timeout=10) as client:
        client.ehlo("client.example")
        code, reply = client.mail("ayse@musteri.com.tr")
        assert (code, reply[:5]) == (530, b"5.7.0")
        assert client.noop()[0] == 250  # the session goes on: the client may still STARTTLS
        client.starttls(context=_trusting(certificate[0]))
        client.ehlo("client.example")
        client.sendmail("ayse@musteri.com.tr", [DESK], customer_mail(message_id="<tls-2@x>"))
    relay.wait_for(1)


def test_a_starttls_session_counts_once_against_the_connection_limit(
    start: Start, certificate: tuple[Path, Path]
) -> None:
    daemon = start("max_connections_per_client = 1")
    # The start-up probe's connection may still hold the slot for a moment.
    deadline = time.monotonic() + 5
    while True:
        try:
            first = smtplib.SMTP("127.0.0.1", daemon.port, timeout=10)
            break
        except smtplib.SMTPConnectError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    with first:
        first.starttls(context=_trusting(certificate[0]))
        first.ehlo("client.example")
        assert first.noop()[0] == 250  # not closed as a second connection over its share
        with pytest.raises(smtplib.SMTPConnectError) as refused:
            smtplib.SMTP("127.0.0.1", daemon.port, timeout=10)
        assert refused.value.smtp_code == 421
    # Its slot is given back once, when the TLS session ends: one new client gets in.
    deadline = time.monotonic() + 5
    while True:
        try:
            again = smtplib.SMTP("127.0.0.1", daemon.port, timeout=10)
            break
        except smtplib.SMTPConnectError:
            assert time.monotonic() < deadline, "the slot of the TLS session was not released"
            time.sleep(0.05)
    with again:
        assert again.noop()[0] == 250
        # Released once, not twice: still only one slot for this address.
        with pytest.raises(smtplib.SMTPConnectError):
            smtplib.SMTP("127.0.0.1", daemon.port, timeout=10)


def _served_certificate(port: int, cert: Path) -> bytes:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.starttls(context=_trusting(cert))
        assert isinstance(client.sock, ssl.SSLSocket)
        served = client.sock.getpeercert(binary_form=True)
    assert served is not None
    return served


def _der(cert: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(cert.read_text())


def test_sighup_reads_a_renewed_certificate_and_keeps_the_old_one_on_a_bad_pair(
    start: Start, tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    daemon = start("")
    assert _served_certificate(daemon.port, cert) == _der(cert)
    renewed_folder = tmp_path / "renewed"
    renewed_folder.mkdir()
    new_cert, new_key = make_certificate(renewed_folder)
    old_der = _der(cert)
    # Renewal in place, as certbot does: same paths, new content.
    shutil.copy(new_cert, cert)
    shutil.copy(new_key, key)
    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGHUP)
    daemon.wait_until(lambda: daemon.log().count("STARTTLS certificate") >= 2, what="re-read")
    assert _served_certificate(daemon.port, new_cert) == _der(new_cert) != old_der
    # A key that does not belong to the certificate: the reload is refused, naming the key,
    # and STARTTLS goes on with the certificate it had.
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(make_certificate(other)[1], key)
    daemon.process.send_signal(signal.SIGHUP)
    daemon.wait_until(
        lambda: "reload refused, configuration unchanged: smtp_in.tls_key" in daemon.log(),
        what="refused reload",
    )
    assert "does not match the certificate" in daemon.log()
    assert _served_certificate(daemon.port, new_cert) == _der(new_cert)


def test_without_tls_files_no_starttls_is_offered(relay: Relay, tmp_path: Path) -> None:
    extra = f'[smtp_in]\nlisten = "127.0.0.1:{free_port()}"\n'
    daemon = DaemonProcess(daemon_config(tmp_path, relay.port, extra=extra))
    daemon.start()
    try:
        with smtplib.SMTP("127.0.0.1", daemon.port, timeout=10) as client:
            client.ehlo("client.example")
            assert not client.has_extn("starttls")
            assert client.docmd("STARTTLS")[0] in (454, 500, 502)
    finally:
        assert daemon.stop() == 0


# Configuration errors name the key and say what is wrong with the file.


def _problems(folder: Path, lines: str) -> list[tuple[str, str]]:
    extra = f'[smtp_in]\nlisten = "127.0.0.1:2525"\n{lines}\n'
    with pytest.raises(ConfigError) as error:
        load_listener_config(daemon_config(folder, None, extra=extra))
    return error.value.problems


def test_the_listeners_tls_files_never_stop_ingest(tmp_path: Path) -> None:
    # An MTA pipe runs `ticketd ingest` as a user who may not read the listener's key, and
    # certbot may be swapping the files: only what serves the listener reads them.
    from tests.test_ingest_command import run_cli

    missing = tmp_path / "renewing.pem"
    extra = f'[smtp_in]\nlisten = "127.0.0.1:2525"\ntls_cert = "{missing}"\ntls_key = "{missing}"\n'
    config = daemon_config(tmp_path, None, extra=extra)
    assert run_cli(config, "ingest", stdin=customer_mail()).returncode == 0
    checked = run_cli(config, "check")
    assert checked.returncode == 78 and b"smtp_in.tls_cert" in checked.stdout + checked.stderr


def test_missing_and_unusable_tls_files_name_their_key(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    missing = tmp_path / "nope.pem"
    [(name, reason)] = _problems(tmp_path, f'tls_cert = "{missing}"\ntls_key = "{key}"')
    assert name == "smtp_in.tls_cert" and f"{missing} does not exist" in reason
    [(name, reason)] = _problems(tmp_path, f'tls_cert = "{cert}"\ntls_key = "{tmp_path}"')
    assert name == "smtp_in.tls_key" and "is a folder" in reason
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    [(name, reason)] = _problems(tmp_path, f'tls_cert = "{garbage}"\ntls_key = "{key}"')
    assert name == "smtp_in.tls_cert" and "no PEM certificate" in reason
    # The two swapped: the certificate file holds no key.
    [(name, reason)] = _problems(tmp_path, f'tls_cert = "{cert}"\ntls_key = "{cert}"')
    assert name == "smtp_in.tls_key" and "no PEM private key" in reason


def test_a_key_of_another_certificate_is_named(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    _, other_key = make_certificate(other)
    [(name, reason)] = _problems(
        tmp_path, f'tls_cert = "{certificate[0]}"\ntls_key = "{other_key}"'
    )
    assert name == "smtp_in.tls_key" and "does not match the certificate" in reason


def test_a_key_behind_a_passphrase_is_named(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    locked = tmp_path / "locked.key"
    encrypt = ["openssl", "pkey", "-aes256", "-passout", "pass:x", "-in", str(certificate[1])]
    subprocess.run(
        [*encrypt, "-out", str(locked)],
        check=True,
        capture_output=True,
    )
    [(name, reason)] = _problems(tmp_path, f'tls_cert = "{certificate[0]}"\ntls_key = "{locked}"')
    assert name == "smtp_in.tls_key" and "passphrase" in reason


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file whatever its mode")
def test_an_unreadable_key_is_named(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    certificate[1].chmod(0)
    [(name, reason)] = _problems(
        tmp_path, f'tls_cert = "{certificate[0]}"\ntls_key = "{certificate[1]}"'
    )
    assert name == "smtp_in.tls_key" and "cannot be read" in reason


@pytest.mark.parametrize(
    ("lines", "key"),
    [
        ('tls_cert = "x.pem"', "smtp_in.tls_key"),
        ('tls_key = "x.key"', "smtp_in.tls_cert"),
        ("require_tls = true", "smtp_in.require_tls"),
        ('require_tls = "yes"', "smtp_in.require_tls"),
        ("tls_cert = 5\ntls_key = 6", "smtp_in.tls_cert"),
    ],
)
def test_tls_keys_that_do_not_go_together_are_named(tmp_path: Path, lines: str, key: str) -> None:
    assert key in [name for name, _ in _problems(tmp_path, lines)]


def test_the_log_says_when_the_certificate_expires_and_whether_it_has(
    certificate: tuple[Path, Path],
) -> None:
    now = datetime.now(UTC)
    text, expired = describe(certificate[0], now)
    assert text.startswith("CN=localhost, valid until ") and not expired
    assert describe(certificate[0], now + timedelta(days=3)) == (text, True)  # made for 2 days
