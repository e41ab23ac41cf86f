"""A Turkish desk answers its agents' mistakes in Turkish (issue 15, point 9, the part done):
every refusal of an agent mail, over a table of the mistakes agents make, through the pipeline."""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import pytest

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


NOTE_BELOW = "Merhaba, kontrol ediyorum.\n\n#not müşteri daha önce 3 kez chargeback yaptı\n"

MISTAKES = [
    ("#kapa", "bilinmeyen komut #kapa", "unknown command"),
    ("#kapat\n#beklemede", "#kapat ve #beklemede birlikte kullanılamaz", "exclude each other"),
    ("#ata Kimse", "#ata: 'Kimse' adında bir temsilci yok", "no agent called"),
    ("#öncelik acil", "öncelik yüksek, normal ya da düşük olmalı", "priority must be"),
    ("#kategori fatura", "bilinmeyen kategori 'fatura'", "unknown category"),
    ("#not", "#not komutunun altına notun metnini yazın", "needs the text"),
    ("#kapat hemen", "#close bir şey almaz", "takes no argument"),
    ("#ata", "#assign komutunun yanına ne yapılacağını yazın", "needs an argument"),
    ("#birleştir ABCD-EFGH", "bir talep numarası değil", "is not a ticket reference"),
    ("#kyc onayla", "yalnızca kimlik (kyc) kuyruğunun temsilcileri", "only agents of"),
    ("#kyc reddet", "müşterinin okuyacağı sebebi", "needs the reason"),
    ("#kyc sil", "#kyc onayla, #kyc reddet SEBEP ya da #kyc iste", "takes approve"),
    ("> alıntı\n> yalnızca", "kendi metniniz yok", "no text of its own"),
    # A command under the answer: relayed, it reached the customer word for word (an internal
    # note among them) and was never applied.
    (NOTE_BELOW, "#not (3. satır) metnin altında", "is under the text"),
    ("Sorununuz çözüldü.\n\n#kapat\n", "#kapat (3. satır) metnin altında", "is under the text"),
]


@pytest.mark.parametrize(("body", "turkish", "english"), MISTAKES)
def test_refusals_reach_the_agent_in_turkish(
    desk: State, body: str, turkish: str, english: str
) -> None:
    ref = deliver(desk, customer_mail()).detail.split()[1].rstrip(":")
    mail = EmailMessage()
    address = agent_reply_address(desk.config.desk, ref)
    mail["From"], mail["To"], mail["Subject"] = AYSE, address, f"Re: [#{ref}]"
    mail.set_content(body)
    result = deliver(desk, mail.as_bytes(policy=SMTP), (address,))
    assert "refused" in result.detail and english in result.detail  # the log keeps English
    [refusal] = outbox(desk, "agent-error")
    assert turkish in refusal.text, refusal.text
    assert english not in refusal.text, refusal.text


def test_a_command_under_the_answer_sends_the_customer_nothing(desk: State) -> None:
    ref = deliver(desk, customer_mail()).detail.split()[1].rstrip(":")
    mail = EmailMessage()
    address = agent_reply_address(desk.config.desk, ref)
    mail["From"], mail["To"], mail["Subject"] = AYSE, address, f"Re: [#{ref}]"
    mail.set_content(NOTE_BELOW)
    deliver(desk, mail.as_bytes(policy=SMTP), (address,))
    assert outbox(desk, "agent") == []
    [refusal] = outbox(desk, "agent-error")
    assert "metnin altında" in refusal.text
