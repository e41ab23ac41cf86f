"""The mail MaildirTransport (outbound/transports.py) left in `smtp_out.maildir`, still in its
`new/` or `cur/`: found (all of it, or that of given outbox rows) and rewritten in place.

A rewrite keeps the file's name and mode (the transport writes 0640; a copy written with the
process umask would be 0644, readable by anyone): the copy is written in `tmp/` with the mode of
the file it replaces, synced, then renamed over it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Collection
from pathlib import Path


def delivered(root: Path, outbox_ids: Collection[int] | None = None) -> list[Path]:
    """The files ticketd wrote, or only those of these outbox rows (the name starts with
    `ticketd-ID-`; in `cur/` the reader added `:2,FLAGS`)."""
    if not root.is_dir():
        return []
    files = [*root.glob("new/ticketd-*"), *root.glob("cur/ticketd-*")]
    if outbox_ids is None:
        return files
    wanted = {str(i) for i in outbox_ids}
    return [p for p in files if p.name.split("-")[1] in wanted]


def replace_file(root: Path, path: Path, data: bytes) -> None:
    """`path` now holds `data`, under its name and with its mode. FileNotFoundError when the
    Maildir's reader took the file meanwhile."""
    mode = stat.S_IMODE(path.stat().st_mode)
    tmp = root / "tmp" / f".{path.name}.rewritten"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        os.fchmod(out.fileno(), mode)
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
