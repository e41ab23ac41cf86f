"""The identity-document store (issue 6): documents encrypted with AES-256-GCM in the blob store.

A document is sealed with the keyring's write key (storage/keyring.py) as

    "TKDDOCS2" + key id (8 bytes) + nonce (12 random bytes) + ciphertext-with-tag,
    associated data: "TKDDOCS2" + key id + the plaintext's SHA-256 (kept in the record)

and written to the blob store (which seals it once more, as it seals every blob). So a blob
swapped under another record, or altered in any bit, fails authentication instead of decrypting
to the wrong file. Documents sealed before keys rotated (nonce + ciphertext, the SHA-256 as
associated data) are still opened with whichever key of the keyring fits.

The blob's name is the hash of the first sealing: random, saying nothing about the content, and
never from the sender's filename. A rotation re-encrypts a document in place under the same name
(`rekey`), so the record's `blob_key` never changes; the name is a handle, not a checksum.

The key file is `[kyc] key_file`, created owner-only when missing.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from cryptography.exceptions import InvalidTag

from storage.blobs import BlobStore
from storage.errors import Permanent
from storage.keyring import ID_SIZE, Keyring, UnknownKey
from storage.sealed_blobs import SealedBlobError, SealedBlobStore

DOC_MAGIC = b"TKDDOCS2"
HEADER = len(DOC_MAGIC) + ID_SIZE


class DocumentIntegrityError(Permanent):
    """A stored document failed authentication: altered, truncated or under the wrong record."""


class DocumentStore:
    def __init__(self, blobs: BlobStore, key: Keyring | bytes) -> None:
        self.blobs = blobs
        self.keyring = key if isinstance(key, Keyring) else Keyring.fixed(key)

    @classmethod
    def open(cls, blobs: BlobStore, key_file: Path) -> DocumentStore:
        if isinstance(blobs, SealedBlobStore) and blobs.keyring.path == key_file:
            return cls(blobs, blobs.keyring)  # one view of the key file per process
        return cls(blobs, Keyring.open(key_file))

    def _seal(self, content: bytes, digest: str) -> tuple[str, bytearray]:
        return self.keyring.seal(DOC_MAGIC, content, digest.encode())

    def _store_at(self, blob_key: str, sealed: bytearray) -> None:
        if isinstance(self.blobs, SealedBlobStore):
            self.blobs.replace(blob_key, sealed)
        else:
            self.blobs.write(blob_key, sealed)

    def put(self, content: bytes) -> tuple[str, str]:
        """Seal and store `content`; returns (blob key, sha256 of the content)."""
        digest = hashlib.sha256(content).hexdigest()
        kid, sealed = self._seal(content, digest)
        blob_key = self.blobs.put(sealed)
        while not self.keyring.is_writer(kid):
            # A rotation began while this was sealed: the rotation may already have passed
            # over this blob, so seal it again under the new key here.
            kid, sealed = self._seal(content, digest)
            self._store_at(blob_key, sealed)
        return blob_key, digest

    def _stored(self, blob_key: str) -> bytes:
        try:
            return self.blobs.get(blob_key)
        except SealedBlobError as error:  # the journal's outer seal caught the damage first
            raise DocumentIntegrityError(f"document blob {blob_key}: {error}") from error

    def _open(self, blob_key: str, sealed: bytes, sha256: str) -> bytes:
        failed = DocumentIntegrityError(f"document blob {blob_key} failed authentication")
        if sealed.startswith(DOC_MAGIC):
            try:
                return self.keyring.open_sealed(DOC_MAGIC, sealed, sha256.encode())
            except UnknownKey as error:
                raise DocumentIntegrityError(f"document blob {blob_key} is {error}") from error
            except InvalidTag as error:
                raise failed from error
        # Sealed before keys rotated: one of the keys fits.
        opened = self.keyring.open_unlabelled(sealed, sha256.encode())
        if opened is None:
            raise failed
        return opened

    def get(self, blob_key: str, sha256: str) -> bytes:
        return self._open(blob_key, self._stored(blob_key), sha256)

    def sealed_with(self, blob_key: str) -> str | None:
        """The id of the key that sealed the document itself (inside the blob's own seal);
        None for a document sealed before keys rotated."""
        return _inner_key_id(self._stored(blob_key))

    def rekey(self, blob_key: str, sha256: str) -> bool:
        """Re-encrypt the document, both layers, under the write key, in place (same name, the
        old file replaced atomically). False when it already was under the write key."""
        write_id = self.keyring.writer()[0]
        if isinstance(self.blobs, SealedBlobStore):
            try:  # the file read once for both layers' key ids
                outer, sealed = self.blobs.get_with_key_id(blob_key)
            except SealedBlobError as error:
                raise DocumentIntegrityError(f"document blob {blob_key}: {error}") from error
        else:
            outer, sealed = write_id, self._stored(blob_key)
        inner = _inner_key_id(sealed)
        if inner == write_id and outer == write_id:
            return False
        content = self._open(blob_key, sealed, sha256)
        _, resealed = self._seal(content, sha256)
        self._store_at(blob_key, resealed)
        return True

    def delete(self, blob_key: str) -> None:
        self.blobs.delete(blob_key)


def _inner_key_id(sealed: bytes) -> str | None:
    """The id of the key that sealed the document itself; None before keys rotated."""
    return sealed[len(DOC_MAGIC) : HEADER].hex() if sealed.startswith(DOC_MAGIC) else None
