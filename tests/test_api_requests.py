"""What the API makes of a request (issue 20), against the daemon as a process over a real
socket: an `Idempotency-Key` is one request on one target (another body with it is a 422, not
a dropped answer); texts keep no CR; an assignee is the configured agent's address whatever
the case given; a filter value that is not one is a 422; files: a number a message never had
or an id too large is 404, a document downloads under its stored name; a header field with a
line break is a 422 naming it, a tab in it whitespace as in mail."""

from __future__ import annotations

from typing import Any

import pytest

from tests.daemon import DaemonProcess, Relay
from tests.helpers import DESK
from tests.test_agents import mails_to, send, text_of, wait_for_mail
from tests.test_api_tickets import customer_mail
from tests.test_console_http import console, form_fields  # noqa: F401 (a fixture)
from tests.test_kyc import JPEG, PDF
from tests.web import GENERAL_AGENT, IDENTITY_AGENT, PAYMENT_AGENT, ApiDesk, console_session

pytestmark = pytest.mark.slow
ALI, VELI = "ali@musteri.example", "veli@musteri.example"
WITHDRAWAL = ("Para çekme talebim", "Çekimim 3 gündür bekliyor.")


def desk_of(console: tuple[DaemonProcess, str]) -> ApiDesk:  # noqa: F811
    daemon, base = console
    return ApiDesk(daemon, int(base.rpartition(":")[2]))


def ticket_of(desk: ApiDesk, customer: str, subject: str, body: str, files: Any = ()) -> str:
    raw = customer_mail(subject, body, list(files)).replace(
        b"can@musteri.example", customer.encode()
    )
    send(desk.daemon.port, raw, customer, DESK)
    rows = desk.daemon.wait_until(
        lambda: [
            t for t in desk.daemon.cli("tickets", "list", "--json") if t["customer"] == customer
        ],
        what=f"{customer}'s ticket",
    )
    ref: str = rows[0]["ref"]
    return ref


def post(desk: ApiDesk, path: str, token: str, key: str, body: dict[str, str]) -> Any:
    return desk.call("POST", path, token, json=body, headers={"Idempotency-Key": key})


