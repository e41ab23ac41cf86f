"""Outlook's winmail.dat (TNEF): the files inside reach the message as attachments (issue 6).

Over the shared corpus: every `.tnef` of mimekit/tnef and tnefparse/examples, wrapped in a MIME
message the way Exchange sends it (a text part and an application/ms-tnef part named
winmail.dat), goes through `parse_message`.

What the `.list` files mean. Each names, one per line, what the `tnef` tool extracts: the
attachments, and `body.rtf` or `body.html` for the message body it saves (`--save-body`); an empty
line is nothing. A body is not an attachment (the MIME around the winmail.dat carries the text),
so those entries are left out of the expected names. Three lists disagree with the extraction that
MimeKit, whose test data they are, stores beside them (the folder of the same name):
`LIST_DIFFERENCES` names what ticketd finds instead and why, and the test checks each such name
against that folder. The bytes of every file are compared with the folder too (text files modulo
line endings, which MimeKit's checkout converted).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from domain.clock import FixedClock
from domain.message import DECORATION, ENCLOSED, FILE, FORWARDED, INLINE, AttachmentInfo
from ingest.parsing import parse_message
from ingest.tnef import unpack
from storage.models import Document
from tests.helpers import make_config
from tests.test_corpus import corpus_root
from tests.test_kyc import CUSTOMER, PDF, TEAM, _documents, _outbox
from tests.test_threading import deliver
from tests.tnef_writer import TnefAttachment, write_tnef
from ticketd.state import State, open_state

# .list entries that name the message body the tnef tool saves, not an attachment.
BODY_ENTRIES = frozenset({"body.rtf", "body.html", "body.txt"})
CHRISTMAS = "kitten-playing-with-a-christmas-tree.jpg"
# Where the tnef tool's list and MimeKit's own extraction disagree: what ticketd finds, and why.
LIST_DIFFERENCES = {
    "christmas": (
        [CHRISTMAS, "Untitled Attachment", "Untitled Attachment", CHRISTMAS],
        "the list names each of the two embedded messages twice (once for its 89-byte "
        "placeholder 'This attachment is a MAPI 1.0 embedded message...', once for the message). "
        "ticketd keeps each embedded message once (its TNEF bytes, MimeKit's 'Untitled "
        "Attachment.2' and '.4') and also finds the photo inside the second one",
    ),
    "long-filename": (
        ["allproductsmar2000.dat"],
        "the list has only the body; the file is in the TNEF and in MimeKit's extraction",
    ),
    "missing-filenames": (
        ["generpts.src", "TechlibDEC99.doc", "TechlibDEC99-JAN00.doc", "TechlibNOV99.doc"],
        "the list has only the body; the four files (three without a title, named by their "
        "long filename) are in the TNEF and in MimeKit's extraction",
    ),
}


def winmail_message(tnef: bytes, text: str | None = "Belgelerim ekte.") -> bytes:
    """A message as Exchange sends Outlook's rich text: a text part and the winmail.dat."""
    mail = EmailMessage()
    mail["From"] = CUSTOMER
    mail["To"] = "destek@example.com"
    mail["Subject"] = "Kimlik belgelerim"
    if text is not None:
        mail.set_content(text)
    else:
        mail.make_mixed()
    mail.add_attachment(tnef, maintype="application", subtype="ms-tnef", filename="winmail.dat")
    return mail.as_bytes(policy=SMTP)


@pytest.fixture
def kyc_state(tmp_path: Path, clock: FixedClock) -> Iterator[State]:
    opened = open_state(make_config(tmp_path, extra=TEAM), clock=clock)
    yield opened
    opened.close()


def _list_files() -> Iterator[Path]:
    folder = corpus_root() / "mimekit" / "tnef"
    yield from sorted(p for p in folder.glob("*.tnef") if p.with_suffix(".list").is_file())


def _expected(tnef: Path) -> list[str]:
    if tnef.stem in LIST_DIFFERENCES:
        return sorted(LIST_DIFFERENCES[tnef.stem][0])
    lines = tnef.with_suffix(".list").read_text(encoding="utf-8").split("\n")
    return sorted(line for line in lines if line.strip() and line not in BODY_ENTRIES)


