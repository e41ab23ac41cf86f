"""The keyring: the keys that seal the blob store (journal and identity documents), one writing.

Key rotation (issue 6) needs each sealed blob to say which key sealed it, and each process to
find a key it has not seen yet. The file `[kyc] key_file` names holds either one raw 32-byte key
(the format before rotation, still read as a keyring of that one key) or a JSON keyring:

    {"format": "ticketd-keyring", "version": 1, "write": ID, "rotating": ID or null,
     "keys": [{"id": ID, "key": BASE64, "created": ISO, "superseded": ISO or null}, ...]}

`write` is the key that seals from now on; every key listed opens. `rotating` is set while a
rotation to the write key has not yet re-encrypted everything, so running it again resumes it.
A key's id is derived from the key (the first 8 bytes of a labelled SHA-256): the raw key of an
old file and the same key inside a keyring have one id, and processes agree on it without
talking. The id reveals nothing useful about the key.

Several daemons share the file. A process re-reads it when it changes: before sealing (the file's
stat against the one it loaded: one `stat` per blob written), when a blob names a key id it does
not know, and on SIGHUP. The file is only ever replaced whole (temporary file 0600, fsync,
rename, fsync the folder), so a reader sees the old keyring or the new one, never half of one.
Changes take an exclusive lock on `<key_file>.lock`, so two admins cannot lose each other's key.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hashlib
import io
import json
import logging
import os
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import (
    AEADDecryptionContext,
    AEADEncryptionContext,
    Cipher,
    algorithms,
    modes,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from storage.blobs import fsync_dir
from storage.errors import Permanent

log = logging.getLogger("ticketd.keys")
KEY_SIZE = 32
ID_SIZE = 8
NONCE_SIZE = 12  # AES-GCM's standard nonce, random per sealing
TAG_SIZE = 16  # AES-GCM's tag, after the ciphertext
# Sealing encrypts (and a blob is written) a megabyte at a time: a 25 MB message is never held
# twice, in clear and sealed (issue 19).
SEAL_PIECE = 1 << 20
FORMAT = "ticketd-keyring"


class UnknownKey(Permanent):
    """A sealed value names a key the keyring does not hold."""


class KeyFileError(Permanent):
    """The key file is unusable; the message names the file and the reason."""


def key_id(key: bytes) -> str:
    return hashlib.sha256(b"ticketd key id\x00" + key).digest()[:ID_SIZE].hex()


@dataclass(frozen=True)
class KeyEntry:
    id: str  # 16 hex digits
    key: bytes
    created: datetime | None = None
    superseded: datetime | None = None  # when another key became the write key


@dataclass(frozen=True)
class KeyringData:
    keys: tuple[KeyEntry, ...]
    write: str
    rotating: str | None = None
    legacy: bool = False  # the file is one raw key, written before rotation existed

    def entry(self, wanted: str) -> KeyEntry | None:
        return next((k for k in self.keys if k.id == wanted), None)

    @property
    def write_entry(self) -> KeyEntry:
        found = self.entry(self.write)
        assert found is not None  # checked when parsed or built
        return found

    def with_new_write_key(self, key: bytes, now: datetime) -> KeyringData:
        """A new key that seals from now on; the old ones still open until retired."""
        new = KeyEntry(key_id(key), key, created=now)
        kept = tuple(
            k if k.id != self.write or k.superseded else replace(k, superseded=now)
            for k in self.keys
        )
        return KeyringData(keys=(new, *kept), write=new.id, rotating=new.id)

    def to_json(self) -> bytes:
        def moment(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        document = {
            "format": FORMAT,
            "version": 1,
            "write": self.write,
            "rotating": self.rotating,
            "keys": [
                {
                    "id": k.id,
                    "key": base64.b64encode(k.key).decode(),
                    "created": moment(k.created),
                    "superseded": moment(k.superseded),
                }
                for k in self.keys
            ],
        }
        return (json.dumps(document, indent=2) + "\n").encode()


def _parse(path: Path, raw: bytes) -> KeyringData:
    if raw.lstrip().startswith(b"{"):
        try:
            return _parse_json(path, json.loads(raw))
        except (ValueError, KeyError, TypeError, binascii.Error) as error:
            if len(raw) != KEY_SIZE:
                raise KeyFileError(f"{path}: not a ticketd keyring: {error}") from error
    if len(raw) != KEY_SIZE:
        raise KeyFileError(
            f"{path}: a key file holds exactly {KEY_SIZE} bytes or a ticketd keyring "
            f"(it has {len(raw)} bytes)"
        )
    entry = KeyEntry(key_id(raw), raw)
    return KeyringData(keys=(entry,), write=entry.id, legacy=True)


def _parse_json(path: Path, document: Any) -> KeyringData:
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise KeyFileError(f'{path}: not a ticketd keyring (no "format": "{FORMAT}")')
    if document.get("version") != 1:
        raise KeyFileError(f"{path}: keyring version {document.get('version')!r} is unknown")
    entries: list[KeyEntry] = []
    for item in document["keys"]:
        key = base64.b64decode(item["key"], validate=True)
        if len(key) != KEY_SIZE:
            raise KeyFileError(f"{path}: key {item.get('id')} is not {KEY_SIZE} bytes")
        if item["id"] != key_id(key):
            raise KeyFileError(f"{path}: key {item['id']} does not match its id")
        entries.append(
            KeyEntry(
                item["id"],
                key,
                created=_moment(item.get("created")),
                superseded=_moment(item.get("superseded")),
            )
        )
    data = KeyringData(
        keys=tuple(entries), write=document["write"], rotating=document.get("rotating")
    )
    if data.entry(data.write) is None:
        raise KeyFileError(f"{path}: the write key {data.write} is not in the keyring")
    return data


def _moment(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _check_mode(path: Path, mode: int) -> None:
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"{path}: the key file must be readable by its owner only (0600), "
            f"it is {stat.S_IMODE(mode):04o}"
        )


def create_if_missing(path: Path) -> None:
    """A new random key, owner-only; two daemons starting at once agree on one (O_EXCL)."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    try:
        os.write(fd, AESGCM.generate_key(bit_length=KEY_SIZE * 8))
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(path.parent)


