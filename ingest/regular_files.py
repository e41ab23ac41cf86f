"""Opening a file a command was given, when only a regular file makes sense.

`ticketd import` and `ticketd ingest` read what an admin or an MTA names, often in folders other
people can write to. A symbolic link there would make ticketd (root, or the ticketd user) read
and journal whatever it points to (`/etc/hostname`, a key); a FIFO would block it for ever, and
`/dev/zero` never ends. So a file is opened with O_NOFOLLOW (a link is refused, not followed)
and O_NONBLOCK (opening a FIFO does not wait for a writer), and read only if it is a regular
file.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO

from domain.errors import Permanent


class NotRegular(Permanent):
    """The path is a symbolic link, a folder, a FIFO or a device: not read."""


def open_regular(path: Path) -> BinaryIO:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise NotRegular(f"{path}: a symbolic link, not a regular file") from error
        raise
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a folder" if stat.S_ISDIR(mode) else "a FIFO, socket or device"
        raise NotRegular(f"{path}: {kind}, not a regular file")
    return os.fdopen(fd, "rb")


def regular_or_folder(path: Path) -> None:
    """Refuse a path that is neither a regular file nor a folder, or is a symbolic link."""
    mode = os.lstat(path).st_mode
    if stat.S_ISLNK(mode):
        raise NotRegular(f"{path}: a symbolic link, not a regular file (give the real path)")
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise NotRegular(f"{path}: a FIFO, socket or device, not a regular file")