def _extracted(folder: Path, attachment: AttachmentInfo) -> list[bytes]:
    """MimeKit's extraction of a file: by its name, or its name with a ".N" for duplicates."""
    if not folder.is_dir():
        return []
    return [
        path.read_bytes()
        for path in folder.iterdir()
        if path.name == attachment.filename or path.stem == attachment.filename
    ]


def _same(a: bytes, b: bytes) -> bool:
    return a == b or a.replace(b"\r\n", b"\n") == b.replace(b"\r\n", b"\n")


def test_the_corpus_has_tnef_lists() -> None:
    assert len(list(_list_files())) >= 19


@pytest.mark.parametrize("tnef", list(_list_files()), ids=lambda p: p.stem)
def test_a_winmail_dat_gives_the_files_its_list_names(tnef: Path) -> None:
    message = parse_message(winmail_message(tnef.read_bytes()))
    assert message.text == "Belgelerim ekte."
    names = sorted(a.filename for a in message.attachments)
    assert names == _expected(tnef)
    assert "winmail.dat" not in names  # replaced by what it holds
    folder = tnef.with_suffix("")
    for attachment in message.attachments:
        assert attachment.size == len(attachment.payload)
        if attachment.role == ENCLOSED:
            continue  # inside an embedded message: MimeKit does not extract those
        copies = _extracted(folder, attachment)
        assert copies or not folder.is_dir(), f"{attachment.filename} not in MimeKit's folder"
        assert any(_same(copy, attachment.payload) for copy in copies), attachment.filename


def test_the_list_differences_are_documented_and_still_differ() -> None:
    for stem, (_names, reason) in LIST_DIFFERENCES.items():
        tnef = corpus_root() / "mimekit" / "tnef" / f"{stem}.tnef"
        listed = tnef.with_suffix(".list").read_text(encoding="utf-8").split("\n")
        listed = sorted(line for line in listed if line.strip() and line not in BODY_ENTRIES)
        assert listed != _expected(tnef), f"{stem}: the list now agrees, drop the difference"
        assert reason


def test_embedded_messages_are_kept_whole_and_their_files_found() -> None:
    tnef = corpus_root() / "mimekit" / "tnef" / "christmas.tnef"
    message = parse_message(winmail_message(tnef.read_bytes()))
    roles = [(a.filename, a.role) for a in message.attachments]
    assert roles == [
        (CHRISTMAS, FILE),
        ("Untitled Attachment", FORWARDED),
        ("Untitled Attachment", FORWARDED),
        (CHRISTMAS, ENCLOSED),  # the photo inside the second embedded message
    ]
    assert message.attachments[1].payload.startswith(b"\x78\x9f\x3e\x22")  # a TNEF itself


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("umlaut", ["TBZ PARIV GmbH.jpg", "UmlautAnhang-äüö.txt", "image003.jpg"]),
        ("duplicate_filename", ["VIA_Nytt_14021.htm", "file_abcdefgh.txt", "file_abcdefgh.txt"]),
        ("bad_checksum", ["image001.png"]),
        ("IPM-DistList", ["Untitled Attachment"]),
    ],
)
def test_tnefparse_examples_without_a_list(name: str, expected: list[str]) -> None:
    tnef = corpus_root() / "tnefparse" / "examples" / f"{name}.tnef"
    message = parse_message(winmail_message(tnef.read_bytes()))
    assert sorted(a.filename for a in message.attachments) == expected


def test_every_tnef_of_both_folders_is_unpacked() -> None:
    """No corpus TNEF is so broken that it must stay whole: each is read."""
    root = corpus_root()
    paths = sorted([*root.glob("tnefparse/examples/*.tnef"), *root.glob("mimekit/tnef/*.tnef")])
    assert len(paths) >= 38
    for path in paths:
        assert unpack(path.read_bytes()) is not None, path.name


def test_outlook_inline_images_in_a_winmail_dat_are_told_from_the_logo() -> None:
    """panic.tnef: two screenshots shown in the body, and the sender's 151x112 signature logo."""
    tnef = corpus_root() / "mimekit" / "tnef" / "panic.tnef"
    message = parse_message(winmail_message(tnef.read_bytes()))
    roles = {a.filename: a.role for a in message.attachments}
    assert roles == {"image001.jpg": INLINE, "image002.jpg": INLINE, "image003.png": DECORATION}


