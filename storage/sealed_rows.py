"""The outbox's stored bytes, sealed at rest (promise 6): the column type of `outbox.raw`.

An agent's notification attaches the customer's files (an identity document to identity agents),
an agent's answer its own; the outbox keeps those bytes until `[retention] raw_days` after the
mail left. In the database in clear, they were the one copy of a document not encrypted at rest
(SQLite's file and its -wal, PostgreSQL's pages and backups). They are sealed as the journal's
blobs are (storage/sealed_blobs.py), with the same keys:

    "TKDMAIL1" + key id (8 bytes) + nonce (12) + ciphertext-with-tag,
    associated data: "TKDMAIL1" + key id + "outbox.raw"

`SealedBytes` does it for every statement of the ORM and of Core that names the column: the
value bound is sealed with the keyring `bind` gave the engine, a value read is opened, so the
sender, retention, the export and the erasure read and write plain bytes as before. A value
without the prefix was written before sealing and is read as it is; the retention pass and a
key rotation seal such rows (storage/rotation.py `reseal_outbox`), the rotation every row not
under its new key. An engine without a keyring (the read-only commands: `outbox list`, `tickets
show`, which never read the bytes) gets the sealed value as stored, and refuses to write one.

The associated data cannot name the row (its id is not known when the INSERT binds the value):
a value copied into another row of the outbox still opens there. Whoever can write the database
can change a mail's recipients all the same.
"""

from __future__ import annotations

from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Engine, LargeBinary, TypeDecorator, func, type_coerce
from sqlalchemy.engine import Dialect

from storage.errors import Permanent
from storage.keyring import ID_SIZE, Keyring

MAGIC = b"TKDMAIL1"
HEADER = len(MAGIC) + ID_SIZE
BOUND = b"outbox.raw"

# The keyring of each engine's dialect (one dialect per engine).
_KEYRINGS: WeakKeyDictionary[Dialect, Keyring] = WeakKeyDictionary()


class UnsealedWrite(Permanent):
    """Outbox bytes written by a process that holds no key file: they would be stored in clear."""


def bind(engine: Engine, keyring: Keyring) -> None:
    """Seal and open `outbox.raw` on `engine` with `keyring` (ticketd/state.open_state)."""
    _KEYRINGS[engine.dialect] = keyring


def keyring_of(engine: Engine) -> Keyring | None:
    return _KEYRINGS.get(engine.dialect)


def stored_header(column: Any) -> Any:
    """The first bytes of the column as stored (not opened), for a query: the key id is there."""
    return type_coerce(func.substr(type_coerce(column, LargeBinary), 1, HEADER), LargeBinary)


def key_id(stored: bytes) -> str | None:
    """The id of the key that sealed a stored value; None when it is not sealed."""
    if stored.startswith(MAGIC) and len(stored) >= HEADER:
        return stored[len(MAGIC) : HEADER].hex()
    return None


class SealedBytes(TypeDecorator[bytes]):
    """Bytes stored sealed with the engine's keyring, read back opened."""

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value: bytes | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        keyring = _KEYRINGS.get(dialect)
        if keyring is None:
            raise UnsealedWrite(
                "outbox bytes are written only with the key file ([kyc] key_file) at hand"
            )
        return bytes(keyring.seal(MAGIC, value, BOUND)[1])

    def process_result_value(self, value: Any, dialect: Dialect) -> bytes | None:
        if value is None:
            return None
        stored = bytes(value)  # psycopg may hand back a memoryview
        keyring = _KEYRINGS.get(dialect)
        if key_id(stored) is None or keyring is None:
            return stored  # written before sealing; or no key here (never read as mail then)
        return keyring.open_sealed(MAGIC, stored, BOUND)
