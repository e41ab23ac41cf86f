"""The HTTP API (issue 20) against the daemon as a process, over a real socket: tokens, the 401
and 404 rules, the agent's queues, search in Turkish and English, cursor paging, the audit."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from domain.refs import new_reference
from storage.db import Database
from storage.models import AccessAudit, Participant, Ticket, TicketMessage
from tests.daemon import Relay
from tests.helpers import DESK, customer_mail
from tests.test_agents import send
from tests.web import GENERAL_AGENT, PAYMENT_AGENT, ApiDesk

pytestmark = pytest.mark.slow
ALI, VELI, JANE = "ali@musteri.example", "veli@musteri.example", "jane@customer.example"


def write_in(desk: ApiDesk, customer: str, subject: str, body: str) -> None:
    send(
        desk.daemon.port, customer_mail(sender=customer, subject=subject, body=body), customer, DESK
    )


def wait_tickets(desk: ApiDesk, count: int) -> list[dict[str, object]]:
    """`tickets list --json` once it lists `count` tickets or more."""
    found: list[dict[str, object]] = desk.daemon.wait_until(
        lambda: (
            (rows := desk.daemon.cli("tickets", "list", "--json")) and len(rows) >= count and rows
        ),
        what=f"{count} tickets",
    )
    return found


def database(desk: ApiDesk) -> Database:
    return Database(desk.daemon.config.storage.database)


def subjects(response: object) -> list[str]:
    body = response.json()  # type: ignore[attr-defined]
    return [item["subject"] for item in body["items"]]


def test_healthz_answers_without_a_token_and_the_api_wants_one(api_desk: ApiDesk) -> None:
    health = api_desk.get("/healthz", None)
    assert health.status_code == 200
    assert health.json()["healthy"] is True
    for token in (None, "tkd_not-a-token-anybody-made-0000000000000", "garbage"):
        refused = api_desk.get("/api/v1/tickets", token)
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/json"
        assert refused.headers["www-authenticate"] == "Bearer"
        assert "error" in refused.json()
    spec = api_desk.get("/openapi.json", None).json()
    assert "/api/v1/tickets" in spec["paths"]
    assert "/healthz" in spec["paths"]


def test_tokens_are_kept_as_hashes_and_a_revoked_one_stops_working(api_desk: ApiDesk) -> None:
    token = api_desk.token("--agent", PAYMENT_AGENT, "--name", "CRM")
    admin = api_desk.token("--admin")
    assert token.startswith("tkd_") and len(token) > 40
    assert api_desk.get("/api/v1/tickets", token).status_code == 200
    rows = api_desk.daemon.cli("tokens", "list", "--json")
    assert [(r["agent"], r["admin"], r["name"]) for r in rows] == [
        (PAYMENT_AGENT, False, "CRM"),
        (None, True, None),
    ]
    assert rows[0]["last_used_at"] is not None and rows[1]["last_used_at"] is None
    stored = (api_desk.daemon.config_path.parent / "var" / "ticketd.sqlite3").read_bytes()
    assert token.encode() not in stored and admin.encode() not in stored
    config = str(api_desk.daemon.config_path)
    revoke = [sys.executable, "-m", "ticketd.cli", "--config", config, "tokens", "revoke"]
    subprocess.run([*revoke, str(rows[0]["id"])], check=True, capture_output=True)
    assert api_desk.get("/api/v1/tickets", token).status_code == 401
    assert api_desk.get("/api/v1/tickets", admin).status_code == 200
    unknown = subprocess.run([*revoke, "99"], capture_output=True, text=True)
    assert unknown.returncode != 0 and "no token 99" in unknown.stderr
    stranger = subprocess.run(
        [
            sys.executable,
            "-m",
            "ticketd.cli",
            "--config",
            config,
            "tokens",
            "create",
            "--agent",
            "nobody@example.com",
        ],
        capture_output=True,
        text=True,
    )
    assert stranger.returncode != 0 and "not a configured agent" in stranger.stderr


def test_an_agent_sees_their_queues_and_search_folds_turkish(
    api_desk: ApiDesk, relay: Relay
) -> None:
    write_in(
        api_desk, "ali@musteri.example", "Para çekme şikayetim", "Çekim talebim 3 gündür bekliyor."
    )
    write_in(
        api_desk,
        "veli@musteri.example",
        "Bonus yüklenmedi",
        "Hoş geldin bonusu gelmedi, ŞİKAYET ediyorum.",
    )
    write_in(
        api_desk,
        "jane@customer.example",
        "Withdrawal pending",
        "My withdrawal is still pending after a week.",
    )
    wait_tickets(api_desk, 3)
    payment = api_desk.token("--agent", PAYMENT_AGENT)
    general = api_desk.token("--agent", GENERAL_AGENT)
    admin = api_desk.token("--admin")
    mine = api_desk.get("/api/v1/tickets", payment)
    assert mine.status_code == 200
    assert sorted(subjects(mine)) == ["Para çekme şikayetim", "Withdrawal pending"]
    assert subjects(api_desk.get("/api/v1/tickets", general)) == ["Bonus yüklenmedi"]
    assert len(subjects(api_desk.get("/api/v1/tickets", admin))) == 3
    # Folding: any case, with or without the Turkish letters, prefixes of suffixed words.
    for query in ("şikayet", "ŞİKAYET", "sikayet", "Şikâyet"):
        found = sorted(subjects(api_desk.get("/api/v1/tickets", admin, q=query)))
        assert found == ["Bonus yüklenmedi", "Para çekme şikayetim"], query
    assert subjects(api_desk.get("/api/v1/tickets", payment, q="sikayet")) == [
        "Para çekme şikayetim"
    ]
    assert subjects(api_desk.get("/api/v1/tickets", admin, q="çekim")) == ["Para çekme şikayetim"]
    assert subjects(api_desk.get("/api/v1/tickets", admin, q="CEKIM")) == ["Para çekme şikayetim"]
    assert subjects(api_desk.get("/api/v1/tickets", admin, q="withdrawal week")) == [
        "Withdrawal pending"
    ]
    assert subjects(api_desk.get("/api/v1/tickets", admin, q="withdrawal bonus")) == []
    assert subjects(api_desk.get("/api/v1/tickets", admin, q="hos geldin")) == ["Bonus yüklenmedi"]
    # The other filters.
    assert subjects(api_desk.get("/api/v1/tickets", admin, queue="genel")) == ["Bonus yüklenmedi"]
    assert subjects(api_desk.get("/api/v1/tickets", admin, customer="JANE@customer.example")) == [
        "Withdrawal pending"
    ]
    assert subjects(api_desk.get("/api/v1/tickets", admin, status="closed")) == []
    assert api_desk.get("/api/v1/tickets", admin, q="  ").status_code == 400
    first = api_desk.get("/api/v1/tickets", payment).json()["items"][0]
    assert {
        "ref",
        "status",
        "category",
        "customer",
        "subject",
        "messages",
        "queue",
        "assignee",
        "priority",
    } <= set(first)


def _seed(db: Database, count: int) -> None:
    """`count` tickets of queue odeme written straight into the database (1,000 mails through
    SMTP would test the pipeline, not the paging)."""
    start = datetime(2026, 11, 1, tzinfo=UTC)
    with db.transaction() as session:
        for number in range(count):
            at = start + timedelta(minutes=number)
            ticket = Ticket(
                ref=new_reference(),
                status="open",
                category="payment",
                queue="odeme",
                customer=f"c{number}@musteri.example",
                language="tr",
                subject=f"Talep {number}",
                created_at=at,
                updated_at=at,
            )
            session.add(ticket)
            session.flush()
            session.add(Participant(ticket_id=ticket.id, email=ticket.customer, role="customer"))
            session.add(
                TicketMessage(
                    ticket_id=ticket.id,
                    direction="in",
                    kind="customer",
                    dedupe_key=f"seed-{number}",
                    from_addr=ticket.customer,
                    subject=ticket.subject,
                    text=f"mesaj numarası {number}",
                    created_at=at,
                )
            )


def test_cursor_paging_over_a_thousand_tickets_sees_each_once(api_desk: ApiDesk) -> None:
    db = database(api_desk)
    try:
        _seed(db, 1000)
        payment = api_desk.token("--agent", PAYMENT_AGENT)
        general = api_desk.token("--agent", GENERAL_AGENT)
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            params = {"limit": 150, **({"cursor": cursor} if cursor else {})}
            page = api_desk.get("/api/v1/tickets", payment, **params).json()
            seen += [item["subject"] for item in page["items"]]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert pages == 7
        assert seen == [f"Talep {n}" for n in range(999, -1, -1)]  # newest first, each once
        assert api_desk.get("/api/v1/tickets", general).json() == {"items": [], "next_cursor": None}
        assert api_desk.get("/api/v1/tickets", payment, cursor="bogus!").status_code == 400
        assert api_desk.get("/api/v1/tickets", payment, limit=0).status_code == 422
        searched = api_desk.get("/api/v1/tickets", payment, q="numarasi 742").json()["items"]
        assert [item["subject"] for item in searched] == ["Talep 742"]  # 742 is a prefix
        with db.read() as session:
            audited = session.scalars(
                select(AccessAudit.customer).where(
                    AccessAudit.actor == PAYMENT_AGENT, AccessAudit.action == "api list"
                )
            ).all()
        assert len(audited) == 1001  # every ticket shown, once per showing (742 twice)
        assert {"c0@musteri.example", "c999@musteri.example"} <= set(audited)
    finally:
        db.dispose()


def test_tokens_list_prints_no_token(api_desk: ApiDesk) -> None:
    token = api_desk.token("--admin")
    listing = subprocess.run(
        [
            sys.executable,
            "-m",
            "ticketd.cli",
            "--config",
            str(api_desk.daemon.config_path),
            "tokens",
            "list",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert token not in listing.stdout and "(admin)" in listing.stdout
    assert (
        json.loads(
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "ticketd.cli",
                    "--config",
                    str(api_desk.daemon.config_path),
                    "tokens",
                    "list",
                    "--json",
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )[0]["admin"]
        is True
    )


def test_the_status_filter_takes_every_status_a_ticket_has(api_desk: ApiDesk) -> None:
    write_in(api_desk, ALI, "Para çekme talebim", "Çekim talebim 3 gündür bekliyor.")
    write_in(api_desk, JANE, "Withdrawal pending", "My withdrawal is still pending after a week.")
    absorbed, survivor = (str(r["ref"]) for r in wait_tickets(api_desk, 2))
    merge = [sys.executable, "-m", "ticketd.cli", "--config", str(api_desk.daemon.config_path)]
    subprocess.run([*merge, "tickets", "merge", absorbed, "--into", survivor], check=True)
    admin = api_desk.token("--admin")

    def refs(status: str) -> list[str]:
        answer = api_desk.get("/api/v1/tickets", admin, status=status)
        assert answer.status_code == 200, (status, answer.text)
        return [item["ref"] for item in answer.json()["items"]]

    assert refs("merged") == refs("MERGED") == [absorbed]
    assert refs("open") == [survivor]
    assert refs("pending") == refs("closed") == []
    bogus = api_desk.get("/api/v1/tickets", admin, status="bogus")
    assert bogus.status_code == 422
    assert "open, pending, closed, merged" in bogus.json()["error"]
    spec = api_desk.get("/openapi.json", None).json()
    [status] = [
        p for p in spec["paths"]["/api/v1/tickets"]["get"]["parameters"] if p["name"] == "status"
    ]
    assert "merged" in status["description"]
