"""No public default secret (issue 15, point 1): reply addresses are signed with a secret nobody
can compute. Without `desk.secret` a random one is generated (0600) on first use; a set secret
that is short or a placeholder is refused by `check` and `run`, naming the key."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import smtplib
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from domain.config import DEFAULT_CONFIG, ConfigError, load_config
from tests.daemon import DaemonProcess, Relay, daemon_config
from tests.helpers import customer_mail, write_config
from ticketd.cli import EX_CONFIG, main

ROOT = Path(__file__).resolve().parents[1]
DESK = "destek@example.com"


def ticketd(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ticketd.cli", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _public_signature(ref: str) -> str:
    """What the signature was before: an HMAC keyed with 'ticketd:<address>'."""
    key = f"ticketd:{DESK}".encode()
    return hmac.new(key, f"reply:{ref}".encode(), hashlib.sha256).hexdigest()[:10]


def _shipped_placeholder() -> str:
    """The systemd example's secret line, commented or not: what an admin copies."""
    text = (ROOT / "systemd" / "ticketd.toml").read_text(encoding="utf-8")
    found = re.search(r'secret = "([^"]*)"', text)
    return found.group(1) if found else "CHANGE-ME: a long random string, kept stable"


@pytest.mark.parametrize(
    "secret",
    [
        "CHANGE-ME: a long random string, kept stable",
        "...",
        "long random string",
        f"ticketd:{DESK}",
        "s3cr3t",
        "Zq8mR2vL9xK4wP7n",  # random, but 16 characters
        "a" * 40,
        "abababababababababababababababababab",
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "changeme-changeme-changeme-changeme-1234",
        "please-put-your-secret-here-0123456789abcdef",
    ],
)
def test_a_short_or_placeholder_secret_is_refused_by_check(
    tmp_path: Path, secret: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, extra="[kyc]\nkey_file = 'k'\n")
    config.write_text(config.read_text().replace("[storage]", f"secret = {secret!r}\n[storage]"))
    assert main(["--config", str(config), "check"]) == EX_CONFIG
    err = capsys.readouterr().err
    assert "desk.secret:" in err and "Traceback" not in err
    assert not (tmp_path / "desk.secret").exists()  # a refused secret is not replaced silently


def test_the_shipped_placeholder_is_refused(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    line = f"secret = {_shipped_placeholder()!r}\n"
    config.write_text(config.read_text().replace("[storage]", line + "[storage]"))
    assert ticketd(config, "check").returncode == EX_CONFIG


def test_a_long_random_secret_is_used_as_it_is(tmp_path: Path) -> None:
    secret = "pS4v1Yc0Qh8kz-Jm2Lw7tRb9eXnG5aUd"
    config = write_config(tmp_path)
    config.write_text(config.read_text().replace("[storage]", f"secret = '{secret}'\n[storage]"))
    loaded = load_config(config)
    assert loaded.desk.secret == secret and loaded.desk.secret_file is None
    assert not (tmp_path / "var" / "desk.secret").exists()


def test_without_a_secret_one_is_generated_once_owner_only(tmp_path: Path) -> None:
    first = load_config(write_config(tmp_path))
    path = tmp_path / "var" / "desk.secret"  # beside the default key file var/kyc.key
    assert first.desk.secret_file == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first.desk.secret) >= 32 and first.desk.secret != f"ticketd:{DESK}"
    assert load_config(tmp_path / "ticketd.toml").desk.secret == first.desk.secret
    other = tmp_path / "other"
    other.mkdir()
    assert load_config(write_config(other)).desk.secret != first.desk.secret


@pytest.mark.parametrize(
    ("content", "mode", "reason"),
    [
        ("short\n", 0o600, "holds 5 characters"),
        ("", 0o600, "holds 0 characters"),
        ("q" * 20 + "Zx8-Lm2vR9tKp4Wn7Yb0c\n", 0o644, "readable by others"),
    ],
)
def test_an_unfit_secret_file_is_refused_naming_it(
    tmp_path: Path, content: str, mode: int, reason: str
) -> None:
    path = tmp_path / "var" / "desk.secret"
    path.parent.mkdir()
    path.write_text(content)
    os.chmod(path, mode)
    with pytest.raises(ConfigError) as error:
        load_config(write_config(tmp_path))
    found = dict(error.value.problems)
    assert reason in found["desk.secret_file"], found


