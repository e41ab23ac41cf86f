"""The HTTP API on one ticket (issue 20), against the daemon as a process over a real socket:
show (as `tickets show --json`), files, answers that reach the customer at the relay exactly as
an agent's mail reply does, notes, changes, tickets opened on a customer's behalf, customers."""

from __future__ import annotations

from email.message import EmailMessage, Message
from email.policy import SMTP
from email.utils import parseaddr
from typing import Any

import pytest
from sqlalchemy import select

from storage.db import Database
from storage.models import AccessAudit, DocumentAccess
from tests.daemon import Relay
from tests.helpers import DESK
from tests.test_agents import mails_to, send, text_of, wait_for_mail
from tests.test_kyc import JPEG, PDF
from tests.web import GENERAL_AGENT, IDENTITY_AGENT, PAYMENT_AGENT, ApiDesk

pytestmark = pytest.mark.slow
CUSTOMER = "can@musteri.example"


def customer_mail(subject: str, body: str, files: list[tuple[str, str, bytes]]) -> bytes:
    mail = EmailMessage()
    mail["From"] = f"Can Kaya <{CUSTOMER}>"
    mail["To"] = DESK
    mail["Subject"] = subject
    mail["Message-ID"] = f"<{abs(hash(subject))}@musteri.example>"
    mail.set_content(body)
    for filename, content_type, payload in files:
        maintype, _, subtype = content_type.partition("/")
        mail.add_attachment(payload, maintype=maintype, subtype=subtype, filename=filename)
    return mail.as_bytes(policy=SMTP)


def one_ticket(desk: ApiDesk, admin: str, count: int = 1) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = desk.daemon.wait_until(
        lambda: [
            i for i in [desk.get("/api/v1/tickets", admin).json()["items"]] if len(i) >= count
        ],
        what=f"{count} tickets",
    )[0]
    return items


def audit_rows(desk: ApiDesk) -> list[tuple[str, str, str | None]]:
    db = Database(desk.daemon.config.storage.database)
    try:
        with db.read() as session:
            rows = session.execute(
                select(AccessAudit.actor, AccessAudit.action, AccessAudit.customer).order_by(
                    AccessAudit.id
                )
            )
            return [(a, b, c) for a, b, c in rows]
    finally:
        db.dispose()


