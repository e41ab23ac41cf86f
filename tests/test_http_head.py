"""HEAD on the API's and the console's GET paths answers as GET does, without a body (RFC 9110
9.3.2): the same status and headers, Content-Length as GET's; and a 405 names HEAD in Allow
wherever it names GET. Over a real socket (web/server.py's uvicorn on a free port); the bytes
are read off the socket, so a body sent after a HEAD's headers would be seen."""

from __future__ import annotations

import socket
from collections.abc import Iterator, Mapping
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import pytest
import requests

from tests.daemon import Relay
from tests.helpers import DESK
from tests.test_agents import send
from tests.test_api_errors import Served, _SickViews, desk_config
from tests.web import PAYMENT_AGENT, ApiDesk, console_session

RECEIPT = b"%PDF-1.4\n%dekont 2026-12-02\n"
# Those a second request may answer otherwise whatever its method.
_EVERY_TIME = {"date", "set-cookie"}


def _raw(
    base: str, method: str, path: str, headers: Mapping[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and every byte after them until the server closes the connection."""
    host, port = base.removeprefix("http://").split(":")
    sent = {"Host": host, "Connection": "close", **(headers or {})}
    request = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in sent.items())
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall((request + "\r\n").encode())
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    answered = {}
    for line in lines:
        name, _, value = line.partition(":")
        answered[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), answered, body


def _same_but_the_body(
    base: str, path: str, headers: Mapping[str, str] | None = None
) -> tuple[int, dict[str, str]]:
    """HEAD's answer is GET's without the body; GET's status and headers."""
    got_status, got_headers, got_body = _raw(base, "GET", path, headers)
    status, answered, body = _raw(base, "HEAD", path, headers)
    assert got_body, path  # GET has a body to leave out
    assert (status, body) == (got_status, b""), path
    assert {k: v for k, v in answered.items() if k not in _EVERY_TIME} == {
        k: v for k, v in got_headers.items() if k not in _EVERY_TIME
    }, path
    assert answered["content-length"] == str(len(got_body)), path
    return status, got_headers


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    server = Served(_SickViews(), config=desk_config(tmp_path))
    yield server
    server.stop()


PATHS = [
    "/healthz",  # 503 JSON: the views say the desk is sick
    "/openapi.json",  # 200 JSON
    "/api/v1/tickets",  # 401 without a token, with WWW-Authenticate
    "/console/link?t=x",  # 200: the console's page confirming a sign-in link
    "/console/no-such-page",  # 404: the console's page
    "/api/v1/no-such-path",  # 404 JSON
]


@pytest.mark.parametrize("path", PATHS)
def test_head_answers_as_get_without_a_body(served: Served, path: str) -> None:
    _same_but_the_body(served.base, path)


@pytest.mark.slow
def test_head_on_a_ticket_its_file_and_its_console_page(api_desk: ApiDesk, relay: Relay) -> None:
    """The daemon as a process, with a ticket in its database: what a client asks HEAD of."""
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "can@musteri.example", DESK, "Para çekme"
    mail.set_content("Çekimim 3 gündür bekliyor, dekont ekte.")
    mail.add_attachment(RECEIPT, maintype="application", subtype="pdf", filename="dekont.pdf")
    send(api_desk.daemon.port, mail.as_bytes(policy=SMTP), "can@musteri.example", DESK)
    token = api_desk.token("--admin")
    bearer = {"Authorization": f"Bearer {token}"}
    [item] = api_desk.daemon.wait_until(
        lambda: api_desk.get("/api/v1/tickets", token).json()["items"], what="the ticket"
    )
    ref = item["ref"]
    status, _ = _same_but_the_body(api_desk.base, f"/api/v1/tickets/{ref}", bearer)
    assert status == 200
    customers = api_desk.get(f"/api/v1/tickets/{ref}", token).json()["messages"][0]
    [attachment] = customers["attachments"]
    path = f"/api/v1/tickets/{ref}/attachments/{attachment['id']}"
    status, headers = _same_but_the_body(api_desk.base, path, bearer)
    assert status == 200 and headers["content-length"] == str(len(RECEIPT))
    browser = console_session(api_desk.base, relay, PAYMENT_AGENT)
    cookies = {"Cookie": "; ".join(f"{k}={v}" for k, v in browser.cookies.items())}
    status, _ = _same_but_the_body(api_desk.base, f"/console/tickets/{ref}", cookies)
    assert status == 200


def test_head_where_no_get_is_taken_is_a_405(served: Served) -> None:
    status, headers, body = _raw(served.base, "HEAD", "/console/sign-in")
    assert status == 405 and headers["allow"] == "POST" and body == b""


def test_a_405_names_head_wherever_it_names_get(served: Served) -> None:
    def allow(method: str, path: str) -> str:
        answer = requests.request(method, served.base + path, timeout=30)
        assert answer.status_code == 405, (method, path)
        return answer.headers["Allow"]

    assert allow("DELETE", "/api/v1/tickets") == "GET, HEAD, POST"
    assert allow("POST", "/healthz") == "GET, HEAD"
    assert allow("PUT", "/console/link") == "GET, HEAD, POST"
