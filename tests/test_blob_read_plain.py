"""A sealed blob read for the parse (`read_plain`): opened a megabyte at a time into one buffer,
and still only ever what was sealed under that name, whole and authenticated (promise 6)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from storage.blobs import BlobStore
from storage.keyring import SEAL_PIECE, Keyring
from storage.sealed_blobs import MAGIC, SealedBlobError, SealedBlobStore

KEY = bytes(range(32))
# Several pieces and a part of one, so the last read is short; and the small sizes around 0.
SIZES = (0, 1, 15, 16, 17, SEAL_PIECE - 1, SEAL_PIECE, SEAL_PIECE + 1, 3 * SEAL_PIECE + 12345)


@pytest.fixture
def store(tmp_path: Path) -> SealedBlobStore:
    return SealedBlobStore(tmp_path / "blobs", KEY)


@pytest.mark.parametrize("size", SIZES)
def test_what_was_sealed_comes_back_whole(store: SealedBlobStore, size: int) -> None:
    plaintext = os.urandom(size)
    address = store.put(plaintext)
    opened = store.read_plain(address)
    assert isinstance(opened, bytearray)
    assert opened == plaintext == store.get(address)


@pytest.mark.parametrize("where", [0.0, 0.5, 1.0])
def test_one_changed_bit_anywhere_opens_nothing(store: SealedBlobStore, where: float) -> None:
    # The first byte of the ciphertext, one in the middle piece, the last byte of the tag.
    address = store.put(os.urandom(2 * SEAL_PIECE + 7))
    path = store.path_for(address)
    sealed = bytearray(path.read_bytes())
    header = len(b"TKDSEAL2") + 8 + 12
    at = header + int(where * (len(sealed) - header - 1))
    sealed[at] ^= 0x01
    path.write_bytes(sealed)
    with pytest.raises(SealedBlobError, match="failed authentication"):
        store.read_plain(address)


@pytest.mark.parametrize("keep", [12, 20, 28, 40])
def test_a_truncated_blob_opens_nothing(store: SealedBlobStore, keep: int) -> None:
    # Cut inside the key id, inside the nonce, right after it (no tag), and in the ciphertext.
    address = store.put(b"Merhaba, siparisim gelmedi.\r\n" * 4)
    path = store.path_for(address)
    path.write_bytes(path.read_bytes()[:keep])
    with pytest.raises(SealedBlobError, match="failed authentication"):
        store.read_plain(address)


def test_a_blob_moved_under_another_name_opens_nothing(store: SealedBlobStore) -> None:
    first, second = store.put(b"first message\r\n"), store.put(b"second message\r\n")
    store.path_for(first).write_bytes(store.path_for(second).read_bytes())
    with pytest.raises(SealedBlobError, match="failed authentication"):
        store.read_plain(first)


def test_a_key_the_keyring_does_not_hold_is_named(store: SealedBlobStore, tmp_path: Path) -> None:
    address = store.put(b"sealed with the first key\r\n")
    other = SealedBlobStore(store.root, Keyring.fixed(bytes(32)))
    with pytest.raises(SealedBlobError, match="does not hold"):
        other.read_plain(address)


def test_the_older_formats_are_read_as_before(store: SealedBlobStore) -> None:
    clear = b"written before the store was sealed\r\n"
    address = BlobStore(store.root).put(clear)
    assert store.read_plain(address) == clear
    # Version 1 goes to `open_stored` as before: its failure reads as it always did.
    path = store.path_for(address)
    path.write_bytes(MAGIC + b"not a real seal")
    with pytest.raises(SealedBlobError, match="failed authentication"):
        store.read_plain(address)
