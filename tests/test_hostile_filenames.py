"""Issue 10: attachment filenames never become paths. Properties of `safe_filename` over any
text (hypothesis), the cases the issue names, and its use where parsing stores a filename."""

from __future__ import annotations

import unicodedata
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import PurePosixPath, PureWindowsPath

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from ingest.filenames import MAX_BYTES, safe_filename
from ingest.parsing import parse_message

RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{n}" for n in range(1, 10))}
RESERVED |= {f"LPT{n}" for n in range(1, 10)}
TURKISH = "çğıİöşüÇĞÖŞÜâî"
# Names a hostile sender writes: separators, dots, drive letters, devices, controls.
PIECES = ["/", "\\", ".", "..", ":", "\x00", "\r\n", "\x1f", "\u202e", " ", "C:", "con", "NUL"]
PIECES += ["COM1", "lpt9", "a", "é", "e\u0301", "ı", "İ", "ş", "\udcff", "<", "*", "\u2028", "pdf"]
hostile_names = st.lists(st.sampled_from(PIECES) | st.text(max_size=4), max_size=40).map(
    "".join
) | st.text(max_size=600)


def _assert_harmless(result: str) -> None:
    assert result and result == result.strip()
    assert "/" not in result and "\\" not in result and ":" not in result
    assert not any(unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp") for c in result)
    assert not result.startswith(".") and not result.endswith(".")
    assert result not in (".", "..")
    assert len(result.encode("utf-8")) <= MAX_BYTES
    assert result.split(".")[0].strip().upper() not in RESERVED
    # It names a file in the folder it is joined to, on either system.
    assert PurePosixPath(result).name == result
    assert PureWindowsPath(result).name == result and not PureWindowsPath(result).drive


@given(hostile_names)
@example("../../etc/passwd")
@example("..\\..\\Windows\\System32\\config\\SAM")
@example("/etc/shadow")
@example("C:\\boot.ini")
@example("con.txt")
@example("fatura\u202efdp.exe")
@example("\x00")
@example("." * 300)
def test_safe_filename_is_harmless_and_idempotent(name: str) -> None:
    result = safe_filename(name)
    _assert_harmless(result)
    assert safe_filename(result) == result


@given(
    st.text(alphabet=st.sampled_from(list(TURKISH + "abcxyz09-_ ")), min_size=1, max_size=30),
    st.sampled_from(["pdf", "jpg", "docx", "xlsx", "zip"]),
)
def test_ordinary_turkish_names_are_kept(stem: str, extension: str) -> None:
    name = f"{' '.join(stem.split()) or 'x'}.{extension}"
    assert safe_filename(name) == unicodedata.normalize("NFC", name)


@given(st.text(alphabet=st.sampled_from(list(TURKISH + "ab")), min_size=300, max_size=400))
def test_overlong_names_are_cut_keeping_the_extension(stem: str) -> None:
    result = safe_filename(f"{stem}.pdf")
    assert result.endswith(".pdf") and len(result.encode("utf-8")) <= MAX_BYTES
    assert stem.startswith(result.removesuffix(".pdf"))  # cut at a whole character


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\boot.ini", "boot.ini"),
        ("/var/lib/ticketd/blobs/x.pdf", "x.pdf"),
        ("C:\\Users\\ayşe\\Masaüstü\\dekont.pdf", "dekont.pdf"),
        ("..", "attachment"),
        ("dek\x00ont.pdf", "dekont.pdf"),
        ("CON", "_CON"),
        ("com1.txt", "_com1.txt"),
        ("lpt9.tar.gz", "_lpt9.tar.gz"),
        ("Nüfus cüzdanı İşlem Şubesi.JPG", "Nüfus cüzdanı İşlem Şubesi.JPG"),
        (".htaccess", "htaccess"),
        ("fatura.pdf.", "fatura.pdf"),
        ("a:b?.pdf", "a_b_.pdf"),
    ],
)
def test_named_cases(name: str, expected: str) -> None:
    assert safe_filename(name) == expected


def test_parsing_stores_only_safe_filenames() -> None:
    mail = EmailMessage()
    mail["From"] = "ayse@musteri.com.tr"
    mail["Subject"] = "dekont"
    mail.set_content("ekte")
    mail.add_attachment(b"%PDF", maintype="application", subtype="pdf", filename="../../x/ö.pdf")
    mail.add_attachment(b"MZ", maintype="application", subtype="octet-stream", filename="NUL")
    parsed = parse_message(mail.as_bytes(policy=SMTP))
    assert [a.filename for a in parsed.attachments] == ["ö.pdf", "_NUL"]
