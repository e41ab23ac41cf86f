"""Routing reads Turkish as customers type it (issue 15, point 8): any case with Turkish rules
(İ→i, I→ı), without Turkish letters, inflected. Proven on tests/data/routing_subjects.tsv: at
least 100 subjects per category, in Turkish and English, each as typed, in capitals and without
Turkish letters; then end to end over SMTP for the issue's examples and `#ata ALİ`."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from domain.config_team import CATEGORIES
from domain.turkish import fold
from ingest.categorise import Categoriser
from tests.daemon import DaemonProcess, Relay, daemon_config
from tests.helpers import DESK, customer_mail
from tests.test_agents import agent_reply, send, wait_for_mail

TABLE = Path(__file__).parent / "data" / "routing_subjects.tsv"
ROWS = [
    tuple(line.rstrip("\n").split("\t"))
    for line in TABLE.read_text(encoding="utf-8").splitlines()
    if line and not line.startswith("#")
]


def test_the_table_has_a_hundred_subjects_per_category_in_both_languages() -> None:
    per_category = Counter(row[0] for row in ROWS)
    assert set(per_category) == set(CATEGORIES)
    assert min(per_category.values()) >= 100, per_category
    for category in CATEGORIES:
        languages = Counter(row[1] for row in ROWS if row[0] == category)
        assert languages["tr"] >= 40 and languages["en"] >= 40, (category, languages)


_CATEGORISER = Categoriser()


@pytest.mark.parametrize(("category", "language", "subject", "body"), ROWS)
def test_each_subject_lands_in_its_category(
    category: str, language: str, subject: str, body: str
) -> None:
    assert _CATEGORISER.categorise(subject, body) == category, (language, subject, body)


@pytest.mark.parametrize(
    ("typed", "folded"),
    [
        ("HESABIM KİLİTLENDİ", "hesabim kilitlendi"),
        ("hesabım kilitlendi", "hesabim kilitlendi"),
        ("ŞİKAYETÇİYİM", "sikayetciyim"),
        ("İADE", "iade"),
        ("ÇEKİM ÖDEME ĞÜŞ", "cekim odeme gus"),
        ("Iğdır", "igdir"),
        ("şikâyet", "sikayet"),
        ("I LOVE IT", "i love it"),  # English loses only its case
        ("i\u0307ade", "iade"),  # what str.lower() made of "İADE": the combining dot goes
    ],
)
def test_folding(typed: str, folded: str) -> None:
    assert fold(typed) == folded


AGENT = "ali@destek.example.com"
TEAM = f"""
[[queues]]
name = "genel"
categories = ["account", "payment", "bonus", "technical", "kyc", "complaint", "other"]

[[agents]]
email = "{AGENT}"
name = "Ali Vural"
queues = ["genel"]

[[agents]]
email = "ayse@destek.example.com"
name = "Ayşe Yılmaz"
queues = ["genel"]

[agent_replies]
require_authentication = false  # not about sender proof (tests/test_sender_auth.py)
"""
ISSUE = [
    ("HESABIM KİLİTLENDİ", "Giriş yapamıyorum, HESABIM KİLİTLENDİ.", "account"),
    ("ŞİKAYET", "Müşteri temsilcinizden ŞİKAYETÇİYİM.", "complaint"),
    ("İADE", "İADE İSTİYORUM", "payment"),
    ("YATIRIM YAPTIM", "YATIRIM YAPTIM AMA BAKİYEME YANSIMADI", "payment"),
    ("para cekme", "para cekme talebim 3 gundur bekliyor", "payment"),
    ("hesabim kilitlendi", "sifremi dogru giriyorum ama hesabim kilitlendi", "account"),
    ("sikayet", "temsilciden sikayetciyim, cok kaba davrandi", "complaint"),
    ("Para çekemiyorum.", "Para çekemiyorum.", "payment"),
]


def test_the_issues_subjects_over_smtp_and_assigning_by_a_capitalised_name(
    tmp_path: Path, relay: Relay
) -> None:
    daemon = DaemonProcess(daemon_config(tmp_path, relay.port, extra=TEAM))
    daemon.start()
    try:
        for index, (subject, body, _) in enumerate(ISSUE):
            sender = f"musteri{index}@example.net"
            send(
                daemon.port, customer_mail(sender=sender, subject=subject, body=body), sender, DESK
            )
        notifications = wait_for_mail(relay, AGENT, len(ISSUE), "(notifications)")
        tickets = daemon.cli("tickets", "list", "--json")
        found = {t["subject"]: t["category"] for t in tickets}
        assert found == {subject: category for subject, _, category in ISSUE}
        # `#ata ALİ` (Turkish capitals) finds Ali; `#ata ayse` finds Ayşe.
        ref = next(t["ref"] for t in tickets if t["subject"] == ISSUE[0][0])
        notification = next(n for n in notifications if ref in str(n["Subject"]))
        for name, email in (("ALİ", AGENT), ("ayse", "ayse@destek.example.com")):
            reply = agent_reply(notification, AGENT, f"#ata {name}")
            send(daemon.port, reply, AGENT, str(notification["Reply-To"]))
            daemon.wait_until(
                lambda wanted=email: (
                    daemon.cli("tickets", "show", ref, "--json")["assignee"] == wanted
                ),
                what=f"#ata {name}",
            )
    finally:
        assert daemon.stop() == 0