def test_a_secret_file_that_cannot_be_made_is_named(tmp_path: Path) -> None:
    (tmp_path / "blocked").write_text("a file where a folder should be")
    config = write_config(tmp_path)
    line = "secret_file = 'blocked/desk.secret'\n"
    config.write_text(config.read_text().replace("[storage]", line + "[storage]"))
    result = ticketd(config, "check")
    assert result.returncode == EX_CONFIG and "desk.secret_file:" in result.stderr


def test_a_named_secret_file_in_a_missing_folder_is_refused_not_made(tmp_path: Path) -> None:
    # A mistyped folder: `check` must not make it and a new secret there and say "sound".
    config = write_config(tmp_path)
    line = "secret_file = 'etc/tikcetd/desk.secret'\n"
    config.write_text(config.read_text().replace("[storage]", line + "[storage]"))
    result = ticketd(config, "check")
    assert result.returncode == EX_CONFIG, result.stdout
    assert "desk.secret_file:" in result.stderr and "does not exist" in result.stderr
    assert not (tmp_path / "etc").exists()
    (tmp_path / "etc" / "tikcetd").mkdir(parents=True)  # the folder made: the secret is made
    assert ticketd(config, "check").returncode == 0
    assert (tmp_path / "etc" / "tikcetd" / "desk.secret").exists()


def test_the_readme_start_path_checks_sound_on_a_fresh_clone(tmp_path: Path) -> None:
    """What ./scripts/start does: write the embedded defaults to state/ticketd.toml, then
    `check` (exit 0), then `run`: the secret is generated, not the public one."""
    start = (ROOT / "scripts" / "start").read_text(encoding="utf-8")
    assert "DEFAULT_CONFIG" in start and "check" in start
    state = tmp_path / "state"
    state.mkdir()
    (state / "ticketd.toml").write_text(DEFAULT_CONFIG, encoding="utf-8")
    result = ticketd(state / "ticketd.toml", "check")
    assert result.returncode == 0, result.stderr
    assert f"desk secret: {state / 'var' / 'desk.secret'}" in result.stdout
    assert stat.S_IMODE((state / "var" / "desk.secret").stat().st_mode) == 0o600


def test_the_systemd_example_checks_sound_once_its_paths_exist(tmp_path: Path) -> None:
    text = (ROOT / "systemd" / "ticketd.toml").read_text(encoding="utf-8")
    config = tmp_path / "ticketd.toml"
    config.write_text(text.replace("/var/lib/ticketd", str(tmp_path)), encoding="utf-8")
    result = ticketd(config, "check")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "desk.secret").exists()  # beside its key_file


def test_reply_addresses_are_not_signed_with_the_public_key(tmp_path: Path, relay: Relay) -> None:
    daemon = DaemonProcess(daemon_config(tmp_path, relay.port))
    daemon.start()
    try:
        with smtplib.SMTP("127.0.0.1", daemon.port) as client:
            client.sendmail("ayse@musteri.com.tr", [DESK], customer_mail())
        ack = relay.wait_for(1)[0]
    finally:
        assert daemon.stop() == 0
    found = re.search(r"destek\+([0-9a-z]{4}-[0-9a-z]{4})\.([0-9a-f]+)@", str(ack["Reply-To"]))
    assert found is not None, ack["Reply-To"]
    ref, signature = found.group(1).upper(), found.group(2)
    assert signature != _public_signature(ref)
    secret = (tmp_path / "var" / "desk.secret").read_text().strip()
    key = secret.encode()
    assert signature == hmac.new(key, f"reply:{ref}".encode(), hashlib.sha256).hexdigest()[:10]


def test_check_says_what_proves_an_agent_as_the_listener_decides(tmp_path: Path) -> None:
    """`require_authentication` and `verify_senders` default by the listener (loopback: an MTA
    in front; any other address: ticketd is the MX). `check` says what the defaults came to, so
    an admin whose agents' mail stops acting after an upgrade learns why from it."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "ticketd.toml").write_text(DEFAULT_CONFIG, encoding="utf-8")
    local = ticketd(state / "ticketd.toml", "check")
    assert local.returncode == 0, local.stderr
    assert "sender verification: off (verify_senders = false); trusted: none" in local.stdout
    assert "agent mail acts with: the signed reply address (require_authentication = false)" in (
        local.stdout
    )
    mx = DEFAULT_CONFIG.replace('listen = "127.0.0.1:2525"', 'listen = "0.0.0.0:2525"')
    assert mx != DEFAULT_CONFIG
    (state / "ticketd.toml").write_text(mx, encoding="utf-8")
    public = ticketd(state / "ticketd.toml", "check")
    assert public.returncode == 0, public.stderr
    assert "sender verification: ours as " in public.stdout
    assert "agent mail acts with: an aligned DKIM or SPF pass" in public.stdout
