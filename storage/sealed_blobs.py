"""The blob store, sealed: every blob written is encrypted with AES-256-GCM (promise 6).

Raw messages carry identity documents inside them, so the journal is encrypted at rest too. A
blob keeps its content address (the SHA-256 of the plaintext), so duplicate detection and
`Journal.accept_once` work as before; that address, and not the content, is what the file name
says. The address is bound into the encryption as associated data: a blob moved under another
name, or altered in any bit, fails to open instead of yielding another message.

Two formats are read. Version 2 (written now) names the key that sealed it, so keys can rotate
(storage/keyring.py, storage/rotation.py):

    "TKDSEAL2" + key id (8 bytes) + nonce (12) + ciphertext-with-tag,
    associated data: "TKDSEAL2" + key id + address

Version 1 ("TKDSEAL1" + nonce + ciphertext, the address as associated data) came from the single
key before rotation; it is opened with whichever key of the keyring fits. Blobs written before
sealing (no magic prefix) are still read as they are; a rotation seals them.

Sealing checks the key file is current before and after writing: a rotation that made another key
the write key meanwhile gets the blob sealed again under it, so a daemon that was writing while a
rotation began never leaves a new blob under the old key behind the rotation's back.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from cryptography.exceptions import InvalidTag

from storage.blobs import BlobStore
from storage.errors import Permanent
from storage.keyring import ID_SIZE, Keyring, UnknownKey

MAGIC = b"TKDSEAL1"
MAGIC_V2 = b"TKDSEAL2"
HEADER_V2 = len(MAGIC_V2) + ID_SIZE


class SealedBlobError(Permanent):
    """A sealed blob cannot be opened: altered, truncated, under the wrong name, or sealed with
    a key the keyring no longer holds."""


class SealedBlobStore(BlobStore):
    def __init__(self, root: Path, key: Keyring | bytes) -> None:
        super().__init__(root)
        self.keyring = key if isinstance(key, Keyring) else Keyring.fixed(key)

    def put(self, data: bytes | bytearray) -> str:
        key = hashlib.sha256(data).hexdigest()
        if self.touch(key):
            return key
        self.replace(key, data)
        return key

    def touch(self, key: str) -> bool:
        """Mark an existing blob as just used (its mtime now); False when there is none.

        A message received again reuses the blob already on disk. Refreshing its time tells the
        orphan sweep (storage/sweep.py) that a reference to it may be about to be committed."""
        path = self.path_for(key)
        try:
            os.utime(path)
        except FileNotFoundError:
            return False
        except PermissionError:
            return path.exists()  # another user's file (an admin's `ingest`): reuse it as is
        return True

    def replace(self, address: str, plaintext: bytes | bytearray) -> str:
        """Seal `plaintext` with the write key and store it under `address`, replacing what was
        there atomically (a reader sees the old file or the new one). Returns the key id. It is
        encrypted as it is written, a megabyte at a time: no sealed copy of it in memory."""
        while True:
            kid, pieces = self.keyring.seal_pieces(MAGIC_V2, plaintext, address.encode())
            self.write_pieces(address, pieces)
            if self.keyring.is_writer(kid):
                return kid
            # A rotation began while this blob was written: seal it again under the new key.

    def get(self, key: str) -> bytes:
        return self.open_stored(key, super().get(key))

    def read_plain(self, key: str) -> bytes | bytearray:
        """`get`, with a blob of the current format read and opened a megabyte at a time into
        one buffer (a bytearray), instead of the whole sealed file held beside its plaintext."""
        with self.path_for(key).open("rb") as handle:
            if handle.read(len(MAGIC_V2)) != MAGIC_V2:
                handle.seek(0)
                return self.open_stored(key, handle.read())
            handle.seek(0)
            with _opening(key):
                size = os.fstat(handle.fileno()).st_size
                return self.keyring.open_sealed_from(MAGIC_V2, handle, size, key.encode())

    def get_with_key_id(self, key: str) -> tuple[str | None, bytes]:
        """(`sealed_with`, `get`) from one read of the file."""
        stored = super().get(key)
        return _key_id(stored[:HEADER_V2]), self.open_stored(key, stored)

    def open_stored(self, address: str, stored: bytes) -> bytes:
        if stored.startswith(MAGIC_V2):
            with _opening(address):
                return self.keyring.open_sealed(MAGIC_V2, stored, address.encode())
        if stored.startswith(MAGIC):
            opened = self.keyring.open_unlabelled(stored[len(MAGIC) :], address.encode())
            if opened is None:
                raise SealedBlobError(f"blob {address} failed authentication")
            return opened
        return stored  # written before the store was sealed

    def sealed_with(self, address: str) -> str | None:
        """The id of the key that sealed the blob (read from its header); None for a blob in
        the old formats (version 1 or not sealed), which a rotation rewrites."""
        with self.path_for(address).open("rb") as handle:
            return _key_id(handle.read(HEADER_V2))


@contextlib.contextmanager
def _opening(address: str) -> Iterator[None]:
    """The keyring's errors of opening blob `address`, as the store's SealedBlobError."""
    try:
        yield
    except UnknownKey as error:
        raise SealedBlobError(f"blob {address} is {error}") from error
    except InvalidTag as error:
        raise SealedBlobError(f"blob {address} failed authentication") from error


def _key_id(header: bytes) -> str | None:
    if header.startswith(MAGIC_V2) and len(header) == HEADER_V2:
        return header[len(MAGIC_V2) :].hex()
    return None