def test_the_body_of_a_tnef_is_the_text_when_the_mime_has_none() -> None:
    tnef = corpus_root() / "mimekit" / "tnef" / "body.tnef"
    message = parse_message(winmail_message(tnef.read_bytes(), text=None))
    assert message.attachments == ()
    assert message.text.strip()  # read from the TNEF's HTML body
    with_text = parse_message(winmail_message(tnef.read_bytes()))
    assert with_text.text == "Belgelerim ekte."  # the MIME's own text wins


def test_outlook_messages_of_the_corpus() -> None:
    """Two whole messages Outlook sent with a winmail.dat (mimekit/tnef/*.eml)."""
    folder = corpus_root() / "mimekit" / "tnef"
    christmas = parse_message((folder / "rich-text.eml").read_bytes())
    assert [a.filename for a in christmas.attachments if a.role == FILE] == [CHRISTMAS]
    assert "Christmas to remember" in christmas.text
    russian = parse_message((folder / "ukr.eml").read_bytes())  # a TNEF with a body only
    assert russian.attachments == () and russian.text.startswith("шостий")


TURKISH_NAMES = ["Kimlik Öğrenci Şahin ıİçÇ.jpg", "Fatura ğüşİ.pdf", "Pasaport Ünal.pdf"]


def test_tnef_names_are_read_in_the_tnef_codepage() -> None:
    """A Turkish Outlook writes names in windows-1254: as a long filename, or only a title."""
    photo = _jpeg(40, 30)
    tnef = write_tnef(
        [
            TnefAttachment(photo, title="KIMLIK~1.JPG", long_filename=TURKISH_NAMES[0]),
            TnefAttachment(PDF, title=TURKISH_NAMES[1]),  # no long filename: the title
            TnefAttachment(PDF, long_filename=TURKISH_NAMES[2], long_filename_unicode=True),
        ],
        codepage=1254,
    )
    message = parse_message(winmail_message(tnef))
    assert [a.filename for a in message.attachments] == TURKISH_NAMES
    assert [a.payload for a in message.attachments] == [photo, PDF, PDF]


def test_binary_data_ending_in_zero_bytes_is_kept_exactly() -> None:
    """tnefparse strips trailing NULs from binary properties; the real length is read back."""
    for tail in (b"", b"\x00", b"\x00\x00", b"\x00\x00\x00", b"\x00" * 9):
        data = b"OLE-SECTOR" + tail
        tnef = write_tnef([TnefAttachment(data, long_filename="x.doc", data_as_property=True)])
        [attachment] = parse_message(winmail_message(tnef)).attachments
        assert attachment.payload == data


@pytest.mark.parametrize(
    "broken",
    [
        pytest.param(b"\x78\x9f\x3e\x22\x01\x00" + b"\xff" * 40, id="garbage-after-signature"),
        pytest.param(
            write_tnef([TnefAttachment(b"x" * 500, long_filename="a.jpg")])[:-300], id="cut-off"
        ),
        pytest.param(
            b"\x78\x9f\x3e\x22\x01\x00" + struct.pack("<BHHI", 1, 0x8008, 7, 0) * 5000,
            id="too-many-objects",
        ),
    ],
)
def test_a_tnef_that_cannot_be_read_stays_one_attachment(broken: bytes) -> None:
    assert unpack(broken) is None
    message = parse_message(winmail_message(broken))
    [attachment] = message.attachments
    assert (attachment.filename, attachment.payload, attachment.role) == (
        "winmail.dat",
        broken,
        FILE,
    )
    assert message.text == "Belgelerim ekte."


def test_a_winmail_dat_that_is_not_tnef_is_an_ordinary_attachment() -> None:
    message = parse_message(winmail_message(b"%PDF-1.4 not a tnef at all"))
    [attachment] = message.attachments
    assert attachment.filename == "winmail.dat" and attachment.role == FILE


