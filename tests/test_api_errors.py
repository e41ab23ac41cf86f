"""The API's failures, in process over a real socket (web/server.py's uvicorn on a free port): a
request that fails is one JSON 500 and one traceback in the log, not two (on a console path one
HTML page that tells nothing of the error); an error keeps the headers its exception carries
(`Allow` on a 405); /openapi.json names the errors the API answers, in the shape it answers
them."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import requests
from fastapi import FastAPI, HTTPException

from domain.config import Config, HostPort, load_config
from domain.config_team import AgentConfig
from ingest.agent_replies import may_act
from storage.models import Ticket
from tests.helpers import free_port, write_config
from web.app import create_app
from web.console_session import COOKIE
from web.server import HttpService
from web.services import WebDeps
from web.tokens import PREFIX


class _BrokenViews:
    def health(self) -> dict[str, Any]:
        raise RuntimeError("the health check broke")


class _SickViews:
    def health(self) -> dict[str, Any]:
        problem = {"check": "quarantine", "reason": "1 message in quarantine"}
        return {"healthy": False, "problems": [problem], "quarantined": 1}


def _deps(views: object | None = None, config: Config | None = None) -> WebDeps:
    unused: Any = None  # the database and the clock too: a request that needs them fails
    configured: Any = (lambda: config) if config else None
    return WebDeps(
        unused,
        unused,
        unused,
        cast(Any, views or _BrokenViews()),
        configured,
        unused,
        unused,
        unused,
    )


class Served:
    """The API of `_deps(views, config)` served by web/server.py in a thread of its own, with
    the routes `more` adds."""

    def __init__(
        self,
        views: object | None = None,
        config: Config | None = None,
        more: Callable[[FastAPI], None] | None = None,
    ) -> None:
        listen = HostPort("127.0.0.1", free_port())
        self.base = f"http://{listen.host}:{listen.port}"
        self.service = HttpService(_deps(views, config), listen)
        app = self.service.server.config.app
        if more is not None and isinstance(app, FastAPI):
            more(app)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_until_complete, args=(self.service.serve(),)
        )
        self.thread.start()

    def stop(self) -> None:
        """Stopped, and so done with every request (and its logging)."""
        if self.thread.is_alive():
            self.service.stop()
            self.thread.join(10)
            self.loop.close()


@pytest.fixture
def served() -> Iterator[Served]:
    server = Served()
    yield server
    server.stop()


def test_a_failed_request_is_one_json_500_and_one_traceback(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    answer = requests.get(served.base + "/healthz", timeout=30)
    assert answer.status_code == 500
    assert answer.json() == {"error": "internal error (RuntimeError); the daemon's log has it"}
    served.stop()  # uvicorn logs a re-raised error after the response went out
    logged = [r for r in caplog.records if r.exc_info is not None]
    assert [r.getMessage() for r in logged] == ["GET /healthz failed"]


def desk_config(folder: Path) -> Config:
    """A desk in Turkish (no nameserver is asked: nothing here resolves)."""
    return load_config(write_config(folder, extra='[dns]\nnameservers = ["192.0.2.1"]\n'))


def _slow_down(app: FastAPI) -> None:
    @app.get("/api/v1/busy")
    def busy() -> None:
        raise HTTPException(503, "busy", headers={"Retry-After": "30"})


def test_an_error_keeps_the_headers_its_exception_carries(tmp_path: Path) -> None:
    server = Served(config=desk_config(tmp_path), more=_slow_down)
    try:
        answers = {
            (method, path): requests.request(method, server.base + path, timeout=30)
            for method, path in (
                ("DELETE", "/api/v1/tickets"),
                ("POST", "/healthz"),
                ("GET", "/api/v1/tickets"),
                ("GET", "/api/v1/busy"),
                ("PUT", "/console/link"),
            )
        }
    finally:
        server.stop()
    # RFC 9110 15.5.6: a 405 names the methods the path takes (every route of it, not one).
    listing = answers["DELETE", "/api/v1/tickets"]
    assert listing.status_code == 405 and listing.headers["Allow"] == "GET, HEAD, POST"
    assert listing.json() == {"error": "Method Not Allowed"}
    assert answers["POST", "/healthz"].headers["Allow"] == "GET, HEAD"
    no_token = answers["GET", "/api/v1/tickets"]
    assert no_token.status_code == 401 and no_token.headers["WWW-Authenticate"] == "Bearer"
    busy = answers["GET", "/api/v1/busy"]
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "30"
    assert busy.json() == {"error": "busy"}
    link = answers["PUT", "/console/link"]  # the console's page, with the header all the same
    assert link.status_code == 405 and link.headers["Allow"] == "GET, HEAD, POST"
    assert link.headers["content-type"].startswith("text/html"), link.text


def test_a_console_request_that_fails_is_an_html_500_that_tells_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    server = Served(config=desk_config(tmp_path))
    try:  # a session cookie: the console asks the database, which this desk has none of
        failed = requests.get(server.base + "/", cookies={COOKIE: PREFIX + "x"}, timeout=30)
        english = requests.get(
            server.base + "/?lang=en", cookies={COOKIE: PREFIX + "x"}, timeout=30
        )
    finally:
        server.stop()
    assert failed.status_code == 500
    assert failed.headers["content-type"].startswith("text/html"), failed.text
    assert "Bir sorun oluştu" in failed.text  # the desk's language
    assert "Something went wrong" in english.text
    assert failed.headers["Cache-Control"] == "no-store"
    assert "default-src 'none'" in failed.headers["Content-Security-Policy"]
    for answer in (failed, english):
        assert "Error" not in answer.text and "Traceback" not in answer.text, answer.text
    logged = [r for r in caplog.records if r.exc_info is not None]
    assert [r.getMessage() for r in logged] == ["GET / failed"] * 2


def test_an_unhealthy_desk_is_a_503_that_openapi_documents() -> None:
    server = Served(_SickViews())
    try:
        answer = requests.get(server.base + "/healthz", timeout=30)
    finally:
        server.stop()
    assert answer.status_code == 503
    assert answer.json() == _SickViews().health()
    responses = create_app(_deps()).openapi()["paths"]["/healthz"]["get"]["responses"]
    health = {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}
    assert responses["200"]["content"] == responses["503"]["content"] == health
    assert "problems" in responses["503"]["description"]


def test_openapi_names_the_errors_the_api_answers_with_one_error_schema() -> None:
    spec = create_app(_deps()).openapi()
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    assert spec["components"]["schemas"]["Error"]["properties"].keys() == {"error"}
    assert "HTTPValidationError" not in spec["components"]["schemas"]  # never answered
    wanted = {
        ("post", "/api/v1/tickets/{ref}/replies"): {"401", "403", "404", "409", "422"},
        ("post", "/api/v1/tickets/{ref}/notes"): {"401", "403", "404", "409", "422"},
        ("patch", "/api/v1/tickets/{ref}"): {"400", "401", "404", "422"},
        ("get", "/api/v1/tickets/{ref}/attachments/{attachment_id}"): {"401", "404", "410"},
        ("get", "/api/v1/tickets"): {"401", "422"},
    }
    for (method, path), statuses in wanted.items():
        responses = spec["paths"][path][method]["responses"]
        for status in statuses:
            assert responses[status]["content"] == error, (method, path, status)
    created = spec["paths"]["/api/v1/tickets"]["post"]["responses"]
    assert created["202"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Pending"
    }
    assert "priority" in spec["paths"]["/api/v1/tickets/{ref}"]["patch"]["summary"]


def test_a_ticket_assigned_under_another_spelling_is_the_agents() -> None:
    mert = AgentConfig("mert@destek.example.com", "Mert Demir", ("genel",))
    assert may_act(mert, Ticket(assignee="MERT@Destek.Example.com", queue="odeme"))
    assert not may_act(mert, Ticket(assignee="ayse@destek.example.com", queue="odeme"))
