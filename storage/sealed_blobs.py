"""The blob store, sealed: every blob written is encrypted with AES-256-GCM (promise 6).

Raw messages carry identity documents inside them, so the journal is encrypted at rest too. A
blob keeps its content address (the SHA-256 of the plaintext), so duplicate detection and
`Journal.accept_once` work as before; that address, and not the content, is what the file name
says. The address is bound into the encryption as associated data: a blob moved under another
name, or altered in any bit, fails to open instead of yielding another message. Blobs written
before sealing (no magic prefix) are still read as they are.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from storage.blobs import BlobStore

MAGIC = b"TKDSEAL1"
NONCE_SIZE = 12


class SealedBlobError(Exception):
    """A sealed blob failed authentication: altered, truncated, or under the wrong name."""


class SealedBlobStore(BlobStore):
    def __init__(self, root: Path, key: bytes) -> None:
        super().__init__(root)
        self._cipher = AESGCM(key)

    def put(self, data: bytes) -> str:
        key = hashlib.sha256(data).hexdigest()
        if self.path_for(key).exists():
            return key
        nonce = os.urandom(NONCE_SIZE)
        sealed = MAGIC + nonce + self._cipher.encrypt(nonce, data, key.encode())
        self.write(key, sealed)
        return key

    def get(self, key: str) -> bytes:
        stored = super().get(key)
        if not stored.startswith(MAGIC):
            return stored  # written before the store was sealed
        body = stored[len(MAGIC) :]
        try:
            return self._cipher.decrypt(body[:NONCE_SIZE], body[NONCE_SIZE:], key.encode())
        except InvalidTag as error:
            raise SealedBlobError(f"blob {key} failed authentication") from error
