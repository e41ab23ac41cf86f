"""The console's answers, files and quarantine (issue 20) over a real socket, as a browser posts
its forms (requests, no JavaScript): an answer reaches the customer at the relay as an agent's
mail answer does, once however often the form is sent; a form without its token changes
nothing; an agent reaches only the tickets of their queues; only admins see, retry and dismiss
the quarantine; every access is audited. The same pages in a real browser:
tests/test_console_browser.py."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import insert, select

from storage.db import Database
from storage.models import AccessAudit, Ticket
from tests.daemon import DaemonProcess, Relay, daemon_config
from tests.helpers import DESK, free_port
from tests.test_agents import agent_reply, mails_to, send, text_of, wait_for_mail
from tests.web import (
    ADMIN,
    GENERAL_AGENT,
    PAYMENT_AGENT,
    TEAM,
    console_session,
    mailed_sign_in_link,
    sign_in_links,
    wait_for_port,
    with_admin,
)

pytestmark = pytest.mark.slow
CUSTOMER = "ali@musteri.com.tr"
RECEIPT = b"%PDF-1.4\n%dekont 2026-12-02\n"


@pytest.fixture
def console(tmp_path: Path, relay: Relay) -> Iterator[tuple[DaemonProcess, str]]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # No public_url: mailed links come from the configured address, never from a Host header.
    extra = f'[http]\nlisten = "127.0.0.1:{port}"\n' + TEAM
    daemon = DaemonProcess(with_admin(daemon_config(tmp_path, relay.port, extra=extra)))
    daemon.start(timeout=120)
    wait_for_port(port)
    yield daemon, base
    assert daemon.stop() == 0, daemon.log()


def withdrawal_ticket(daemon: DaemonProcess, relay: Relay) -> dict[str, Any]:
    mail = EmailMessage()
    mail["From"] = f"Ali Veli <{CUSTOMER}>"
    mail["To"] = DESK
    mail["Subject"] = "Para çekme talebim"
    mail["Message-ID"] = "<cekme-1@musteri.com.tr>"
    mail.set_content("Para çekme talebim 3 gündür bekliyor, dekont ekte.")
    mail.add_attachment(RECEIPT, maintype="application", subtype="pdf", filename="dekont.pdf")
    send(daemon.port, mail.as_bytes(policy=SMTP), CUSTOMER, DESK)
    wait_for_mail(relay, CUSTOMER, 1, "(acknowledgement)")
    wait_for_mail(relay, PAYMENT_AGENT, 1, "(notification)")
    tickets = daemon.wait_until(lambda: daemon.cli("tickets", "list", "--json"), what="ticket")
    found: dict[str, Any] = tickets[0]
    return found


def form_fields(html: str, form_id: str) -> dict[str, str]:
    form = re.search(rf'<form id="{form_id}".*?</form>', html, re.S)
    assert form, f"no form {form_id} on the page"
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', form.group()))


def audit_actions(daemon: DaemonProcess) -> list[tuple[str, str]]:
    db = Database(daemon.config.storage.database)
    try:
        with db.read() as session:
            rows = session.execute(select(AccessAudit.actor, AccessAudit.action))
            return [(actor, action) for actor, action in rows]
    finally:
        db.dispose()


def test_an_answer_from_the_console_reaches_the_customer_once(
    console: tuple[DaemonProcess, str], relay: Relay
) -> None:
    daemon, base = console
    ref = withdrawal_ticket(daemon, relay)["ref"]
    browser = console_session(base, relay, PAYMENT_AGENT)
    page = browser.get(f"{base}/console/tickets/{ref}", timeout=30)
    assert page.status_code == 200 and "3 gündür bekliyor" in page.text
    fields = form_fields(page.text, "answer")
    text = "Merhaba Ali Bey, çekiminiz bugün hesabınıza geçecek."
    url = f"{base}/console/tickets/{ref}/answer"
    # Without the page's token (a form of another site): refused, nothing sent.
    forged = browser.post(url, data={"text": "Hesabınız kapatıldı.", "kind": "answer"}, timeout=30)
    assert forged.status_code == 403
    # The same form twice (a double click, a reload): one answer.
    for _ in range(2):
        sent = browser.post(url, data={**fields, "text": text}, timeout=30, allow_redirects=False)
        assert sent.status_code == 303
    [_, answer] = wait_for_mail(relay, CUSTOMER, 2, "(the answer)")
    assert text in text_of(answer)
    assert parseaddr(str(answer["From"]))[1] == DESK
    assert str(answer["In-Reply-To"]) == "<cekme-1@musteri.com.tr>"
    assert f"#{ref}" in str(answer["Subject"])
    time.sleep(1)
    assert len(mails_to(relay, CUSTOMER)) == 2
    assert "Hesabınız kapatıldı" not in "".join(text_of(m) for m in relay.handler.messages())
    # A note: in the history, never mailed.
    note = {**form_fields(page.text, "note"), "text": "Finans ekibine sordum."}
    for _ in range(2):  # a double click
        assert browser.post(url, data=note, timeout=30).status_code == 200
    shown = daemon.cli("tickets", "show", ref, "--json")
    kinds = [(m["direction"], m["kind"]) for m in shown["messages"]]
    assert kinds.count(("out", "agent")) == 1 and kinds.count(("in", "note")) == 1, kinds
    assert len(mails_to(relay, CUSTOMER)) == 2
    assert (PAYMENT_AGENT, "console reply") in audit_actions(daemon)


def test_files_download_as_they_came_and_stay_in_the_agents_queues(
    console: tuple[DaemonProcess, str], relay: Relay
) -> None:
    daemon, base = console
    ref = withdrawal_ticket(daemon, relay)["ref"]
    payment = console_session(base, relay, PAYMENT_AGENT)
    page = payment.get(f"{base}/console/tickets/{ref}", timeout=30).text
    link = re.search(r'<a class="file" href="([^"]+)"', page)
    assert link, page
    got = payment.get(base + link.group(1), timeout=30)
    assert got.status_code == 200 and got.content == RECEIPT
    assert got.headers["Content-Type"] == "application/octet-stream"
    assert "dekont.pdf" in got.headers["Content-Disposition"]
    # Another queue's agent: the ticket, its file and its answer form do not exist for them.
    general = console_session(base, relay, GENERAL_AGENT)
    assert general.get(f"{base}/console/tickets/{ref}", timeout=30).status_code == 404
    assert general.get(base + link.group(1), timeout=30).status_code == 404
    stolen = {**form_fields(page, "answer"), "text": "Merhaba"}
    stolen["csrf"] = form_fields(general.get(base + "/", timeout=30).text, "sign-out")["csrf"]
    refused = general.post(f"{base}/console/tickets/{ref}/answer", data=stolen, timeout=30)
    assert refused.status_code == 404
    # An admin reads everything but answers as nobody: no form, and a post is refused.
    admin = console_session(base, relay, ADMIN)
    admin_page = admin.get(f"{base}/console/tickets/{ref}", timeout=30)
    assert admin_page.status_code == 200 and 'id="answer"' not in admin_page.text
    token = form_fields(admin_page.text, "sign-out")["csrf"]
    posted = {"text": "Merhaba", "csrf": token, "kind": "answer"}
    by_admin = admin.post(f"{base}/console/tickets/{ref}/answer", data=posted, timeout=30)
    assert by_admin.status_code == 403 and "yöneticiler yanıt yazmaz" in by_admin.text
    time.sleep(0.5)
    assert len(mails_to(relay, CUSTOMER)) == 1  # the acknowledgement only
    actions = audit_actions(daemon)
    assert (PAYMENT_AGENT, "console file") in actions
    assert (GENERAL_AGENT, "console show refused") in actions
    assert (GENERAL_AGENT, "console file refused") in actions


def quarantined(daemon: DaemonProcess, count: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = daemon.wait_until(
        lambda: [r for r in [daemon.cli("quarantine", "list", "--json")] if len(r) == count],
        what=f"{count} quarantined",
    )[0]
    return rows


def test_admins_retry_and_dismiss_the_quarantine(
    console: tuple[DaemonProcess, str], relay: Relay
) -> None:
    daemon, base = console
    withdrawal_ticket(daemon, relay)
    [notification] = mails_to(relay, PAYMENT_AGENT)
    forged = agent_reply(notification, "Sahte <mallory@evil.example>", "Hesabınız kapatıldı.")
    send(daemon.port, forged, "mallory@evil.example", str(notification["Reply-To"]))
    [row] = quarantined(daemon, 1)
    agent = console_session(base, relay, PAYMENT_AGENT)
    assert agent.get(base + "/console/quarantine", timeout=30).status_code == 403
    admin = console_session(base, relay, ADMIN)
    page = admin.get(base + "/console/quarantine", timeout=30)
    assert page.status_code == 200 and "security" in page.text and f'id="q{row["id"]}"' in page.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf
    url = f"{base}/console/quarantine/{row['id']}"
    assert admin.post(url, data={"action": "retry"}, timeout=30).status_code == 403
    retried = admin.post(url, data={"action": "retry", "csrf": csrf.group(1)}, timeout=30)
    assert retried.status_code == 200 and 'id="said"' in retried.text
    # Taken again by the worker, and quarantined again for the same reason.
    daemon.wait_until(
        lambda: [r for r in daemon.cli("quarantine", "list", "--json") if r["attempts"] >= 2],
        what="a second attempt",
    )
    empty = {"action": "dismiss", "csrf": csrf.group(1), "reason": " "}
    assert admin.post(url, data=empty, timeout=30).status_code == 422
    reason = {**empty, "reason": "sahte yanıt, güvenlik ekibi inceledi"}
    dismissed = admin.post(url, data=reason, timeout=30)
    assert dismissed.status_code == 200 and 'id="empty"' in dismissed.text
    assert daemon.cli("quarantine", "list", "--json") == []
    again = admin.post(url, data={"action": "retry", "csrf": csrf.group(1)}, timeout=30)
    assert again.status_code == 404
    actions = [action for actor, action in audit_actions(daemon) if actor == ADMIN]
    assert actions.count("quarantine-retry") == 1 and actions.count("quarantine-dismiss") == 1
    assert "console quarantine" in actions  # seeing the reasons (senders, subjects) too


def test_signed_out_the_console_changes_nothing(
    console: tuple[DaemonProcess, str], relay: Relay
) -> None:
    daemon, base = console
    ref = withdrawal_ticket(daemon, relay)["ref"]
    stranger = requests.Session()
    answer = stranger.post(
        f"{base}/console/tickets/{ref}/answer",
        data={"text": "Merhaba", "csrf": "x"},
        timeout=30,
        allow_redirects=False,
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    assert stranger.get(f"{base}/console/quarantine", allow_redirects=False).status_code == 303
    time.sleep(0.5)
    assert len(mails_to(relay, CUSTOMER)) == 1
    # Signing out is a form of the page too: another site's post leaves the agent signed in.
    agent = console_session(base, relay, PAYMENT_AGENT)
    assert agent.post(f"{base}/console/sign-out", timeout=30).status_code == 403
    home = agent.get(base + "/", timeout=30).text
    assert 'id="sign-out"' in home
    out = agent.post(f"{base}/console/sign-out", data=form_fields(home, "sign-out"), timeout=30)
    assert out.status_code == 200 and 'name="address"' in out.text  # the sign-in page again
    assert agent.get(f"{base}/console/tickets/{ref}", allow_redirects=False).status_code == 303


def test_neither_a_sign_in_link_nor_a_session_is_an_api_token(
    console: tuple[DaemonProcess, str], relay: Relay
) -> None:
    daemon, base = console
    before = len(sign_in_links(relay, ADMIN))
    assert requests.post(base + "/console/sign-in", data={"address": ADMIN}, timeout=30).ok
    unused = mailed_sign_in_link(relay, ADMIN, before).partition("?t=")[2]
    session = console_session(base, relay, ADMIN).cookies["ticketd_console"]
    for token in (unused, session):
        bearer = {"Authorization": f"Bearer {token}"}
        assert requests.get(base + "/api/v1/tickets", headers=bearer, timeout=30).status_code == 401
    rows = daemon.cli("tokens", "list", "--json")
    assert {row["name"] for row in rows} >= {"console admin link", "console admin session"}
    assert all(row["admin"] for row in rows)
    reserved = ("tokens", "create", "--admin", "--name", "console admin session")
    made = subprocess.run(
        [sys.executable, "-m", "ticketd.cli", "--config", str(daemon.config_path), *reserved],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode != 0 and "console" in made.stderr, made


def test_forms_posted_from_another_site_change_nothing(
    console: tuple[DaemonProcess, str], relay: Relay
) -> None:
    daemon, base = console
    ref = withdrawal_ticket(daemon, relay)["ref"]
    agent = console_session(base, relay, PAYMENT_AGENT)
    page = agent.get(f"{base}/console/tickets/{ref}", timeout=30)
    evil = {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}
    answer = {**form_fields(page.text, "answer"), "text": "Hesabınız kapatıldı."}
    url = f"{base}/console/tickets/{ref}/answer"
    assert agent.post(url, data=answer, headers=evil, timeout=30).status_code == 403
    # Same site, another port (another application on the host) is another origin too.
    other = {"Origin": "http://127.0.0.1:1", "Sec-Fetch-Site": "same-site"}
    assert agent.post(url, data=answer, headers=other, timeout=30).status_code == 403
    # Signing the victim in as the attacker: the attacker's own fresh link, posted cross-site.
    before = len(sign_in_links(relay, GENERAL_AGENT))
    assert requests.post(base + "/console/sign-in", data={"address": GENERAL_AGENT}).ok
    token = mailed_sign_in_link(relay, GENERAL_AGENT, before).partition("?t=")[2]
    swap = agent.post(base + "/console/link", data={"t": token}, headers=evil, timeout=30)
    assert swap.status_code == 403 and "set-cookie" not in swap.headers
    # Signing out: a cross-site post carries no cookie (SameSite) and must not delete it.
    stranger = requests.post(base + "/console/sign-out", headers=evil, allow_redirects=False)
    assert "set-cookie" not in stranger.headers
    assert PAYMENT_AGENT in agent.get(base + "/", timeout=30).text  # still signed in as Ayşe
    time.sleep(0.5)
    assert len(mails_to(relay, CUSTOMER)) == 1


def test_mailed_links_ignore_the_host_header_and_are_rationed(
    console: tuple[DaemonProcess, str], relay: Relay
) -> None:
    _, base = console
    for _ in range(6):
        asked = requests.post(
            base + "/console/sign-in",
            data={"address": PAYMENT_AGENT},
            headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example"},
            timeout=30,
        )
        assert asked.status_code == 200 and 'id="sent"' in asked.text
    first = mailed_sign_in_link(relay, PAYMENT_AGENT, 0)
    assert first.startswith(base + "/console/link?t="), first
    time.sleep(2)
    assert len(sign_in_links(relay, PAYMENT_AGENT)) == 3  # then no more until they expire
    assert all("evil" not in link for link in sign_in_links(relay, PAYMENT_AGENT))


def test_pages_are_not_cached_or_framed_and_every_ticket_is_reachable(
    console: tuple[DaemonProcess, str], relay: Relay
) -> None:
    daemon, base = console
    ref = withdrawal_ticket(daemon, relay)["ref"]
    add_open_tickets(daemon, 230)
    agent = console_session(base, relay, PAYMENT_AGENT)
    ticket = agent.get(f"{base}/console/tickets/{ref}", timeout=30)
    link = re.search(r'<a class="file" href="([^"]+)"', ticket.text)
    assert link
    for response in (ticket, agent.get(base + link.group(1), timeout=30)):
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert "müşteri" in ticket.text and " UTC" in ticket.text  # the kind in Turkish, the time
    # 231 open tickets (the old console showed 200): pages of 100, the oldest on the last.
    seen: list[str] = []
    url: str | None = base + "/"
    while url:
        shown = agent.get(url, timeout=30).text
        seen += re.findall(r'href="/console/tickets/([^"]+)"', shown)
        more = re.search(r'<a id="more" href="([^"]+)"', shown)
        url = base + more.group(1).replace("&amp;", "&") if more else None
    assert len(seen) == len(set(seen)) == 231 and ref in seen
    # An empty search goes back to the queues; a search's language link keeps the words.
    assert agent.get(base + "/console/search?q=+", allow_redirects=False).status_code == 303
    found = agent.get(base + "/console/search", params={"q": "çekme"}, timeout=30).text
    assert "?q=%C3%A7ekme&amp;lang=en" in found or "q=%C3%A7ekme&amp;lang=en" in found, found
    actions = audit_actions(daemon)
    assert (PAYMENT_AGENT, "console list") in actions and (
        PAYMENT_AGENT,
        "console search",
    ) in actions


def test_a_path_that_is_no_page_is_the_consoles_404_and_the_apis_stay_json(
    console: tuple[DaemonProcess, str], relay: Relay
) -> None:
    base = console[1]
    paths = ("/nope", "/console/nope", "/console/tickets/ABCD-EFGH/nope", "/favicon.ico")
    for path in paths:
        lost = requests.get(base + path, headers={"Accept": "text/html"}, timeout=30)
        assert lost.status_code == 404, path
        assert lost.headers["content-type"].startswith("text/html"), (path, lost.text)
        assert "Böyle bir sayfa yok." in lost.text  # the desk's language
        assert lost.headers["Cache-Control"] == "no-store"
        assert "default-src 'none'" in lost.headers["Content-Security-Policy"]
    english = requests.get(base + "/nope?lang=en", timeout=30)
    assert english.status_code == 404 and "No such page." in english.text
    agent = console_session(base, relay, PAYMENT_AGENT)
    signed_in = agent.get(base + "/console/nope", timeout=30)
    assert signed_in.status_code == 404 and PAYMENT_AGENT in signed_in.text  # the nav is there
    # The API's paths answer JSON, whatever the client accepts.
    for path in ("/api/v1/nope", "/api/v1/tickets/ABCD-EFGH/nope", "/api/nope", "/api"):
        lost = requests.get(base + path, headers={"Accept": "text/html"}, timeout=30)
        assert lost.status_code == 404, path
        assert lost.headers["content-type"] == "application/json", path
        assert lost.json() == {"error": "Not Found"}, path


def console_page(answer: requests.Response, status: int, text: str) -> None:
    """`answer` is the console's page with `status` saying `text`, with the console's headers."""
    assert answer.status_code == status, (answer.request.method, answer.url, answer.text)
    assert answer.headers["content-type"].startswith("text/html"), answer.text
    assert text in answer.text, answer.text
    assert answer.headers["Cache-Control"] == "no-store"
    assert "default-src 'none'" in answer.headers["Content-Security-Policy"]


def test_a_method_a_console_path_does_not_take_is_a_console_page_and_the_apis_stay_json(
    console: tuple[DaemonProcess, str], relay: Relay
) -> None:
    daemon, base = console
    ref = withdrawal_ticket(daemon, relay)["ref"]
    # A browser opening the sign-out button's address (it only takes the form's POST).
    out = requests.get(base + "/console/sign-out", timeout=30)
    console_page(out, 405, "Bu sayfa bu şekilde açılmaz")
    assert out.headers["Allow"] == "POST"
    english = requests.put(base + "/console/link?lang=en", timeout=30)
    console_page(english, 405, "This page does not open that way")
    assert english.headers["Allow"] == "GET, HEAD, POST"
    agent = console_session(base, relay, PAYMENT_AGENT)
    opened = agent.get(f"{base}/console/tickets/{ref}/answer", timeout=30)
    console_page(opened, 405, "Bu sayfa bu şekilde açılmaz")
    assert PAYMENT_AGENT in opened.text  # signed in: the nav is there
    for method, path, allow in (
        ("DELETE", "/api/v1/tickets", "GET, HEAD, POST"),
        ("GET", f"/api/v1/tickets/{ref}/replies", "POST"),
        ("PUT", "/healthz", "GET, HEAD"),
    ):
        api = requests.request(method, base + path, headers={"Accept": "text/html"}, timeout=30)
        assert api.status_code == 405 and api.headers["Allow"] == allow, (path, api.headers)
        assert api.json() == {"error": "Method Not Allowed"}, path


def test_a_form_sent_incomplete_is_shown_again_saying_why(
    console: tuple[DaemonProcess, str], relay: Relay
) -> None:
    daemon, base = console
    ref = withdrawal_ticket(daemon, relay)["ref"]
    asked = requests.post(base + "/console/sign-in", data={"address": ""}, timeout=30)
    console_page(asked, 422, "“Adresiniz” boş.")
    assert '<form action="/console/sign-in"' in asked.text  # the form again
    link = requests.post(base + "/console/link?lang=en", data={}, timeout=30)
    console_page(link, 422, "“The sign-in link” is empty.")
    assert 'id="bad"' in link.text and '<form action="/console/sign-in"' in link.text
    agent = console_session(base, relay, PAYMENT_AGENT)
    shown = agent.get(f"{base}/console/tickets/{ref}", timeout=30).text
    url = f"{base}/console/tickets/{ref}/answer"
    # Longer than the server takes (a browser counts a line break once, sends it as CR LF):
    # the ticket again with the answer kept, to shorten; nothing is sent.
    long = "Merhaba Ali Bey,\n" + "ç" * 100_000
    sent = agent.post(url, data={**form_fields(shown, "answer"), "text": long}, timeout=30)
    console_page(sent, 422, "“Metin” 100000 karakterden uzun: kısaltın.")
    assert f'maxlength="100000">\n{long}</textarea>' in sent.text.replace("\r\n", "\n")
    assert form_fields(sent.text, "answer")["csrf"] == form_fields(shown, "answer")["csrf"]
    note = agent.post(url, data={**form_fields(shown, "note"), "text": ""}, timeout=30)
    console_page(note, 422, "“Metin” boş.")
    assert 'id="note"' in note.text and PAYMENT_AGENT in note.text
    kinds = [m["kind"] for m in daemon.cli("tickets", "show", ref, "--json")["messages"]]
    assert "agent" not in kinds and "note" not in kinds, kinds
    assert len(mails_to(relay, CUSTOMER)) == 1  # the acknowledgement only
    # The quarantine's forms and a page's parameter, for an admin.
    admin = console_session(base, relay, ADMIN)
    csrf = re.search(r'name="csrf" value="([^"]+)"', admin.get(base + "/", timeout=30).text)
    assert csrf
    posted = admin.post(base + "/console/quarantine/1", data={"csrf": csrf.group(1)}, timeout=30)
    console_page(posted, 422, "“İşlem” boş.")
    assert 'id="said"' in posted.text
    wrong = admin.post(base + "/console/quarantine/abc", data={"action": "retry"}, timeout=30)
    console_page(wrong, 422, "“İleti numarası” geçerli değil.")
    listed = admin.get(base + "/console/quarantine?id=abc", timeout=30)
    console_page(listed, 422, "“İleti numarası” geçerli değil.")
    # The API's 422 stays JSON.
    api = requests.post(
        f"{base}/api/v1/tickets/{ref}/replies",
        json={},
        headers={"Authorization": f"Bearer {api_token(daemon)}"},
        timeout=30,
    )
    assert api.status_code == 422 and api.json() == {"error": "body.text: Field required"}


def api_token(daemon: DaemonProcess) -> str:
    command = [sys.executable, "-m", "ticketd.cli", "--config", str(daemon.config_path)]
    created = subprocess.run(
        [*command, "tokens", "create", "--agent", PAYMENT_AGENT],
        capture_output=True,
        check=True,
        text=True,
    )
    return created.stdout.strip()


def add_open_tickets(daemon: DaemonProcess, count: int) -> None:
    """`count` open tickets of the payment queue, written straight into the database (what is
    tested is the console's paging, not the intake)."""
    now = datetime.now(UTC) - timedelta(days=1)
    rows = [
        {
            "ref": f"P{number:07d}",
            "status": "open",
            "category": "payment",
            "queue": "odeme",
            "priority": "normal",
            "customer": f"c{number}@musteri.example",
            "language": "tr",
            "subject": f"Talep {number}",
            "created_at": now,
            "updated_at": now,
            "sla_paused_seconds": 0,
        }
        for number in range(count)
    ]
    db = Database(daemon.config.storage.database)
    try:
        with db.transaction() as session:
            session.execute(insert(Ticket), rows)
    finally:
        db.dispose()