def test_show_files_answers_notes_and_changes(api_desk: ApiDesk, relay: Relay) -> None:
    raw = customer_mail(
        "Para çekme talebim",
        "Çekimim 3 gündür bekliyor, dekont ekte.",
        [("dekont.pdf", "application/pdf", PDF)],
    )
    send(api_desk.daemon.port, raw, CUSTOMER, DESK)
    admin = api_desk.token("--admin")
    payment = api_desk.token("--agent", PAYMENT_AGENT)
    general = api_desk.token("--agent", GENERAL_AGENT)
    [item] = one_ticket(api_desk, admin)
    ref = item["ref"]
    wait_for_mail(relay, CUSTOMER, 1, "(acknowledgement)")
    shown = api_desk.get(f"/api/v1/tickets/{ref}", payment)
    assert shown.status_code == 200
    ticket = shown.json()
    cli = api_desk.daemon.cli("tickets", "show", ref, "--json")
    assert {k: v for k, v in ticket.items() if k != "messages"} == {
        k: v for k, v in cli.items() if k != "messages"
    }
    [attachment] = ticket["messages"][0]["attachments"]
    assert attachment["filename"] == "dekont.pdf"
    assert attachment["url"].startswith(f"https://destek.example.com/api/v1/tickets/{ref}/")
    # Another queue's agent: as if the ticket did not exist; the refusal is audited.
    assert api_desk.get(f"/api/v1/tickets/{ref}", general).status_code == 404
    assert api_desk.get("/api/v1/tickets/ZZZZ-ZZZZ", payment).status_code == 404
    path = f"/api/v1/tickets/{ref}/attachments/{attachment['id']}"
    assert api_desk.get(path, general).status_code == 404
    got = api_desk.get(path, payment)
    assert got.status_code == 200 and got.content == PDF
    assert got.headers["content-type"] == "application/octet-stream"
    assert api_desk.get(f"/api/v1/tickets/{ref}/attachments/999-1", payment).status_code == 404

    # The answer: the path of a mail reply, to the relay.
    assert (
        api_desk.call(
            "POST", f"/api/v1/tickets/{ref}/replies", admin, json={"text": "x"}
        ).status_code
        == 403
    )
    answered = api_desk.call(
        "POST",
        f"/api/v1/tickets/{ref}/replies",
        payment,
        json={"text": "Merhaba Can Bey,\n\nÇekiminiz onaylandı."},
        headers={"Idempotency-Key": "crm-1"},
    )
    assert answered.status_code == 201, answered.text
    again = api_desk.call(
        "POST",
        f"/api/v1/tickets/{ref}/replies",
        payment,
        json={"text": "Merhaba Can Bey,\n\nÇekiminiz onaylandı."},
        headers={"Idempotency-Key": "crm-1"},
    )
    assert again.status_code == 201
    answers = wait_for_mail(relay, CUSTOMER, 2, "(the answer)")
    answer: Message = answers[-1]
    assert parseaddr(str(answer["From"])) == ("Ayşe Yılmaz (Destek)", DESK)
    assert str(answer["In-Reply-To"]) == f"<{ticket['messages'][0]['message_id']}>"
    assert "Auto-Submitted" not in answer
    assert ref in str(answer["Subject"])
    assert text_of(answer).strip() == "Merhaba Can Bey,\n\nÇekiminiz onaylandı."
    last = answered.json()["messages"][-1]
    assert (last["direction"], last["kind"], last["from"]) == ("out", "agent", PAYMENT_AGENT)
    assert answered.json()["sla"] == api_desk.daemon.cli("tickets", "show", ref, "--json")["sla"]
    assert len([m for m in answered.json()["messages"] if m["kind"] == "agent"]) == 1  # once

    noted = api_desk.call("POST", f"/api/v1/tickets/{ref}/notes", payment, json={"text": "aradım"})
    assert noted.status_code == 201
    assert noted.json()["messages"][-1]["kind"] == "note"
    assert noted.json()["messages"][-1]["text"] == "aradım"

    bad = api_desk.call("PATCH", f"/api/v1/tickets/{ref}", payment, json={"status": "done"})
    assert bad.status_code == 422 and "status" in bad.json()["error"]
    assert (
        api_desk.call("PATCH", f"/api/v1/tickets/{ref}", payment, json={"bogus": 1}).status_code
        == 422
    )
    changed = api_desk.call(
        "PATCH",
        f"/api/v1/tickets/{ref}",
        payment,
        json={"status": "pending", "priority": "high", "assignee": GENERAL_AGENT},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["changed"] == [
        "status pending",
        "assignee " + GENERAL_AGENT,
        "priority high",
    ]
    now = api_desk.daemon.cli("tickets", "show", ref, "--json")
    assert (now["status"], now["priority"], now["assignee"]) == ("pending", "high", GENERAL_AGENT)
    # The new assignee is told, with the ticket's reply address, as after #assign.
    [handover] = wait_for_mail(relay, GENERAL_AGENT, 1, "(handover)")
    assert ref in str(handover["Subject"])
    assert api_desk.get(f"/api/v1/tickets/{ref}", general).status_code == 200  # theirs now
    moved = api_desk.call(
        "PATCH", f"/api/v1/tickets/{ref}", admin, json={"queue": "genel", "assignee": ""}
    )
    assert moved.status_code == 200
    assert api_desk.get(f"/api/v1/tickets/{ref}", payment).status_code == 404

    rows = audit_rows(api_desk)
    actions = {(actor, action) for actor, action, _ in rows}
    assert {
        (PAYMENT_AGENT, "api show"),
        (GENERAL_AGENT, "api show refused"),
        (PAYMENT_AGENT, "api file"),
        (PAYMENT_AGENT, "api reply"),
        (PAYMENT_AGENT, "api note"),
        (PAYMENT_AGENT, "api change"),
    } <= actions
    assert all(customer == CUSTOMER for _, _, customer in rows)


def test_identity_documents_only_for_the_identity_queue(api_desk: ApiDesk, relay: Relay) -> None:
    raw = customer_mail(
        "Kimlik belgelerim",
        "Kimlik doğrulaması için belgem ekte.",
        [("kimlik.jpg", "image/jpeg", JPEG)],
    )
    send(api_desk.daemon.port, raw, CUSTOMER, DESK)
    admin = api_desk.token("--admin")
    identity = api_desk.token("--agent", IDENTITY_AGENT)
    general = api_desk.token("--agent", GENERAL_AGENT)
    [item] = one_ticket(api_desk, admin)
    assert item["queue"] == "kimlik"
    ref = item["ref"]
    # Assigned to an agent of another queue: they may see the ticket, not the document.
    assert (
        api_desk.call(
            "PATCH", f"/api/v1/tickets/{ref}", admin, json={"assignee": GENERAL_AGENT}
        ).status_code
        == 200
    )
    shown = api_desk.get(f"/api/v1/tickets/{ref}", general).json()
    [attachment] = shown["messages"][0]["attachments"]
    path = f"/api/v1/tickets/{ref}/attachments/{attachment['id']}"
    assert api_desk.get(path, general).status_code == 404
    got = api_desk.get(path, identity)
    assert got.status_code == 200 and got.content == JPEG
    rows = audit_rows(api_desk)
    assert (GENERAL_AGENT, "api file refused", CUSTOMER) in rows
    assert (IDENTITY_AGENT, "api file", CUSTOMER) in rows
    db = Database(api_desk.daemon.config.storage.database)
    try:
        with db.read() as session:
            access = session.execute(select(DocumentAccess.actor, DocumentAccess.action)).all()
    finally:
        db.dispose()
    assert (IDENTITY_AGENT, "download") in [tuple(row) for row in access]
    customer = api_desk.get(f"/api/v1/customers/{CUSTOMER}", identity).json()
    assert customer["verification"]["state"] == "received"
    assert [t["ref"] for t in customer["tickets"]] == [ref]
    assert api_desk.get(f"/api/v1/customers/{CUSTOMER}", general).json()["verification"] is None


def test_a_ticket_opened_for_a_customer_goes_the_way_of_their_mail(
    api_desk: ApiDesk, relay: Relay
) -> None:
    payment = api_desk.token("--agent", PAYMENT_AGENT)
    general = api_desk.token("--agent", GENERAL_AGENT)
    body = {
        "customer": "deniz@musteri.example",
        "name": "Deniz Ak",
        "subject": "Para çekme talebi",
        "text": "Canlı destekten: çekim talebim onaylanmadı.",
    }
    opened = api_desk.call(
        "POST", "/api/v1/tickets", payment, json=body, headers={"Idempotency-Key": "chat-77"}
    )
    assert opened.status_code == 201, opened.text
    ticket = opened.json()
    assert (ticket["customer"], ticket["queue"], ticket["category"]) == (
        "deniz@musteri.example",
        "odeme",
        "payment",
    )
    [ack] = wait_for_mail(relay, "deniz@musteri.example", 1, "(acknowledgement)")
    assert ticket["ref"] in str(ack["Subject"])
    wait_for_mail(relay, PAYMENT_AGENT, 1, "(the queue's notification)")
    again = api_desk.call(
        "POST", "/api/v1/tickets", payment, json=body, headers={"Idempotency-Key": "chat-77"}
    )
    assert again.status_code == 201 and again.json()["ref"] == ticket["ref"]
    assert len(api_desk.get("/api/v1/tickets", payment).json()["items"]) == 1
    for wrong in ("not an address", "deniz@musteri.example <other@evil.example>"):
        refused = api_desk.call(
            "POST", "/api/v1/tickets", payment, json={**body, "customer": wrong}
        )
        assert refused.status_code == 400, wrong
    customer = api_desk.get("/api/v1/customers/Deniz@musteri.example", payment)
    assert customer.status_code == 200
    assert [t["ref"] for t in customer.json()["tickets"]] == [ticket["ref"]]
    assert customer.json()["verification_shown"] is False
    assert api_desk.get("/api/v1/customers/deniz@musteri.example", general).status_code == 404
    assert mails_to(relay, GENERAL_AGENT) == []
