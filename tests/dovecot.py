"""A real Dovecot IMAP server for the IMAP tests, one per test, from its own configuration.

Dovecot runs in the foreground (`dovecot -F -c DIR/dovecot.conf`) as a child of the test, in
its own process group, listening on free 127.0.0.1 ports: plain IMAP (with STARTTLS) and
implicit TLS with a self-signed certificate made by openssl. Users come from a passwd-file,
mail is Maildir. Stopping kills the process group (`dovecot stop` takes seconds). Under root the
server's helper processes run as Debian's `dovecot` and `dovenull` users and the mail belongs
to `dovecot`, so the folder lives under /tmp where they can enter (tmp_path is root's only).

Missing binaries fail the tests with the fix in the message; TICKETD_SKIP_DOVECOT=1 skips them.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from imapclient import IMAPClient

from tests.daemon import make_certificate
from tests.helpers import free_port

SKIP_VARIABLE = "TICKETD_SKIP_DOVECOT"
# /usr/sbin is not on every user's PATH.
DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
CONFIG = """\
base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/dovecot.log
info_log_path = {dir}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{dir}/relay.pem
ssl_key = <{dir}/relay.key
disable_plaintext_auth = no
# XOAUTH2 hands the token to the passdb like a password: the passwd-file checks it.
auth_mechanisms = plain login xoauth2
auth_failure_delay = 0

first_valid_uid = 1
default_internal_user = {internal}
default_login_user = {login}
mail_location = maildir:{dir}/mail/%u
{oauth2}passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {dir}/users
}}
userdb {{
  driver = static
  args = uid={mail_user} gid={mail_group} home={dir}/mail/%u
}}
# Tests fail logins on purpose: an unreachable penalty socket turns off anvil's growing delay.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
    ssl = yes
  }}
}}
"""


# Dovecot's own OAuth2 check (the oauth2 passdb): it asks the test's token server whether an
# XOAUTH2 token is active and whose it is (RFC 7662 introspection), as a real provider would.
OAUTH2_PASSDB = """\
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {dir}/oauth2.conf.ext
}}
"""
OAUTH2_CONFIG = """\
introspection_mode = post
introspection_url = {url}
force_introspection = yes
username_attribute = username
active_attribute = active
active_value = true
"""


@dataclass
class Dovecot:
    folder: Path
    imap_port: int
    imaps_port: int
    mail_uid: int
    mail_gid: int
    process: subprocess.Popen[bytes] | None = None
    users: dict[str, str] = field(default_factory=dict)

    @property
    def config(self) -> Path:
        return self.folder / "dovecot.conf"

    @property
    def ca_file(self) -> Path:
        return self.folder / "relay.pem"

    def log(self) -> str:
        path = self.folder / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def add_user(self, name: str, password: str) -> None:
        self.users[name] = password
        lines = [f"{user}:{{PLAIN}}{secret}::::::" for user, secret in self.users.items()]
        (self.folder / "users").write_text("\n".join(lines) + "\n")

    def start(self) -> None:
        with (self.folder / "stderr.log").open("ab") as stderr:
            self.process = subprocess.Popen(
                [DOVECOT, "-F", "-c", str(self.config)],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"dovecot exited {self.process.returncode}: {self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.imaps_port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.02)
        raise AssertionError(f"dovecot did not listen: {self.log()}")

    def stop(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None
        # Children outside the group would keep the ports; wait until they are free.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.imaps_port), timeout=0.2):
                    time.sleep(0.05)
            except OSError:
                return

    def restart(self) -> None:
        self.stop()
        self.start()

    def doveadm(self, *args: str, data: bytes | None = None) -> None:
        subprocess.run(
            ["doveadm", "-c", str(self.config), *args],
            input=data,
            check=True,
            capture_output=True,
            timeout=30,
        )

    def deliver(self, user: str, raw: bytes, folder: str = "INBOX") -> None:
        """Put a message in as a delivery agent would (`doveadm save`)."""
        self.doveadm("save", "-u", user, "-m", folder, data=raw)

    def maildir(self, user: str) -> Path:
        return self.folder / "mail" / user

    def drop_in(self, user: str, messages: list[bytes]) -> None:
        """Many messages at once, written straight into the Maildir's new/ (as an MTA does)."""
        new = self.maildir(user) / "new"
        tmp = self.maildir(user) / "tmp"
        for path in (self.maildir(user), new, tmp, self.maildir(user) / "cur"):
            path.mkdir(exist_ok=True)
            os.chown(path, self.mail_uid, self.mail_gid)
        stamp = int(time.time())
        for index, raw in enumerate(messages):
            name = f"{stamp}.M{index}P{os.getpid()}.ticketd-test"
            path = tmp / name
            path.write_bytes(raw)
            os.chown(path, self.mail_uid, self.mail_gid)
            path.rename(new / name)

    def renumber(self, user: str) -> None:
        """Force a new UIDVALIDITY: remove the folder's UID list and indexes (server stopped)."""
        self.stop()
        for path in self.maildir(user).glob("dovecot*"):
            if path.name.startswith(("dovecot-uidlist", "dovecot.index")):
                path.unlink()
        self.start()

    def client(self, user: str) -> IMAPClient:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        client = IMAPClient("127.0.0.1", port=self.imaps_port, ssl_context=context, timeout=10)
        client.login(user, self.users[user])
        return client

    def folder_state(self, user: str, folder: str = "INBOX") -> dict[int, tuple[bytes, ...]]:
        """UID to flags of every message in the folder."""
        client = self.client(user)
        try:
            client.select_folder(folder, readonly=True)
            flags = client.get_flags(client.search(["ALL"]))
            return {int(uid): tuple(value) for uid, value in flags.items()}
        finally:
            client.logout()


def _users() -> tuple[str, str, int, int]:
    if os.geteuid() == 0:
        mail = pwd.getpwnam("dovecot")
        return "dovecot", "dovenull", mail.pw_uid, mail.pw_gid
    me = pwd.getpwuid(os.geteuid())
    return me.pw_name, me.pw_name, me.pw_uid, me.pw_gid


def start_dovecot(introspection_url: str | None = None) -> Dovecot:
    """`introspection_url`: XOAUTH2 tokens are checked there (the oauth2 passdb) first."""
    if not os.access(DOVECOT, os.X_OK) or shutil.which("doveadm") is None:
        message = (
            "dovecot is not installed: run ./scripts/test as root, or apt-get install dovecot-imapd"
        )
        if os.environ.get(SKIP_VARIABLE):
            pytest.skip(message)
        pytest.fail(message + f" (or set {SKIP_VARIABLE}=1 to skip the IMAP tests)")
    internal, login, uid, gid = _users()
    folder = Path(tempfile.mkdtemp(prefix="ticketd-dovecot-"))
    folder.chmod(0o755)
    (folder / "mail").mkdir()
    os.chown(folder / "mail", uid, gid)
    make_certificate(folder)
    server = Dovecot(folder, free_port(), free_port(), uid, gid)
    if introspection_url is not None:
        (folder / "oauth2.conf.ext").write_text(OAUTH2_CONFIG.format(url=introspection_url))
    server.config.write_text(
        CONFIG.format(
            dir=folder,
            oauth2=OAUTH2_PASSDB.format(dir=folder) if introspection_url else "",
            internal=internal,
            login=login,
            mail_user=uid,
            mail_group=gid,
            imap_port=server.imap_port,
            imaps_port=server.imaps_port,
        )
    )
    server.add_user("destek", "s3cret")
    server.start()
    return server


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    server = start_dovecot()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.folder, ignore_errors=True)
