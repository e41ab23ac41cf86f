"""Sign-offs stay, decorations go (issue 15, point 13): an agent's "Saygılarımla,\\nMehmet" or
"Best regards,\\nMehmet Demir" reaches the customer, a `-- ` signature block does not, and the
signature logo Outlook sends with every mail (image001.png, 180×60) is not forwarded while a
file the agent attached is."""

from __future__ import annotations

import io
from collections.abc import Iterator
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import SMTP, default
from pathlib import Path

import pytest
from PIL import Image

from domain.clock import FixedClock
from domain.config import load_config
from outbound.addresses import agent_reply_address
from tests.helpers import customer_mail, write_config
from tests.test_agent_handover import AYSE, TEAM
from tests.test_sla_survey import outbox
from tests.test_threading import deliver
from ticketd.state import State, open_state


@pytest.fixture
def desk(tmp_path: Path, clock: FixedClock) -> Iterator[State]:
    opened = open_state(load_config(write_config(tmp_path, extra=TEAM)), clock=clock)
    yield opened
    opened.close()


def _logo() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (180, 60), (0, 90, 160)).save(buffer, "PNG")
    return buffer.getvalue()


def _answer(state: State, ref: str, text: str) -> EmailMessage:
    """The agent's answer as Outlook writes it: text, HTML showing the logo, the logo inline,
    and a PDF attached."""
    mail = EmailMessage()
    address = agent_reply_address(state.config.desk, ref)
    mail["From"], mail["To"], mail["Subject"] = AYSE, address, f"RE: [#{ref}] Para çekme"
    mail.set_content(text)
    html = "".join(f"<p>{line}</p>" for line in text.splitlines())
    mail.add_alternative(
        f'<html><body>{html}<img src="cid:image001.png@01DA"></body></html>', subtype="html"
    )
    html_part = mail.get_body(("html",))
    assert isinstance(html_part, EmailMessage)
    html_part.add_related(
        _logo(), "image", "png", cid="<image001.png@01DA>", filename="image001.png"
    )
    mail.add_attachment(
        b"%PDF-1.4 dekont", maintype="application", subtype="pdf", filename="dekont.pdf"
    )
    result = deliver(state, mail.as_bytes(policy=SMTP), (address,))
    assert result.state == "done", result.detail
    [relayed] = [m for m in outbox(state, "agent") if ref in m.subject]
    sent = message_from_bytes(relayed.raw, policy=default)
    assert isinstance(sent, EmailMessage)
    return sent


@pytest.mark.parametrize(
    ("text", "kept", "cut"),
    [
        (
            "Merhaba,\n\nÇekiminiz onaylandı.\n\nSaygılarımla,\nMehmet",
            "Saygılarımla,\nMehmet",
            None,
        ),
        ("Hello,\n\nDone.\n\nBest regards,\nMehmet Demir", "Best regards,\nMehmet Demir", None),
        ("Merhaba,\n\nTamam.\n\nİyi çalışmalar,\nAyşe", "İyi çalışmalar,\nAyşe", None),
        (
            "Merhaba,\n\nTamam.\n\nSaygılarımla,\nAyşe\n-- \nAyşe Yılmaz | Destek\n"
            "+90 212 000 00 00",
            "Saygılarımla,\nAyşe",
            "+90 212",
        ),
    ],
)
def test_the_sign_off_stays_the_signature_block_and_the_logo_go(
    desk: State, text: str, kept: str, cut: str | None
) -> None:
    ref = deliver(desk, customer_mail()).detail.split()[1].rstrip(":")
    sent = _answer(desk, ref, text)
    body = sent.get_body(("plain",))
    assert body is not None
    plain = body.get_content().replace("\r\n", "\n")
    assert kept in plain, plain
    if cut is not None:
        assert cut not in plain
    assert [p.get_filename() for p in sent.walk() if p.get_filename()] == ["dekont.pdf"]
