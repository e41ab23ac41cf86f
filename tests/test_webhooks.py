"""Webhooks (issue 20) in process, on SQLite on disk, with a FixedClock and a real HTTP
receiver on loopback that checks every signature.

Each event is written in the transaction of its change (a rolled-back change writes none), is
posted with the Standard Webhooks headers, retried on the published schedule while the receiver
is down or failing, and is seen by the receiver once. The daemon and the PostgreSQL cluster are
in tests/test_webhooks_daemon.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from domain.clock import FixedClock
from domain.config import ConfigError, load_config
from outbound.addresses import agent_reply_address
from outbound.sender import Sender
from outbound.sla import tick
from outbound.transports import MaildirTransport
from outbound.webhooks import LEASE, RETRY_DELAYS, WebhookResult, WebhookSender, sign
from storage.models import WEBHOOK_DELIVERED, WEBHOOK_FAILED, WEBHOOK_QUEUED, WebhookDelivery
from tests.helpers import customer_mail, write_config
from tests.test_kyc import KYC_AGENT, _agent_mail, _send_documents
from tests.test_kyc import TEAM as KYC_TEAM
from tests.test_sla import TEAM, agent_mail
from tests.test_threading import deliver
from tests.webhook_receiver import SECRET, Receiver
from ticketd.cli import main
from ticketd.erasure import erase_customer
from ticketd.retention import run_retention
from ticketd.state import State, open_state

ALL_EVENTS = (
    '["ticket.created", "message.received", "message.sent", "ticket.updated", '
    '"kyc.document_received", "kyc.decided", "sla.breached"]'
)


def hooks(url: str, events: str = ALL_EVENTS) -> str:
    return f'\n[[webhooks]]\nurl = "{url}"\nsecret = "{SECRET}"\nevents = {events}\n'


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    endpoint = Receiver()
    yield endpoint
    endpoint.stop()


def desk(tmp_path: Path, clock: FixedClock, extra: str) -> State:
    return open_state(load_config(write_config(tmp_path, extra=extra)), clock=clock)


def webhook_sender(state: State) -> WebhookSender:
    return WebhookSender(
        state.db, state.clock, lambda: {h.url: h.secret for h in state.config.webhooks}
    )


def post_due(state: State) -> list[WebhookResult]:
    return asyncio.run(webhook_sender(state).send_due())


def deliveries(state: State) -> list[WebhookDelivery]:
    with state.db.read() as session:
        rows = list(session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))
        session.expunge_all()
        return rows


def test_the_standard_webhooks_test_vector() -> None:
    # Published with the specification: what every receiver's library computes.
    signature = sign(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        b'{"test": 2432232314}',
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_a_tickets_life_is_one_signed_event_per_change(
    tmp_path: Path, clock: FixedClock, receiver: Receiver
) -> None:
    state = desk(tmp_path, clock, TEAM + hooks(receiver.url))
    receiver.start()
    try:
        result = deliver(state, customer_mail(sender="Can Demir <can@musteri.com.tr>"))
        ref = result.detail.split()[1].rstrip(":")
        # Created and routed in one transaction: one ticket.created with its queue, no update.
        assert [d.event for d in deliveries(state)] == ["ticket.created", "message.received"]
        mail = Sender(state.db, MaildirTransport(tmp_path / "sent"), clock)
        asyncio.run(mail.send_due())  # the acknowledgement and the agents' notification
        clock.advance(timedelta(hours=48, minutes=1))
        tick(state.db, state.config, clock, state.templates, dry_run=True)  # rolled back
        assert len(deliveries(state)) == 3, "a rehearsal wrote an event"
        tick(state.db, state.config, clock, state.templates)
        agent_mail(state, ref, "#pending\n\nDekontu gönderir misiniz?")
        asyncio.run(mail.send_due())
        posted = post_due(state)
    finally:
        state.close()
    assert {r.state for r in posted} == {WEBHOOK_DELIVERED}
    got = receiver.events()
    assert [e.type for e in got] == [
        "ticket.created",
        "message.received",
        "message.sent",
        "sla.breached",
        "ticket.updated",
        "message.sent",
    ]
    assert receiver.forged == [] and len({e.webhook_id for e in got}) == len(got)
    created, received, ack, breached, updated, answer = (e.body["data"] for e in got)
    assert created["ticket"]["ref"] == ref and created["ticket"]["queue"] == "odeme"
    assert received["message"]["kind"] == "customer" and "text" not in received["message"]
    assert ack["message"]["kind"] == "auto" and ack["message"]["to"] == ["can@musteri.com.tr"]
    assert breached["sla"]["target"] == "first_answer"
    assert updated["changes"] == {"status": {"from": "open", "to": "pending"}}
    assert answer["message"]["kind"] == "agent"


def test_identity_documents_and_the_decision(
    tmp_path: Path, clock: FixedClock, receiver: Receiver
) -> None:
    events = '["kyc.document_received", "kyc.decided"]'
    state = desk(tmp_path, clock, KYC_TEAM + hooks(receiver.url, events))
    receiver.start()
    try:
        ref = _send_documents(state, clock)
        address = agent_reply_address(state.config.desk, ref)
        deliver(state, _agent_mail(state, ref, KYC_AGENT, "#kyc approve"), (address,))
        post_due(state)
    finally:
        state.close()
    got = receiver.events()
    assert [e.type for e in got] == ["kyc.document_received"] * 2 + ["kyc.decided"]
    assert {e.body["data"]["document"]["filename"] for e in got[:2]} == {
        "kimlik.jpg",
        "fatura.pdf",
    }
    decision = got[2].body["data"]["decision"]
    assert decision["state"] == "approved" and decision["decided_by"] == KYC_AGENT
    assert len(decision["documents"]) == 2


def test_retried_on_the_schedule_while_the_receiver_is_down_then_seen_once(
    tmp_path: Path, clock: FixedClock, receiver: Receiver
) -> None:
    state = desk(tmp_path, clock, hooks(receiver.url, '["ticket.created"]'))
    try:
        deliver(state, customer_mail())
        [down] = post_due(state)  # nothing listens on the port
        assert down.state == WEBHOOK_QUEUED and down.detail.startswith("no answer:")
        assert post_due(state) == []  # not due again before the first delay
        clock.advance(RETRY_DELAYS[0])
        receiver.start()
        receiver.status = 503
        [failing] = post_due(state)
        assert failing.detail == "HTTP 503"
        [row] = deliveries(state)
        assert row.next_attempt_at == clock.now() + RETRY_DELAYS[1] and row.attempts == 2
        clock.advance(RETRY_DELAYS[1])
        receiver.status = 200
        [delivered] = post_due(state)
        assert delivered.state == WEBHOOK_DELIVERED
        clock.advance(timedelta(days=3))
        assert post_due(state) == []
    finally:
        state.close()
    [event] = receiver.events()
    assert event.type == "ticket.created"
    assert receiver.answered == [503, 200]


def test_given_up_after_the_last_try_and_listed(
    tmp_path: Path, clock: FixedClock, capsys: pytest.CaptureFixture[str]
) -> None:
    unused = Receiver()  # never started: every try finds the port closed
    config = write_config(tmp_path, extra=hooks(unused.url, '["ticket.created"]'))
    state = open_state(load_config(config), clock=clock)
    try:
        deliver(state, customer_mail())
        tries = [post_due(state)]
        for delay in RETRY_DELAYS:
            clock.advance(delay)
            tries.append(post_due(state))
    finally:
        state.close()
    assert [len(t) for t in tries] == [1] * (len(RETRY_DELAYS) + 1)
    assert [t[0].state for t in tries] == [WEBHOOK_QUEUED] * len(RETRY_DELAYS) + [WEBHOOK_FAILED]
    assert main(["--config", str(config), "webhooks", "list", "--json"]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert listed["state"] == "failed" and listed["attempts"] == len(RETRY_DELAYS) + 1
    assert listed["event"] == "ticket.created" and listed["url"] == unused.url
    assert listed["last_error"].startswith("no answer:") and listed["ticket"]


def test_a_claimed_delivery_is_left_alone_until_its_lease_ends(
    tmp_path: Path, clock: FixedClock, receiver: Receiver
) -> None:
    state = desk(tmp_path, clock, hooks(receiver.url, '["ticket.created"]'))
    receiver.start()
    try:
        deliver(state, customer_mail())
        first, second = webhook_sender(state), webhook_sender(state)
        assert first._claim([receiver.url]) is not None  # then the daemon died mid-POST
        assert asyncio.run(second.send_one()) is None
        clock.advance(LEASE)
        [taken] = asyncio.run(second.send_due())
        assert taken.state == WEBHOOK_DELIVERED
    finally:
        state.close()
    assert len(receiver.events()) == 1


def test_only_the_events_an_endpoint_asked_for(tmp_path: Path, clock: FixedClock) -> None:
    extra = hooks("http://127.0.0.1:9/a", '["ticket.updated"]') + hooks(
        "http://127.0.0.1:9/b", '["ticket.created", "message.received"]'
    )
    state = desk(tmp_path, clock, extra)
    try:
        deliver(state, customer_mail())
        rows = deliveries(state)
    finally:
        state.close()
    assert [(r.event, r.url) for r in rows] == [
        ("ticket.created", "http://127.0.0.1:9/b"),
        ("message.received", "http://127.0.0.1:9/b"),
    ]


GOOD_SECRET = 'secret = "0123456789abcdef"\n'
ONE_EVENT = 'events = ["ticket.created"]\n'


@pytest.mark.parametrize(
    ("table", "key", "reason"),
    [
        ('url = "ftp://x"\n' + GOOD_SECRET + ONE_EVENT, "url", "is not"),
        ('url = "http://x"\nsecret = "short"\n' + ONE_EVENT, "secret", "at least"),
        ('url = "http://x"\n' + GOOD_SECRET + 'events = ["ticket.made"]', "events", "unknown"),
        ('url = "http://x"\n' + GOOD_SECRET + "events = []", "events", "non-empty"),
        ('url = "http://x"\n' + ONE_EVENT, "secret", "either"),
        ('url = "http://x"\nsecret_file = "nope"\n' + ONE_EVENT, "secret_file", "cannot read"),
        ('url = "http://x"\n' + GOOD_SECRET + ONE_EVENT + "secrte = 1", "secrte", "unknown key"),
    ],
)
def test_configuration_errors_name_the_key(
    tmp_path: Path, table: str, key: str, reason: str
) -> None:
    path = write_config(tmp_path, extra=f"[[webhooks]]\n{table}\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert any(k == f"webhooks[0].{key}" and reason in r for k, r in error.value.problems), (
        error.value.problems
    )


def test_a_secret_from_a_file_and_one_url_once(tmp_path: Path) -> None:
    (tmp_path / "hook.secret").write_text(SECRET + "\n")
    one = 'url = "https://crm.example.com/in"\nsecret_file = "hook.secret"\n'
    one += 'events = ["sla.breached"]'
    path = write_config(tmp_path, extra=f"[[webhooks]]\n{one}\n")
    [hook] = load_config(path).webhooks
    assert hook.secret == SECRET and hook.events == ("sla.breached",)
    path.write_text(path.read_text() + f"\n[[webhooks]]\n{one}\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert [k for k, _ in error.value.problems] == ["webhooks[1].url"]


def test_deliveries_go_with_the_customers_erasure_and_after_raw_days(
    tmp_path: Path, clock: FixedClock, receiver: Receiver
) -> None:
    state = desk(tmp_path, clock, hooks(receiver.url, '["ticket.created"]'))
    receiver.start()
    try:
        deliver(state, customer_mail(sender="Ali <ali@musteri.com.tr>"))
        post_due(state)  # delivered: kept until raw_days
        deliver(state, customer_mail(sender="Veli <veli@musteri.com.tr>", subject="Bonus"))
        receiver.stop()
        post_due(state)  # queued: the receiver is down
        clock.advance(timedelta(days=state.config.retention.raw_days + 1))
        assert run_retention(state.db, state.blobs, state.config, clock.now()).webhooks == 1
        assert [d.body.count("veli@musteri.com.tr") for d in deliveries(state)] == [1]
        erased = erase_customer(
            state.db, state.config, state.blobs, clock.now(), "veli@musteri.com.tr"
        )
        assert erased.webhooks == 1 and deliveries(state) == []
    finally:
        state.close()