def _jpeg(width: int, height: int) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.effect_noise((width, height), 64).convert("RGB").save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def test_kyc_documents_from_a_winmail_dat(kyc_state: State) -> None:
    """A Turkish Outlook's winmail.dat with an ID photo and a PDF: both become documents."""
    photo = _jpeg(1200, 760)
    tnef = write_tnef(
        [
            TnefAttachment(photo, title="KIMLIK~1.JPG", long_filename="Kimlik ön yüz.jpg"),
            TnefAttachment(PDF, title="Fatura ğüşİ.pdf"),
        ]
    )
    result = deliver(kyc_state, winmail_message(tnef, text="Kimlik belgelerim ektedir."))
    assert "documents: 2 stored, 0 refused" in result.detail, result.detail
    documents = _documents(kyc_state)
    assert [(d.filename, d.detected_type) for d in documents] == [
        ("Kimlik ön yüz.jpg", "jpeg"),
        ("Fatura ğüşİ.pdf", "pdf"),
    ]
    [receipt] = _outbox(kyc_state, "kyc_received")
    assert "Kimlik ön yüz.jpg" in receipt.text and "winmail.dat" not in receipt.text


def test_kyc_over_a_corpus_winmail_dat(kyc_state: State) -> None:
    """MAPI_ATTACH_DATA_OBJ.tnef: a real PDF is stored; the Word file and the HTML are refused."""
    tnef = corpus_root() / "mimekit" / "tnef" / "MAPI_ATTACH_DATA_OBJ.tnef"
    raw = winmail_message(tnef.read_bytes(), text="Kimlik belgelerim ektedir.")
    result = deliver(kyc_state, raw)
    assert "documents: 1 stored, 2 refused" in result.detail, result.detail
    documents: list[Document] = _documents(kyc_state)
    assert [(d.filename, d.detected_type) for d in documents] == [("VIA_Nytt_1402.pdf", "pdf")]
    [reply] = _outbox(kyc_state, "kyc_refused")
    assert "VIA_Nytt_1402.doc" in reply.text and "VIA_Nytt_14021.htm" in reply.text


def test_kyc_over_a_winmail_dat_with_an_embedded_message(kyc_state: State) -> None:
    """christmas.tnef: the photo, and again inside an embedded message, is one document; the
    embedded messages are kept with the message, neither documents nor refusals."""
    tnef = corpus_root() / "mimekit" / "tnef" / "christmas.tnef"
    result = deliver(kyc_state, winmail_message(tnef.read_bytes(), text="Kimliğim ektedir."))
    assert "documents: 1 stored, 0 refused" in result.detail, result.detail
    assert [d.filename for d in _documents(kyc_state)] == [CHRISTMAS]


def test_kyc_with_an_unreadable_winmail_dat_tells_the_customer(kyc_state: State) -> None:
    broken = b"\x78\x9f\x3e\x22\x01\x00" + b"\xff" * 40
    result = deliver(kyc_state, winmail_message(broken, text="Kimlik belgelerim ektedir."))
    assert "documents: 0 stored, 1 refused" in result.detail, result.detail
    [reply] = _outbox(kyc_state, "kyc_refused")
    assert "winmail.dat" in reply.text


def test_a_tnef_with_too_many_embedded_messages_is_not_unpacked() -> None:
    from tnefparse.mapi import IMESSAGE_SIG

    photo = TnefAttachment(_jpeg(40, 30), long_filename="a.jpg")
    tnef = write_tnef([photo, TnefAttachment(IMESSAGE_SIG * 17, long_filename="x")])
    assert unpack(tnef) is None
    [attachment] = parse_message(winmail_message(tnef)).attachments
    assert attachment.filename == "winmail.dat" and attachment.payload == tnef


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.data())
def test_mutated_tnef_never_raises_and_never_loses_the_winmail_dat(data: st.DataObject) -> None:
    """Bytes of a real TNEF flipped, cut or repeated: unpacked, or kept whole; never an error."""
    tnef = bytearray(write_tnef([TnefAttachment(PDF, title="Fatura ğüşİ.pdf")]))
    for _ in range(data.draw(st.integers(0, 8))):
        position = data.draw(st.integers(0, len(tnef) - 1))
        tnef[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(6, len(tnef)))
    payload = bytes(tnef[:cut]) + data.draw(st.binary(max_size=64))
    contents = unpack(payload)
    message = parse_message(winmail_message(payload))
    if contents is None:
        assert [(a.filename, a.payload) for a in message.attachments] == [("winmail.dat", payload)]
    else:
        assert len(message.attachments) == len(contents.files)
