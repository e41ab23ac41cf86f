"""A command with a space after the hash (`# kapat`, as a phone keyboard writes it) is the
command; whatever an agent's command line gets wrong is answered in the desk's language.

The parser over a table of lines, then a Turkish desk through the pipeline: `# kapat` closes
the ticket, `# kapatt` is refused in Turkish (it was 'unknown command #', in English).
"""

from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP

import pytest

from domain.labels import problem
from ingest.agent_commands import Command, parse_commands
from outbound.addresses import agent_reply_address
from tests.helpers import customer_mail
from tests.test_agent_errors_turkish import desk  # noqa: F401
from tests.test_agent_handover import AYSE
from tests.test_sla_survey import outbox
from tests.test_threading import deliver
from ticketd.state import State
from ticketd.views import show_ticket


@pytest.mark.parametrize(
    ("line", "command"),
    [
        ("# kapat", Command("close", "")),
        ("#   kapat", Command("close", "")),
        ("#\tbeklemede", Command("pending", "")),
        ("# ata Mert", Command("assign", "Mert")),
        ("# öncelik yüksek", Command("priority", "high")),
        ("# kyc reddet Fotoğraf bulanık", Command("kyc", "reject Fotoğraf bulanık")),
        ("#kapat", Command("close", "")),
    ],
)
def test_a_space_after_the_hash_is_the_same_command(line: str, command: Command) -> None:
    parsed = parse_commands(f"{line}\n\nSorununuz çözüldü.")
    assert parsed.problems == ()
    assert parsed.commands == (command,)
    assert parsed.text == "Sorununuz çözüldü."


def test_a_spaced_command_under_the_text_is_refused() -> None:
    parsed = parse_commands("Sorununuz çözüldü.\n\n# kapat\n")
    assert parsed.commands == ()
    assert parsed.problems == (
        "#kapat on line 3 is under the text: commands go on lines of their own at the top of "
        "the mail; nothing was sent to the customer",
    )


def test_a_line_of_hash_and_unknown_words_is_named_as_written() -> None:
    assert parse_commands("# kapatt").problems == ("unknown command # kapatt",)
    assert parse_commands("#").problems == ("unknown command #",)
    assert parse_commands("# Merhaba Ayşe Hanım").problems == ("unknown command # Merhaba",)


# Every problem the parser writes, over the mistakes agents make: each has its Turkish form.
BAD_LINES = [
    "#", "# ", "# kapatt", "#\tkapatt", "#kapa", "#kapat hemen", "#ata", "#kategori fatura",
    "#öncelik acil", "#kyc", "#kyc sil", "#kyc reddet", "#kyc onayla hemen", "#birleştir",
    "#birleştir ABCD", "#birleştir FD7D-37DP hayır", "#kapat\n#beklemede",
    "#kyc onayla\n#kyc iste", "Metin\n\n# not gizli",
]  # fmt: skip


@pytest.mark.parametrize("text", BAD_LINES)
def test_every_problem_of_a_command_line_reads_in_turkish(text: str) -> None:
    problems = parse_commands(text).problems
    assert problems, text
    for english in problems:
        assert problem("tr", english) != english, english


def _agent_mail(state: State, ref: str, body: str) -> bytes:
    mail = EmailMessage()
    address = agent_reply_address(state.config.desk, ref)
    mail["From"], mail["To"], mail["Subject"] = AYSE, address, f"Re: [#{ref}]"
    mail.set_content(body)
    return mail.as_bytes(policy=SMTP)


def test_a_spaced_kapat_closes_the_ticket(desk: State) -> None:  # noqa: F811
    ref = deliver(desk, customer_mail()).detail.split()[1].rstrip(":")
    address = agent_reply_address(desk.config.desk, ref)
    result = deliver(desk, _agent_mail(desk, ref, "# kapat\n\nSorununuz çözüldü."), (address,))
    assert result.state == "done", result.detail
    ticket = show_ticket(desk.db, ref)
    assert ticket is not None and ticket["status"] == "closed"
    [answer] = outbox(desk, "agent")
    assert "Sorununuz çözüldü." in answer.text and "kapat" not in answer.text
    assert outbox(desk, "agent-error") == []


@pytest.mark.parametrize(
    ("body", "turkish"), [("# kapatt", "bilinmeyen komut # kapatt"), ("#", "bilinmeyen komut #")]
)
def test_an_unknown_spaced_command_is_refused_in_turkish(
    desk: State,  # noqa: F811
    body: str,
    turkish: str,
) -> None:
    ref = deliver(desk, customer_mail()).detail.split()[1].rstrip(":")
    address = agent_reply_address(desk.config.desk, ref)
    result = deliver(desk, _agent_mail(desk, ref, f"{body}\n\nMerhaba."), (address,))
    assert "refused" in result.detail and "unknown command" in result.detail
    [refusal] = outbox(desk, "agent-error")
    assert turkish in refusal.text, refusal.text
    assert "unknown command" not in refusal.text, refusal.text
    assert outbox(desk, "agent") == []
