"""What `run` needs of the files the configuration names, checked before anything opens them.

The configuration can be sound as text and still point at things the daemon cannot use: a
database path that is a folder, a blobs path that is a file, a key file others can read (the
keyring refuses it, rightly). `ticketd check` reports these like any other problem, naming the
key, and `ticketd run` stops on them the same way instead of with a raw exception: what check
calls sound, run starts with.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from domain.config import Config, ConfigError

Problems = list[tuple[str, str]]


def _database(problems: Problems, url: str) -> None:
    if not url.startswith("sqlite:///"):
        return  # PostgreSQL: `check --connect` and health reach the server
    raw = url.removeprefix("sqlite:///")
    if not raw or raw == ":memory:":
        return
    path = Path(raw)
    if path.is_dir():
        problems.append(("storage.database", f"{path} is a folder, not a database file"))
    elif path.exists() and not path.is_file():
        problems.append(("storage.database", f"{path} is not a regular file"))
    elif _blocked_by_file(path.parent):
        problems.append(("storage.database", f"{path}: a file stands where its folder would be"))


def _blocked_by_file(folder: Path) -> bool:
    """A file where this folder, or one above it, would have to be made."""
    for parent in (folder, *folder.parents):
        if parent.exists():
            return not parent.is_dir()
    return False


def _blobs(problems: Problems, folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        problems.append(("storage.blobs", f"{folder} is a file, not a folder"))
    elif _blocked_by_file(folder):
        problems.append(("storage.blobs", f"{folder}: a file stands where a folder would be"))


def _key_file(problems: Problems, path: Path) -> None:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        if _blocked_by_file(path.parent):
            problems.append(("kyc.key_file", f"{path}: a file stands where its folder would be"))
        return  # created on first use (0600)
    except OSError as error:
        problems.append(("kyc.key_file", f"{path}: {error.strerror}"))
        return
    if not stat.S_ISREG(info.st_mode):
        problems.append(("kyc.key_file", f"{path} is not a regular file"))
    elif info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        mode = stat.S_IMODE(info.st_mode)
        problems.append(
            (
                "kyc.key_file",
                f"{path} is {mode:04o}: it must be readable by its owner only (chmod 600 {path})",
            )
        )
    elif not os.access(path, os.R_OK):
        problems.append(("kyc.key_file", f"{path}: not readable by this user"))


def check_state_files(config: Config) -> None:
    """Raise ConfigError naming each key whose file `run` could not use."""
    problems: Problems = []
    _database(problems, config.storage.database)
    _blobs(problems, config.storage.blobs)
    _key_file(problems, config.kyc.key_file)
    if problems:
        raise ConfigError(problems)
