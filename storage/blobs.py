"""Content-addressed blob store: raw messages live here, named by their SHA-256.

A blob is written to a temporary file, fsynced, renamed into place and its folder fsynced, so
after `put` returns the bytes survive a crash or a power cut. Writing the same bytes twice is
harmless: the name is the content.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

HEX = frozenset("0123456789abcdef")


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, key: str) -> Path:
        if not is_blob_key(key):
            raise ValueError(f"not a blob key: {key!r}")
        return self.root / key[:2] / key[2:4] / key

    def put(self, data: bytes | bytearray) -> str:
        key = hashlib.sha256(data).hexdigest()
        if not self.path_for(key).exists():
            self.write(key, data)
        return key

    def write(self, key: str, data: bytes | bytearray) -> None:
        """Store `data` under `key` durably: temporary file, fsync, rename, fsync the folder."""
        self.write_pieces(key, (data,))

    def write_pieces(self, key: str, pieces: Iterable[bytes | bytearray]) -> None:
        """`write` of the pieces joined, each written as it comes (a sealing encrypts them
        as they are taken: storage/keyring.py), so the whole is never one more copy."""
        final = self.path_for(key)
        created = self._make_folders(final.parent)
        # Unique per writer: two threads (or a rotation and a daemon) may write one key at once.
        tmp = final.with_name(f".{key}.{os.getpid()}.{threading.get_ident()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            try:
                for piece in pieces:
                    view = memoryview(piece)
                    while view:
                        written = os.write(fd, view)
                        view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, final)
        except BaseException:
            # A disk that filled up mid-write must not keep the partial file: it would hold
            # the space after the admin freed some, and more of them would fill it again.
            tmp.unlink(missing_ok=True)
            raise
        # The rename, then each new folder's entry in the folder holding it. These come after
        # the file's fsync, not before it: all are durable before `put` returns, as before,
        # and on a journaling filesystem (ext4, XFS) the file's fsync has already committed
        # the new folders, so their fsyncs find nothing left to write. Before the file, each
        # new folder cost the listener's session one more journal commit to wait for.
        fsync_dir(final.parent)
        for folder in reversed(created):
            fsync_dir(folder.parent)

    def _make_folders(self, folder: Path) -> list[Path]:
        """The blob's folders made; those that did not exist, outermost first. A new folder
        is durable only once the folder holding it is fsynced too: the caller's to do."""
        if folder.is_dir():
            return []
        missing = [p for p in (folder.parent, folder) if not p.exists()]
        folder.mkdir(parents=True, exist_ok=True)
        return missing

    def get(self, key: str) -> bytes:
        return self.path_for(key).read_bytes()

    def read_plain(self, key: str) -> bytes | bytearray:
        """`get` for a reader that takes a bytearray too (the sealed store reads into one)."""
        return self.get(key)

    def exists(self, key: str) -> bool:
        return self.path_for(key).exists()

    def addresses(self) -> Iterator[str]:
        """Every blob on disk, folder by folder in order (temporary files left out)."""
        if not self.root.exists():
            return
        for first in sorted(self.root.iterdir()):
            if not first.is_dir() or len(first.name) != 2:
                continue
            for second in sorted(first.iterdir()):
                if not second.is_dir() or len(second.name) != 2:
                    continue
                for path in sorted(second.iterdir()):
                    if is_blob_key(path.name):
                        yield path.name

    def delete(self, key: str) -> None:
        """Remove a blob (an identity document's retention ended); gone already is fine."""
        path = self.path_for(key)
        path.unlink(missing_ok=True)
        if path.parent.exists():
            fsync_dir(path.parent)


def is_blob_key(name: str) -> bool:
    return len(name) == 64 and all(c in HEX for c in name)


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new file in `folder` durable (the directory entry itself)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