def history(desk: ApiDesk, ref: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = desk.daemon.cli("tickets", "show", ref, "--json")["messages"]
    return messages


def test_an_idempotency_key_is_one_request_on_one_target(
    console: tuple[DaemonProcess, str],  # noqa: F811
    relay: Relay,
) -> None:
    desk = desk_of(console)
    first = ticket_of(desk, ALI, *WITHDRAWAL)
    second = ticket_of(desk, VELI, "Para çekme", "Çekimim onaylanmadı.")
    wait_for_mail(relay, VELI, 1, "(acknowledgement)")
    payment = desk.token("--agent", PAYMENT_AGENT)
    replies = "/api/v1/tickets/{}/replies"
    assert post(desk, replies.format(first), payment, "k-1", {"text": "Birinci"}).status_code == 201
    # The same key on another ticket is another request: answered, not dropped.
    other = post(desk, replies.format(second), payment, "k-1", {"text": "İkinci"})
    assert other.status_code == 201, other.text
    assert "İkinci" in text_of(wait_for_mail(relay, VELI, 2, "(the answer)")[-1])
    # The same key and text again: the earlier answer; another text: refused, said why.
    again = post(desk, replies.format(first), payment, "k-1", {"text": "Birinci"})
    assert again.status_code == 201
    changed = post(desk, replies.format(first), payment, "k-1", {"text": "Başka"})
    assert changed.status_code == 422 and "Idempotency-Key" in changed.json()["error"]
    wait_for_mail(relay, ALI, 2, "(the answer)")
    assert [m["text"].strip() for m in history(desk, first) if m["kind"] == "agent"] == ["Birinci"]

    # Notes with a key: the same.
    notes = f"/api/v1/tickets/{first}/notes"
    assert post(desk, notes, payment, "n-1", {"text": "aradım"}).status_code == 201
    assert post(desk, notes, payment, "n-1", {"text": "aradım"}).status_code == 201
    assert post(desk, notes, payment, "n-1", {"text": "yazdım"}).status_code == 422
    assert [m["text"].strip() for m in history(desk, first) if m["kind"] == "note"] == ["aradım"]

    # A new ticket: the key with another customer is refused, not the first ticket again.
    chat = {"customer": "deniz@musteri.example", "subject": "Çekim", "text": "Onaylanmadı."}
    opened = post(desk, "/api/v1/tickets", payment, "chat-1", chat)
    assert opened.status_code == 201, opened.text
    another = post(desk, "/api/v1/tickets", payment, "chat-1", {**chat, "customer": "e@f.example"})
    assert another.status_code == 422 and "Idempotency-Key" in another.json()["error"]
    repeated = post(desk, "/api/v1/tickets", payment, "chat-1", chat)
    assert repeated.status_code == 201 and repeated.json()["ref"] == opened.json()["ref"]

    # The console: the same form twice is one answer; the page's nonce again with an edited
    # text (the browser's Back button) is a new answer, not dropped.
    base = console[1]
    browser = console_session(base, relay, PAYMENT_AGENT)
    page = browser.get(f"{base}/console/tickets/{second}", timeout=30)
    fields = form_fields(page.text, "answer")
    url = f"{base}/console/tickets/{second}/answer"
    for text in ("Üçüncü", "Üçüncü", "Dördüncü"):
        sent = browser.post(url, data={**fields, "text": text}, timeout=30, allow_redirects=False)
        assert sent.status_code == 303
    wait_for_mail(relay, VELI, 4, "(the console's answers)")
    answers = [m["text"].strip() for m in history(desk, second) if m["kind"] == "agent"]
    assert answers == ["İkinci", "Üçüncü", "Dördüncü"]
    assert len(mails_to(relay, VELI)) == 4


def test_texts_assignees_and_filters_are_taken_as_stored(
    console: tuple[DaemonProcess, str],  # noqa: F811
    relay: Relay,
) -> None:
    desk = desk_of(console)
    ref = ticket_of(desk, ALI, *WITHDRAWAL)
    payment = desk.token("--agent", PAYMENT_AGENT)
    general = desk.token("--agent", GENERAL_AGENT)
    # A browser's CRLF: the history keeps LF, the mail says the same.
    crlf = {"text": "Merhaba Ali Bey,\r\n\r\nÇekiminiz onaylandı."}
    assert desk.call("POST", f"/api/v1/tickets/{ref}/replies", payment, json=crlf).ok
    assert desk.call("POST", f"/api/v1/tickets/{ref}/notes", payment, json=crlf).ok
    kept = [m["text"].strip() for m in history(desk, ref) if m["kind"] in ("agent", "note")]
    assert kept == ["Merhaba Ali Bey,\n\nÇekiminiz onaylandı."] * 2
    answer = wait_for_mail(relay, ALI, 2, "(the answer)")[-1]
    assert "Merhaba Ali Bey,\n\nÇekiminiz onaylandı." in text_of(answer)

    # Another case of an agent's address: the agent's, as configured, and theirs to see.
    shouted = {"assignee": GENERAL_AGENT.upper()}
    assigned = desk.call("PATCH", f"/api/v1/tickets/{ref}", payment, json=shouted)
    assert assigned.json()["changed"] == [f"assignee {GENERAL_AGENT}"]
    assert desk.daemon.cli("tickets", "show", ref, "--json")["assignee"] == GENERAL_AGENT
    assert desk.get(f"/api/v1/tickets/{ref}", general).status_code == 200
    assert [i["ref"] for i in desk.get("/api/v1/tickets", general).json()["items"]] == [ref]

    # A filter value that is none: 422 naming the parameter and what it takes.
    bogus = desk.get("/api/v1/tickets", payment, status="bogus")
    assert bogus.status_code == 422
    assert "status" in bogus.json()["error"] and "open, pending, closed" in bogus.json()["error"]
    nowhere = desk.get("/api/v1/tickets", payment, queue="yok")
    assert nowhere.status_code == 422 and "odeme" in nowhere.json()["error"]
    found = desk.get("/api/v1/tickets", payment, status="OPEN", queue="Odeme")
    assert [i["ref"] for i in found.json()["items"]] == [ref]


def test_files_and_headers_a_request_gets_wrong_are_4xx(
    console: tuple[DaemonProcess, str],  # noqa: F811
    relay: Relay,
) -> None:
    desk = desk_of(console)
    payment = desk.token("--agent", PAYMENT_AGENT)
    identity = desk.token("--agent", IDENTITY_AGENT)
    ref = ticket_of(desk, ALI, *WITHDRAWAL, [("dekont.pdf", "application/pdf", PDF)])
    [attachment] = desk.get(f"/api/v1/tickets/{ref}", payment).json()["messages"][0]["attachments"]
    message = attachment["id"].partition("-")[0]
    files = f"/api/v1/tickets/{ref}/attachments"
    for wrong in (f"{message}-9", "99999999999999999999999-1", f"{message}-²"):
        assert desk.get(f"{files}/{wrong}", payment).status_code == 404, wrong
    assert desk.get(f"{files}/{attachment['id']}", payment).status_code == 200

    # A document downloads under its stored name, the type found in it, never the sender's.
    documents = [
        ("pasaport.hta", "application/octet-stream", PDF),
        ("ehliyet.exe", "image/jpeg", JPEG),
    ]
    kyc = ticket_of(desk, VELI, "Kimlik belgelerim", "Kimlik doğrulaması için ekte.", documents)
    shown = desk.get(f"/api/v1/tickets/{kyc}", identity).json()
    names = []
    for sent in shown["messages"][0]["attachments"]:
        got = desk.get(f"/api/v1/tickets/{kyc}/attachments/{sent['id']}", identity)
        assert got.status_code == 200
        names.append(got.headers["Content-Disposition"])
    assert names == [
        "attachment; filename*=UTF-8''pasaport.pdf",
        "attachment; filename*=UTF-8''ehliyet.jpg",
    ]

    # A line break in a header field of the mail a new ticket is made of: 422 naming it.
    chat = {"customer": "deniz@musteri.example", "subject": "Çekim", "text": "Onaylanmadı."}
    for field in ("subject", "name"):
        wrong = desk.call(
            "POST", "/api/v1/tickets", payment, json={**chat, field: "konu\r\nBcc: x"}
        )
        assert wrong.status_code == 422 and field in wrong.json()["error"], wrong.text


def test_a_tab_in_a_new_tickets_subject_is_whitespace_as_in_mail(api_desk: ApiDesk) -> None:
    payment = api_desk.token("--agent", PAYMENT_AGENT)
    subject = "\tPara\tçekme talebim "
    # The same subject by mail, as a customer's client writes it.
    mailed = customer_mail(subject, "Çekimim onaylanmadı.", []).replace(
        b"can@musteri.example", VELI.encode()
    )
    assert b"Subject: \tPara\t" in mailed
    send(api_desk.daemon.port, mailed, VELI, DESK)
    chat = {"customer": ALI, "name": "Ali\tVeli", "subject": subject, "text": "Onaylanmadı."}
    opened = api_desk.call("POST", "/api/v1/tickets", payment, json=chat)
    assert opened.status_code == 201, opened.text
    rows = api_desk.daemon.wait_until(
        lambda: len(found := api_desk.daemon.cli("tickets", "list", "--json")) == 2 and found,
        what="both tickets",
    )
    by_customer = {row["customer"]: row["subject"] for row in rows}
    assert by_customer[ALI] == by_customer[VELI] == "Para\tçekme talebim"
    assert opened.json()["subject"] == "Para\tçekme talebim"
    # A line break or another control character is still refused (it would end the header).
    for wrong in ("konu\r\nBcc: x", "konu\nBcc: x", "konu\rx", "a\x0bb", "a\x00b", "a\x1bb"):
        for field in ("subject", "name"):
            refused = api_desk.call("POST", "/api/v1/tickets", payment, json={**chat, field: wrong})
            assert refused.status_code == 422 and field in refused.json()["error"], (field, wrong)
    for wrong in ("a\x85b", "a\u2028b", "a\u2029b"):
        refused = api_desk.call("POST", "/api/v1/tickets", payment, json={**chat, "subject": wrong})
        assert refused.status_code == 422, wrong