def read_keyring(path: Path) -> tuple[KeyringData, tuple[int, int, int, int]]:
    """The keyring and the stat it was read under (to notice a later replacement)."""
    try:
        with path.open("rb") as handle:
            info = os.fstat(handle.fileno())
            _check_mode(path, info.st_mode)
            raw = handle.read()
    except FileNotFoundError as error:
        raise KeyFileError(f"{path}: the key file is missing") from error
    except PermissionError as error:
        raise KeyFileError(f"{path}: cannot read the key file: {error.strerror}") from error
    stamp = (info.st_dev, info.st_ino, info.st_mtime_ns, info.st_size)
    return _parse(path, raw), stamp


def write_keyring(path: Path, data: KeyringData) -> None:
    """Replace the key file whole: temporary file 0600, fsync, rename, fsync the folder."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data.to_json())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Exclusive among processes changing the keyring (rotation, retirement)."""
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class Keyring:
    """One process's view of the key file, re-read when the file changes."""

    def __init__(self, path: Path | None, data: KeyringData) -> None:
        self.path = path
        self._data = data
        self._stamp: tuple[int, int, int, int] | None = None
        self._ciphers: dict[str, AESGCM] = {}
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path) -> Keyring:
        """The keyring in `path`, a new random key created (0600) when the file is missing."""
        create_if_missing(path)
        data, stamp = read_keyring(path)
        keyring = cls(path, data)
        keyring._stamp = stamp
        return keyring

    def __reduce__(self) -> tuple[Any, tuple[Path]]:
        """A keyring travels to another process (the daemon's parsing process reads blobs) as
        its file's path, never as its keys: that process opens the file itself, once."""
        if self.path is None:
            raise TypeError("a keyring held in memory only does not leave its process")
        return (_shared, (self.path,))

    @classmethod
    def fixed(cls, key: bytes) -> Keyring:
        """One key held in memory only (no file to re-read)."""
        if len(key) != KEY_SIZE:
            raise KeyFileError(f"a key is exactly {KEY_SIZE} bytes")
        entry = KeyEntry(key_id(key), key)
        return cls(None, KeyringData(keys=(entry,), write=entry.id, legacy=True))

    @property
    def data(self) -> KeyringData:
        return self._data

    def refresh(self) -> bool:
        """Re-read the file if it was replaced since it was read; True if it was."""
        if self.path is None:
            return False
        try:
            info = os.stat(self.path)
        except FileNotFoundError as error:
            raise KeyFileError(f"{self.path}: the key file is missing") from error
        if (info.st_dev, info.st_ino, info.st_mtime_ns, info.st_size) == self._stamp:
            return False
        self.reload()
        return True

    def reload(self) -> None:
        if self.path is None:
            return
        data, stamp = read_keyring(self.path)
        with self._lock:
            before = self._data
            self._data, self._stamp = data, stamp
            # A retired key leaves this process's memory too.
            held = {entry.id for entry in data.keys}
            self._ciphers = {k: c for k, c in self._ciphers.items() if k in held}
        if (before.write, [k.id for k in before.keys]) != (data.write, [k.id for k in data.keys]):
            # Ids only: never a key.
            log.info(
                "key file %s re-read: sealing with key %s; keys held: %s",
                self.path,
                data.write,
                ", ".join(k.id for k in data.keys),
            )

    def writer(self) -> tuple[str, AESGCM]:
        """The key that seals now (the file re-read first if it changed)."""
        self.refresh()
        data = self._data
        return data.write, self._cipher(data.write_entry)

    def is_writer(self, wanted: str) -> bool:
        """Is `wanted` still the write key? (After sealing: did a rotation begin meanwhile?)"""
        self.refresh()
        return self._data.write == wanted

    def opener(self, wanted: str) -> AESGCM | None:
        """The cipher for key id `wanted`; an unknown id re-reads the file once (a rotation
        another process began); None when the file does not hold it either (retired)."""
        entry = self._entry(wanted)
        return None if entry is None else self._cipher(entry)

    def _entry(self, wanted: str) -> KeyEntry | None:
        entry = self._data.entry(wanted)
        if entry is None:
            self.refresh()
            entry = self._data.entry(wanted)
        return entry

    def _named_entry(self, kid: str) -> KeyEntry:
        """The key a sealed value names; UnknownKey when this keyring does not hold it."""
        entry = self._entry(kid)
        if entry is None:
            raise UnknownKey(
                f"sealed with key {kid}, which {self.describe()} does not hold "
                "(retired, or another key file)"
            )
        return entry

    def all_openers(self) -> list[AESGCM]:
        """Every key, for blobs sealed before they carried a key id."""
        return [self._cipher(entry) for entry in self._data.keys]

    def seal(
        self, magic: bytes, plaintext: bytes | bytearray, bound: bytes
    ) -> tuple[str, bytearray]:
        """(key id, `magic` + key id + nonce + ciphertext-with-tag) under the write key. The
        header and `bound` (what names the content: its address or its hash) are the associated
        data, so a sealed value moved under another name, or altered in any bit, fails to open.
        The sealed value is written into one buffer of its final size: no other copy."""
        kid, pieces = self.seal_pieces(magic, plaintext, bound)
        sealed = bytearray(len(magic) + ID_SIZE + NONCE_SIZE + len(plaintext) + TAG_SIZE)
        at = 0
        for piece in pieces:
            sealed[at : at + len(piece)] = piece
            at += len(piece)
        return kid, sealed

    def seal_pieces(
        self, magic: bytes, plaintext: bytes | bytearray, bound: bytes
    ) -> tuple[str, Iterator[bytes]]:
        """`seal` as the pieces to write one after the other (header and nonce, the ciphertext
        a megabyte at a time, the tag), encrypted as they are taken: joined, the very bytes
        `seal` returns, but never the whole sealed value in memory beside the plaintext."""
        kid = self.writer()[0]
        entry = self._data.entry(kid)
        if entry is None:  # retired by another thread's re-read this very moment
            raise UnknownKey(f"the write key {kid} was retired while sealing")
        header = magic + bytes.fromhex(entry.id)
        nonce = os.urandom(NONCE_SIZE)
        encryptor = Cipher(algorithms.AES(entry.key), modes.GCM(nonce)).encryptor()
        encryptor.authenticate_additional_data(header + bound)
        return entry.id, _sealed_pieces(header + nonce, encryptor, memoryview(plaintext))

    def open_sealed(self, magic: bytes, sealed: bytes, bound: bytes) -> bytes:
        """What `seal(magic, ..., bound)` sealed. Raises UnknownKey for a key this keyring does
        not hold (retired, or another key file), InvalidTag when it fails authentication."""
        header = sealed[: len(magic) + ID_SIZE]
        cipher = self._cipher(self._named_entry(header[len(magic) :].hex()))
        body = memoryview(sealed)[len(header) :]  # views, not copies of a 25 MB value
        return cipher.decrypt(body[:NONCE_SIZE], body[NONCE_SIZE:], header + bound)

    def open_sealed_from(
        self, magic: bytes, handle: io.BufferedIOBase, size: int, bound: bytes
    ) -> bytearray:
        """`open_sealed` of the `size` bytes `handle` holds from its start, read and decrypted a
        megabyte at a time into one buffer: the sealed value is never held whole beside its
        plaintext (issue 19: a 25 MB message cost the parsing process both). The plaintext is
        returned only once the tag has verified it; raises as `open_sealed` does."""
        header = handle.read(len(magic) + ID_SIZE)
        nonce = handle.read(NONCE_SIZE)
        length = size - len(header) - NONCE_SIZE - TAG_SIZE
        if len(header) < len(magic) + ID_SIZE or len(nonce) < NONCE_SIZE or length < 0:
            raise InvalidTag()  # truncated: what `open_sealed` finds of it too
        entry = self._named_entry(header[len(magic) :].hex())
        handle.seek(size - TAG_SIZE)
        tag = handle.read(TAG_SIZE)
        handle.seek(len(header) + NONCE_SIZE)
        decryptor = Cipher(algorithms.AES(entry.key), modes.GCM(nonce, tag)).decryptor()
        decryptor.authenticate_additional_data(header + bound)
        return _opened_pieces(decryptor, handle, length)

    def open_unlabelled(self, sealed: bytes, bound: bytes) -> bytes | None:
        """Nonce + ciphertext sealed before values named their key: whichever key opens it
        (the file re-read once, a rotation may be under way); None when none does."""
        for attempt in range(2):
            for cipher in self.all_openers():
                try:
                    body = memoryview(sealed)
                    return cipher.decrypt(body[:NONCE_SIZE], body[NONCE_SIZE:], bound)
                except InvalidTag:
                    continue
            if attempt == 0 and not self.refresh():
                break
        return None

    def _cipher(self, entry: KeyEntry) -> AESGCM:
        cipher = self._ciphers.get(entry.id)
        if cipher is None:
            cipher = self._ciphers[entry.id] = AESGCM(entry.key)
        return cipher

    def describe(self) -> str:
        return str(self.path) if self.path is not None else "the in-memory key"


