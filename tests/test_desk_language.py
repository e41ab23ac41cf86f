"""A Turkish desk speaks Turkish in its notifications, and shows times in its zone (issue 15,
point 9, the part done: ticket states, categories and priorities through the `label` catalogue,
deadlines in `[desk] timezone`, Europe/Istanbul by default for a `tr` desk)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from domain.clock import FixedClock
from domain.config import ConfigError, load_config
from domain.config_sla import PRIORITIES
from domain.config_team import CATEGORIES
from domain.labels import LABELS, label, local_time
from domain.templating import Templates
from tests.helpers import customer_mail, write_config
from tests.test_agent_handover import AYSE, TEAM
from tests.test_sla_survey import outbox
from tests.test_threading import deliver
from ticketd.state import State, open_state

STATUSES = ("open", "pending", "closed", "merged")


@pytest.fixture
def desk(tmp_path: Path, clock: FixedClock) -> Iterator[State]:
    opened = open_state(load_config(write_config(tmp_path, extra=TEAM)), clock=clock)
    yield opened
    opened.close()


def test_a_turkish_notification_reads_in_turkish_with_local_times(desk: State) -> None:
    assert desk.config.desk.timezone == "Europe/Istanbul"  # a tr desk's default
    deliver(desk, customer_mail(body="Para çekme talebim bekliyor"))
    [note] = [m for m in outbox(desk, "notify") if m.recipient == AYSE]
    assert "Durum: açık | Kategori: ödeme | Öncelik: normal" in note.text, note.text
    # Opened 2026-11-23 09:00 UTC; the first answer is due 48 hours on, 12:00 in Istanbul.
    assert "SLA: 2026-11-25 12:00 +03" in note.text, note.text
    assert "UTC" not in note.text


@pytest.mark.parametrize(
    ("kind", "code"),
    [("status", s) for s in STATUSES]
    + [("category", c) for c in CATEGORIES]
    + [("priority", p) for p in PRIORITIES],
)
def test_every_code_people_read_has_a_turkish_word(kind: str, code: str) -> None:
    word = label("tr", kind, code)
    assert word == LABELS["tr"][kind][code]
    assert label("en", kind, code) == code
    rendered = Templates().render(
        "notify",
        "tr",
        ref="7KQM-X3P9",
        subject="s",
        new=True,
        customer="c@example.net",
        customer_name="",
        sender="c@example.net",
        sender_name="",
        text="t",
        text_omitted=0,
        attachments=[],
        status=code if kind == "status" else "open",
        category=code if kind == "category" else "other",
        priority=code if kind == "priority" else "normal",
        queue="",
        assignee="",
        sla_deadline="",
        desk_name="Destek",
        not_sent=[],
        handover=None,
        kyc_agent=False,
        history=[],
        others=[],
    )
    assert word in rendered.text


def test_the_desk_zone_is_configured_and_checked(tmp_path: Path) -> None:
    path = write_config(tmp_path, language="en")
    assert load_config(path).desk.timezone == "UTC"
    text = path.read_text().replace('language = "en"', 'language = "en"\ntimezone = "Asia/Baku"')
    path.write_text(text)
    assert load_config(path).desk.timezone == "Asia/Baku"
    path.write_text(text.replace("Asia/Baku", "Mars/Olympus"))
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert "not a known time zone" in dict(error.value.problems)["desk.timezone"]


def test_local_time_names_the_zone() -> None:
    moment = datetime(2026, 12, 2, 11, 30, tzinfo=UTC)
    assert local_time(moment, "Europe/Istanbul") == "2026-12-02 14:30 +03"
    assert local_time(moment, "Europe/Berlin") == "2026-12-02 12:30 CET"
    assert local_time(moment, "UTC") == "2026-12-02 11:30 UTC"
