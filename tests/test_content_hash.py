"""content_hash reads a large message in pieces, never copying it whole (issue 19: a 25 MB
message was copied three times in the parsing process). The pieces must give the very hash
the whole did: the journal's stored hashes tell a copy arriving later."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ingest import content_hash as module
from ingest.content_hash import _author_fields, _is_header_line, content_hash
from tests.test_corpus import corpus_root, message_files


def _hash_of_the_whole(raw: bytes) -> str:
    """content_hash as of 7a9669c, which normalised and sliced the whole message at once."""
    text = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if text.startswith(b"\xef\xbb\xbf"):
        text = text[3:]
    if text.startswith(b"From "):
        text = text.partition(b"\n")[2]
    head: list[bytes] = []
    start, body = 0, b""
    while start < len(text):
        end = text.find(b"\n", start)
        end = len(text) if end < 0 else end
        line = text[start:end]
        if not _is_header_line(line):
            body = text[end + 1 :] if not line else text[start:]
            break
        head.append(line)
        start = end + 1
    if head and head[-1].startswith(b"From "):
        body = head.pop() + b"\n" + body
    digest = hashlib.sha256()
    for name, value in _author_fields(head):
        digest.update(name + b":" + value + b"\n")
    digest.update(b"\n")
    digest.update(body.rstrip(b"\n \t"))
    return digest.hexdigest()


ATOMS = [
    b"Subject: x",
    b"From: a@b.c",
    b" folded",
    b"From host1",
    b"\xef\xbb\xbf",
    b"text",
    b"\r",
    b"\n",
    b"\r\n",
    b" ",
    b"\t",
    b":",
    b"\xc3\xa7",
]


@settings(max_examples=500, deadline=None)
@example([b"text", b"\r", b"\r\n", b"Subject: x"], 1)  # CR, CR LF across two pieces
@given(atoms=st.lists(st.sampled_from(ATOMS), max_size=40), piece=st.integers(1, 9))
def test_the_pieces_hash_as_the_whole_did(atoms: list[bytes], piece: int) -> None:
    # Pieces of a few bytes: every edge falls inside a CRLF, a run of trailing blanks, a field.
    raw = b"".join(atoms)
    kept, module.PIECE = module.PIECE, piece
    try:
        assert content_hash(raw) == _hash_of_the_whole(raw)
    finally:
        module.PIECE = kept


@pytest.mark.parametrize("piece", [1, 2, 3, 64, module.PIECE])
def test_the_corpus_hashes_as_before(piece: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(module, "PIECE", piece)
    raws = [path.read_bytes() for path in message_files(corpus_root())][:: 1 if piece > 3 else 9]
    assert len(raws) > 50
    assert [content_hash(raw) for raw in raws] == [_hash_of_the_whole(raw) for raw in raws]


def test_a_body_of_blanks_after_text_is_cut_however_the_pieces_fall() -> None:
    raw = b"Subject: x\r\n\r\nmetin" + b" \r\n\t" * (3 * module.PIECE // 4) + b"\r\n"
    assert content_hash(raw) == content_hash(b"Subject: x\n\nmetin")
    assert content_hash(raw + b"son") != content_hash(b"Subject: x\n\nmetin")
