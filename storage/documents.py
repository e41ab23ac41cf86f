"""The identity-document store (issue 6): documents encrypted with AES-256-GCM in the blob store.

A document is sealed as nonce (12 random bytes) + ciphertext-with-tag and written to the blob
store, whose name for it is the hash of that ciphertext: with a fresh random nonce it is random,
says nothing about the content, and never comes from the sender's filename. The plaintext's
SHA-256 (kept in the document's record) is the associated data, so a blob swapped under another
record, or altered in any bit, fails authentication instead of decrypting to the wrong file.

The key is 32 random bytes in the file `[kyc] key_file` names, created owner-only when missing.
Key rotation (re-encrypting under a new key without downtime) is not built yet.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from storage.blobs import BlobStore
from storage.sealed_blobs import SealedBlobError

KEY_SIZE = 32
NONCE_SIZE = 12


class DocumentKeyError(Exception):
    """The key file is unusable: wrong size, or readable by others than its owner."""


class DocumentIntegrityError(Exception):
    """A stored document failed authentication: altered, truncated or under the wrong record."""


def load_or_create_key(path: Path) -> bytes:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # O_EXCL: two daemons starting at once must not each write a different key.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            try:
                os.write(fd, AESGCM.generate_key(bit_length=KEY_SIZE * 8))
                os.fsync(fd)
            finally:
                os.close(fd)
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise DocumentKeyError(f"{path}: the key file must be readable by its owner only (0600)")
    key = path.read_bytes()
    if len(key) != KEY_SIZE:
        raise DocumentKeyError(f"{path}: a key file holds exactly {KEY_SIZE} bytes")
    return key


class DocumentStore:
    def __init__(self, blobs: BlobStore, key: bytes) -> None:
        self.blobs = blobs
        self._cipher = AESGCM(key)

    @classmethod
    def open(cls, blobs: BlobStore, key_file: Path) -> DocumentStore:
        return cls(blobs, load_or_create_key(key_file))

    def put(self, content: bytes) -> tuple[str, str]:
        """Seal and store `content`; returns (blob key, sha256 of the content)."""
        digest = hashlib.sha256(content).hexdigest()
        nonce = os.urandom(NONCE_SIZE)
        sealed = nonce + self._cipher.encrypt(nonce, content, digest.encode())
        return self.blobs.put(sealed), digest

    def get(self, blob_key: str, sha256: str) -> bytes:
        try:
            sealed = self.blobs.get(blob_key)
        except SealedBlobError as error:  # the journal's outer seal caught the damage first
            raise DocumentIntegrityError(f"document blob {blob_key} failed authentication") from (
                error
            )
        try:
            content = self._cipher.decrypt(
                sealed[:NONCE_SIZE], sealed[NONCE_SIZE:], sha256.encode()
            )
        except InvalidTag as error:
            raise DocumentIntegrityError(
                f"document blob {blob_key} failed authentication"
            ) from error
        return content

    def delete(self, blob_key: str) -> None:
        self.blobs.delete(blob_key)
