"""Requests with one `Idempotency-Key` sent at the same moment (a client's retry racing its first
try, two workers of a CRM), against the daemon as a process over a real socket: one of them
acts; the others get its answer (the same text) or the 422 of another text, never a second
ticket, answer or note. The same on PostgreSQL: tests/test_api_postgresql.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.daemon import Relay
from tests.test_agents import mails_to, wait_for_mail
from tests.web import PAYMENT_AGENT, ApiDesk

pytestmark = pytest.mark.slow
TRIES = 4
CUSTOMER, OTHER = "deniz@musteri.example", "ece@musteri.example"


def at_once(count: int, request: Callable[[int], Any]) -> list[Any]:
    """`request(0)` to `request(count - 1)`, each in a thread of its own, let go together."""
    start = threading.Barrier(count)
    answers: list[Any] = [None] * count

    def run(number: int) -> None:
        start.wait()
        answers[number] = request(number)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return answers


def statuses(answers: list[Any]) -> list[int]:
    return sorted(answer.status_code for answer in answers)


def one_key_at_once_acts_once(desk: ApiDesk, relay: Relay) -> None:
    token = desk.token("--agent", PAYMENT_AGENT)

    def post(path: str, key: str, body: dict[str, str]) -> Any:
        return desk.call("POST", path, token, json=body, headers={"Idempotency-Key": key})

    # A new ticket: the same body from every thread is one ticket, each told its reference.
    chat = {"customer": CUSTOMER, "subject": "Para çekme", "text": "Çekimim onaylanmadı."}
    same = at_once(TRIES, lambda _: post("/api/v1/tickets", "chat-1", chat))
    assert statuses(same) == [201] * TRIES, [a.text for a in same]
    [ref] = {answer.json()["ref"] for answer in same}
    # Other bodies under one key: one ticket, the others refused.
    bodies = [{**chat, "customer": OTHER, "subject": f"Bonus {n}"} for n in range(TRIES)]
    other = at_once(TRIES, lambda n: post("/api/v1/tickets", "chat-2", bodies[n]))
    assert statuses(other) == [201] + [422] * (TRIES - 1), [a.text for a in other]
    for customer in (CUSTOMER, OTHER):
        made = desk.daemon.cli("tickets", "list", "--json", "--customer", customer)
        assert len(made) == 1, made

    # Answers: the same text from every thread is one answer; other texts are refused.
    replies = f"/api/v1/tickets/{ref}/replies"
    answered = at_once(TRIES, lambda _: post(replies, "crm-1", {"text": "Bugün geçecek."}))
    assert statuses(answered) == [201] * TRIES, [a.text for a in answered]
    texts = at_once(TRIES, lambda n: post(replies, "crm-2", {"text": f"Yanıt {n}"}))
    assert statuses(texts) == [201] + [422] * (TRIES - 1), [a.text for a in texts]
    # Notes: two threads with the text that wins, two with another.
    notes = f"/api/v1/tickets/{ref}/notes"
    noted = at_once(TRIES, lambda n: post(notes, "crm-3", {"text": f"Not {n % 2}"}))
    assert statuses(noted) == [201, 201, 422, 422], [a.text for a in noted]
    history = desk.daemon.cli("tickets", "show", ref, "--json")["messages"]
    answers = [m["text"].strip() for m in history if m["kind"] == "agent"]
    assert len(answers) == 2 and answers[0] == "Bugün geçecek.", answers
    assert len([m for m in history if m["kind"] == "note"]) == 1, history
    wait_for_mail(relay, CUSTOMER, 3, "(the acknowledgement and the two answers)")
    time.sleep(1)
    assert len(mails_to(relay, CUSTOMER)) == 3


def test_one_idempotency_key_at_once_acts_once(api_desk: ApiDesk, relay: Relay) -> None:
    one_key_at_once_acts_once(api_desk, relay)
