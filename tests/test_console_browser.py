"""The console (issue 20) in a real headless browser: Debian's chromium driven by Playwright (no
browser download), against the daemon as a process. Sign in by the link the relay received,
open the queues, a ticket with its file, search, change the language; a screenshot of each page
is kept under the test's tmp folder (the path is printed)."""

from __future__ import annotations

import re
import shutil
import smtplib
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import pytest
import requests

from tests.daemon import DaemonProcess, Relay, daemon_config
from tests.helpers import DESK, free_port
from tests.web import PAYMENT_AGENT, TEAM, wait_for_port

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
    daemon = DaemonProcess(daemon_config(tmp_path, relay.port, extra=extra))
    daemon.start(timeout=120)
    wait_for_port(port)
    yield daemon, base
    assert daemon.stop() == 0, daemon.log()


def customer_mail_with_a_file() -> bytes:
    mail = EmailMessage()
    mail["From"] = "Ali Veli <ali@musteri.com.tr>"
    mail["To"] = DESK
    mail["Subject"] = "Para çekme talebim"
    mail.set_content("Para çekme talebim 3 gündür bekliyor, dekont ekte.")
    mail.add_attachment(
        b"%PDF-1.4\n%dekont\n", maintype="application", subtype="pdf", filename="dekont.pdf"
    )
    return mail.as_bytes(policy=SMTP)


def link_in_mail(relay: Relay, to: str) -> str:
    for message in reversed(relay.wait_for(3, timeout=30)):
        if to in str(message["To"]):
            assert isinstance(message, EmailMessage)
            body = message.get_body(preferencelist=("plain",))
            assert isinstance(body, EmailMessage)
            found = re.search(r"https?://\S+/console/link\?t=\S+", body.get_content())
            if found:
                return found.group()
    raise AssertionError("no sign-in link reached the relay")


def test_sign_in_by_mail_then_queues_ticket_search(
    console: tuple[DaemonProcess, str], relay: Relay, tmp_path: Path
) -> None:
    daemon, base = console
    with smtplib.SMTP("127.0.0.1", daemon.port, timeout=10) as client:
        client.sendmail("ali@musteri.com.tr", [DESK], customer_mail_with_a_file())
    relay.wait_for(2, timeout=30)  # the acknowledgement and the agent's notification
    [ticket] = daemon.wait_until(lambda: daemon.cli("tickets", "list", "--json"), what="ticket")
    shots = tmp_path / "screenshots"
    shots.mkdir()
    print(f"console screenshots: {shots}")
    api = playwright.sync_playwright().start()
    browser = api.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
    try:
        page = browser.new_page()
        page.goto(base + "/")
        page.screenshot(path=str(shots / "1-sign-in.png"))
        page.fill("input[name=address]", PAYMENT_AGENT)
        page.click("button")
        assert page.is_visible("#sent")
        page.goto(link_in_mail(relay, PAYMENT_AGENT))
        page.screenshot(path=str(shots / "2-confirm.png"))
        page.click("#confirm")
        page.wait_for_selector("table.tickets")
        assert ticket["ref"] in page.inner_text("table.tickets")
        page.screenshot(path=str(shots / "3-queues.png"))
        page.click(f"text={ticket['ref']}")
        page.wait_for_selector(".message")
        assert "3 gündür bekliyor" in page.inner_text("body")
        assert "dekont.pdf" in page.inner_text(".file")
        page.screenshot(path=str(shots / "4-ticket.png"))
        page.fill("input[name=q]", "ÇEKME")
        page.press("input[name=q]", "Enter")
        page.wait_for_selector("table.tickets")
        assert ticket["ref"] in page.inner_text("table.tickets")
        page.screenshot(path=str(shots / "5-search.png"))
        page.goto(base + "/?lang=en")
        assert page.inner_text("h1") == "Queues"
        page.screenshot(path=str(shots / "6-english.png"))
        page.goto(base + "/console/quarantine")
        assert "Only admins" in page.inner_text("h1")
    finally:
        browser.close()
        api.stop()
    # The link worked once.
    used = link_in_mail(relay, PAYMENT_AGENT)
    fresh = browser_free_post(base, used)
    assert fresh == 403


def browser_free_post(base: str, link: str) -> int:
    token = link.partition("?t=")[2]
    return requests.post(
        base + "/console/link", data={"t": token}, timeout=30, allow_redirects=False
    ).status_code
