"""The console (issue 20) in a real headless browser: Debian's chromium driven by Playwright (no
browser download), against the daemon as a process. Sign in by the link the relay received,
open the queues, a ticket, download its file, answer the customer (the answer reaches them at
the relay), search, change the language; an admin opens the quarantine and dismisses a forged
agent reply. A screenshot of each page is kept under the test's tmp folder (the path is
printed)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.daemon import DaemonProcess, Relay, daemon_config
from tests.helpers import DESK, free_port
from tests.test_agents import agent_reply, mails_to, send, text_of, wait_for_mail
from tests.web import ADMIN, PAYMENT_AGENT, TEAM, mailed_sign_in_link, wait_for_port, with_admin

pytestmark = pytest.mark.slow
CHROMIUM = "/usr/bin/chromium"
playwright = pytest.importorskip("playwright.sync_api")
if shutil.which(CHROMIUM) is None:  # scripts/test installs it; say so rather than skip
    pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium", pytrace=False)


@pytest.fixture
def console(tmp_path: Path, relay: Relay) -> Iterator[tuple[DaemonProcess, str]]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    extra = f'[http]\nlisten = "127.0.0.1:{port}"\npublic_url = "{base}"\n' + TEAM
    daemon = DaemonProcess(with_admin(daemon_config(tmp_path, relay.port, extra=extra)))
    daemon.start(timeout=120)
    wait_for_port(port)
    yield daemon, base
    assert daemon.stop() == 0, daemon.log()


CUSTOMER = "ali@musteri.com.tr"
RECEIPT = b"%PDF-1.4\n%dekont\n"


def customer_mail_with_a_file() -> bytes:
    mail = EmailMessage()
    mail["From"] = f"Ali Veli <{CUSTOMER}>"
    mail["To"] = DESK
    mail["Subject"] = "Para çekme talebim"
    mail.set_content("Para çekme talebim 3 gündür bekliyor, dekont ekte.")
    mail.add_attachment(RECEIPT, maintype="application", subtype="pdf", filename="dekont.pdf")
    return mail.as_bytes(policy=SMTP)


def sign_in(page: Any, base: str, relay: Relay, address: str, shots: Path, prefix: str) -> str:
    """Signs `page` in as `address` by the mailed link; the link used."""
    before = len([m for m in mails_to(relay, address) if "console/link" in text_of(m)])
    page.goto(base + "/")
    page.screenshot(path=str(shots / f"{prefix}-sign-in.png"))
    page.fill("input[name=address]", address)
    page.click("button")
    assert page.is_visible("#sent")
    link = mailed_sign_in_link(relay, address, before)
    page.goto(link)
    page.screenshot(path=str(shots / f"{prefix}-confirm.png"))
    page.click("#confirm")
    page.wait_for_selector("h1")
    return link


def test_an_agent_signs_in_reads_downloads_answers_and_searches(
    console: tuple[DaemonProcess, str], relay: Relay, tmp_path: Path
) -> None:
    daemon, base = console
    send(daemon.port, customer_mail_with_a_file(), CUSTOMER, DESK)
    wait_for_mail(relay, CUSTOMER, 1, "(acknowledgement)")
    [ticket] = daemon.wait_until(lambda: daemon.cli("tickets", "list", "--json"), what="ticket")
    ref = ticket["ref"]
    shots = screenshots(tmp_path)
    with chromium() as browser:
        page = browser.new_page(accept_downloads=True)
        link = sign_in(page, base, relay, PAYMENT_AGENT, shots, "1")
        page.wait_for_selector("table.tickets")
        assert ticket["ref"] in page.inner_text("table.tickets")
        page.screenshot(path=str(shots / "3-queues.png"))
        page.click(f"text={ticket['ref']}")
        page.wait_for_selector(".message")
        assert "3 gündür bekliyor" in page.inner_text("body")
        page.screenshot(path=str(shots / "4-ticket.png"))
        with page.expect_download() as download:
            page.click("a.file")
        assert download.value.suggested_filename == "dekont.pdf"
        assert Path(download.value.path()).read_bytes() == RECEIPT
        page.fill("#answer textarea", "Merhaba Ali Bey,\nçekiminiz bugün hesabınıza geçecek.")
        page.click("#send")
        page.wait_for_selector("#answered")
        assert "çekiminiz bugün" in page.inner_text("body")  # in the history at once
        page.screenshot(path=str(shots / "5-answered.png"))
        page.fill("input[name=q]", "ÇEKME")
        page.press("input[name=q]", "Enter")
        page.wait_for_selector("table.tickets")
        assert ticket["ref"] in page.inner_text("table.tickets")
        page.screenshot(path=str(shots / "6-search.png"))
        page.goto(base + "/?lang=en")
        assert page.inner_text("h1") == "Queues"
        page.screenshot(path=str(shots / "7-english.png"))
        page.goto(base + "/console/quarantine")
        assert "Only admins" in page.inner_text("h1")
        # Another site's page posting the console's forms: sign-out and an answer.
        for action, field in (
            ("/console/sign-out", ""),
            (f"/console/tickets/{ref}/answer", "text"),
        ):
            inputs = f'<input name="{field}" value="Hesabınız kapatıldı.">' if field else ""
            page.goto(
                f'data:text/html,<form method="post" action="{base}{action}">{inputs}'
                '<button id="go">go</button></form>'
            )
            page.click("#go")
            page.wait_for_load_state()
        page.goto(base + "/")
        assert PAYMENT_AGENT in page.inner_text("nav")  # still signed in
    [_, answer] = wait_for_mail(relay, CUSTOMER, 2, "(the console's answer)")
    assert "çekiminiz bugün hesabınıza geçecek" in text_of(answer)
    assert f"#{ticket['ref']}" in str(answer["Subject"])
    # The link worked once.
    assert browser_free_post(base, link) == 403


def test_an_admin_dismisses_a_forged_agent_reply_in_the_quarantine(
    console: tuple[DaemonProcess, str], relay: Relay, tmp_path: Path
) -> None:
    daemon, base = console
    send(daemon.port, customer_mail_with_a_file(), CUSTOMER, DESK)
    [notification] = wait_for_mail(relay, PAYMENT_AGENT, 1, "(notification)")
    forged = agent_reply(notification, "Sahte <mallory@evil.example>", "Hesabınız kapatıldı.")
    send(daemon.port, forged, "mallory@evil.example", str(notification["Reply-To"]))
    daemon.wait_until(lambda: daemon.cli("quarantine", "list", "--json"), what="quarantined")
    shots = screenshots(tmp_path)
    with chromium() as browser:
        page = browser.new_page()
        sign_in(page, base, relay, ADMIN, shots, "8")
        page.click("nav >> text=Karantina")
        page.wait_for_selector("table.quarantine")
        assert "security" in page.inner_text("table.quarantine")
        page.screenshot(path=str(shots / "9-quarantine.png"))
        page.fill("input[name=reason]", "sahte yanıt, güvenlik ekibi inceledi")
        page.click("button.dismiss")
        page.wait_for_selector("#said")
        assert page.is_visible("#empty")
        page.screenshot(path=str(shots / "10-dismissed.png"))
    assert daemon.cli("quarantine", "list", "--json") == []


def screenshots(tmp_path: Path) -> Path:
    shots = tmp_path / "screenshots"
    shots.mkdir()
    print(f"console screenshots: {shots}")
    return shots


@contextmanager
def chromium() -> Iterator[Any]:
    api = playwright.sync_playwright().start()
    browser = api.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
    try:
        yield browser
    finally:
        browser.close()
        api.stop()


def browser_free_post(base: str, link: str) -> int:
    token = link.partition("?t=")[2]
    return requests.post(
        base + "/console/link", data={"t": token}, timeout=30, allow_redirects=False
    ).status_code
