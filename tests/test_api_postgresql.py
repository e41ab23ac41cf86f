"""The API's search and paging on PostgreSQL (its GIN index over the Turkish folding), and one
`Idempotency-Key` sent at the same moment (no write lock serialises PostgreSQL's transactions),
with the daemon as a process on a real server (tests/pg.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from storage.db import Database
from tests.daemon import Relay
from tests.test_api import ALI, JANE, VELI, subjects, write_in
from tests.test_api_concurrency import one_key_at_once_acts_once
from tests.web import PAYMENT_AGENT, start_api_desk

pytestmark = [pytest.mark.postgresql, pytest.mark.slow]


def test_search_and_paging_on_postgresql(tmp_path: Path, relay: Relay, pg_database: str) -> None:
    desk = start_api_desk(tmp_path, relay, database=pg_database)
    try:
        write_in(desk, ALI, "Para çekme şikayetim", "Çekim talebim 3 gündür bekliyor. Işık yok.")
        write_in(desk, VELI, "Bonus yüklenmedi", "Hoş geldin bonusu gelmedi, ŞİKAYET ediyorum.")
        write_in(desk, JANE, "Withdrawal pending", "My withdrawal is still pending after a week.")
        admin = desk.token("--admin")
        desk.daemon.wait_until(
            lambda: len(desk.get("/api/v1/tickets", admin).json()["items"]) == 3, what="3 tickets"
        )
        for query in ("şikayet", "ŞİKAYET", "sikayet", "Şikâyet"):
            found = sorted(subjects(desk.get("/api/v1/tickets", admin, q=query)))
            assert found == ["Bonus yüklenmedi", "Para çekme şikayetim"], query
        assert subjects(desk.get("/api/v1/tickets", admin, q="isik")) == ["Para çekme şikayetim"]
        assert subjects(desk.get("/api/v1/tickets", admin, q="CEKIM")) == ["Para çekme şikayetim"]
        english = subjects(desk.get("/api/v1/tickets", admin, q="withdrawal week"))
        assert english == ["Withdrawal pending"]
        payment = desk.token("--agent", PAYMENT_AGENT)
        assert subjects(desk.get("/api/v1/tickets", payment, q="sikayet")) == [
            "Para çekme şikayetim"
        ]
        first = desk.get("/api/v1/tickets", admin, limit=2).json()
        rest = desk.get("/api/v1/tickets", admin, limit=2, cursor=first["next_cursor"]).json()
        seen = [i["subject"] for i in first["items"] + rest["items"]]
        assert len(seen) == 3 == len(set(seen)) and rest["next_cursor"] is None
        db = Database(pg_database)
        try:
            with db.read() as session:
                session.execute(text("SET enable_seqscan = off"))
                plan = session.execute(
                    text(
                        "EXPLAIN SELECT id FROM messages WHERE to_tsvector('simple'::regconfig, "
                        "translate(coalesce(messages.subject, '') || ' ' || "
                        "coalesce(messages.text, ''), 'İIıŞşÇçĞğÖöÜüÂâÎîÛû', "
                        "'iiissccggoouuaaiiuu')) @@ to_tsquery('simple'::regconfig, 'sikayet:*')"
                    )
                ).scalars()
                assert "ix_messages_search" in "\n".join(plan)  # the query is the index's
        finally:
            db.dispose()
    finally:
        assert desk.daemon.stop() == 0, desk.daemon.log()


def test_one_idempotency_key_at_once_acts_once_on_postgresql(
    tmp_path: Path, relay: Relay, pg_database: str
) -> None:
    desk = start_api_desk(tmp_path, relay, database=pg_database)
    try:
        one_key_at_once_acts_once(desk, relay)
    finally:
        assert desk.daemon.stop() == 0, desk.daemon.log()
