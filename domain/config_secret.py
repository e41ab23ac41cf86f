"""The desk secret: the key that signs our Message-IDs and reply addresses (destek+REF.SIG@...,
destek+a.REF.SIG@... for agents). Whoever knows it can write as an agent, so it is never one
anybody can compute.

Either `desk.secret` holds it (at least 32 characters, not a placeholder such as the systemd
example's "CHANGE-ME"), or it lives in `desk.secret_file`, by default `desk.secret` beside the
identity-document key file. That file is made on first use the way the key file is: 32 random
bytes (URL-safe text), owner-only (0600), written under a temporary name and linked into place,
so two daemons starting at once on a shared folder agree on one secret and no reader ever sees a
half-written file. Several hosts on one database share the folder of the key file, and with it
the secret.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
from pathlib import Path

from domain.config_kinds import Problems

MIN_LENGTH = 32
FILE_NAME = "desk.secret"
# What example configurations and documentation put where a secret goes.
_PLACEHOLDER = re.compile(r"change.?me|random string|placeholder|your.?secret|x{8}", re.I)
_GENERATE = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"


def inline_problem(secret: str, address: str | None) -> str | None:
    """Why `desk.secret` cannot sign anything, or None when it can."""
    if address is not None and secret.strip().lower() == f"ticketd:{address}".lower():
        return "is the public default anyone can compute: remove it or set a random one"
    if _PLACEHOLDER.search(secret) or len(set(secret)) < 8:
        return f"is a placeholder, not a secret: set a random one ({_GENERATE}) or remove it"
    if len(secret) < MIN_LENGTH:
        return (
            f"has {len(secret)} characters; at least {MIN_LENGTH} random ones are needed "
            f"({_GENERATE}), or remove it and ticketd generates one"
        )
    return None


def _create(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, (secrets.token_urlsafe(MIN_LENGTH) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # fails when another process made it first: theirs stands
    except FileExistsError:
        pass
    finally:
        tmp.unlink()


def file_secret(problems: Problems, path: Path, named: bool = False) -> str:
    """The secret kept in `path`, made when the file is missing; '' with a problem named
    `desk.secret_file` when it cannot be made or read, or is not fit to sign.

    A path the admin `named` is made only in a folder that exists: a mistyped folder
    ("/etc/tikcetd/desk.secret") would otherwise hold a new secret that signs nothing the
    desk sent before, every agent's reply address of before unknown, and `check` sound."""
    key = "desk.secret_file"
    if named and not path.exists() and not path.parent.is_dir():
        reason = f"{path}: the folder {path.parent} does not exist (a typo?): create it first"
        problems.append((key, reason))
        return ""
    try:
        if not path.exists():
            _create(path)
        with path.open("rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            text = handle.read().decode("utf-8", "replace").strip()
    except OSError as error:
        problems.append((key, f"{path}: cannot create or read the secret: {error.strerror}"))
        return ""
    if stat.S_IMODE(mode) & 0o077:
        problems.append((key, f"{path} is readable by others: chmod 600 {path}"))
        return ""
    if len(text) < MIN_LENGTH:
        reason = f"{path} holds {len(text)} characters; at least {MIN_LENGTH} are needed"
        problems.append((key, reason + " (delete it and ticketd makes a new one)"))
        return ""
    return text