def _sealed_pieces(
    head: bytes, encryptor: AEADEncryptionContext, plaintext: memoryview
) -> Iterator[bytes]:
    yield head
    for start in range(0, len(plaintext), SEAL_PIECE):
        yield encryptor.update(plaintext[start : start + SEAL_PIECE])
    yield encryptor.finalize() + encryptor.tag


def _opened_pieces(
    decryptor: AEADDecryptionContext, handle: io.BufferedIOBase, length: int
) -> bytearray:
    """The `length` bytes of ciphertext `handle` reads next, decrypted into one buffer."""
    # Room for a block more than the plaintext: `update_into` may ask for it (older versions
    # of cryptography do); cut off after, in place, since a bytearray shrinks without a copy.
    plain = bytearray(length + 16)
    piece = bytearray(min(SEAL_PIECE, length))  # a 2 KB message needs no megabyte to read it
    with memoryview(plain) as into, memoryview(piece) as read:
        at = 0
        while at < length:
            got = handle.readinto(read[: min(SEAL_PIECE, length - at)])
            if not got:
                raise InvalidTag()  # the file shrank while read
            at += decryptor.update_into(read[:got], into[at:])
        decryptor.finalize()  # InvalidTag unless every byte and the associated data are intact
    del plain[length:]
    return plain


# The keyrings this process received from another (Keyring.__reduce__), one per key file: each
# re-reads its file when it changes, as every keyring does.
_RECEIVED: dict[Path, Keyring] = {}
_RECEIVED_LOCK = threading.Lock()


def _shared(path: Path) -> Keyring:
    with _RECEIVED_LOCK:
        keyring = _RECEIVED.get(path)
        if keyring is None:
            keyring = _RECEIVED[path] = Keyring.open(path)
        return keyring
