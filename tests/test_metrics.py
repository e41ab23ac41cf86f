"""Metrics fed by IMAP intake and the SLA clock, and the token check of `ticketd health`.

Read in-process from the metrics registry: the HTTP side is covered by test_service.py.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from domain.clock import FixedClock
from domain.config import ImapAccountConfig
from outbound.sla import tick
from tests.dovecot import Dovecot
from tests.helpers import customer_mail
from tests.test_imap import account_for, journal_rows, running, wait_for
from tests.test_sla import LEAD, desk, open_ticket  # noqa: F401  (desk is a fixture)
from ticketd.health import check
from ticketd.metrics import Metrics
from ticketd.state import State


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_imap_account_metrics_move_with_polls_and_failures(
    dovecot: Dovecot, state: State, clock: FixedClock
) -> None:
    metrics = Metrics(state.db, clock)
    dovecot.add_user("satis", "right")
    good = account_for(dovecot, poll_interval=1)
    bad = replace(account_for(dovecot, user="satis"), name="satis")
    (dovecot.folder / "satis.pass").write_text("wrong\n")
    assert value(metrics, "ticketd_imap_account_up", account="destek") is None  # never polled

    dovecot.deliver("destek", customer_mail(subject="counted"))
    with (
        running(state, good, metrics=metrics),
        running(state, bad, metrics=metrics, backoff_max=0.2) as broken,
    ):
        wait_for(lambda: journal_rows(state), what="the message from IMAP")
        wait_for(
            lambda: value(metrics, "ticketd_imap_messages_fetched_total", account="destek"),
            what="the fetched counter",
        )
        wait_for(lambda: broken.backoff.failures >= 1, timeout=30, what="the bad login")

    assert value(metrics, "ticketd_imap_account_up", account="destek") == 1
    assert value(metrics, "ticketd_imap_messages_fetched_total", account="destek") == 1
    assert value(metrics, "ticketd_messages_received_total", source="imap") == 1
    assert (
        value(metrics, "ticketd_imap_last_success_timestamp_seconds", account="destek")
        == clock.now().timestamp()
    )
    assert value(metrics, "ticketd_imap_account_up", account="satis") == 0
    assert value(metrics, "ticketd_imap_last_success_timestamp_seconds", account="satis") is None


def test_sla_gauges_show_a_breached_ticket_once_the_clock_passes_the_deadline(
    desk: State,  # noqa: F811  (the fixture imported above)
    clock: FixedClock,
) -> None:
    metrics = Metrics(desk.db, clock, lambda: desk.config)
    opened = clock.now()
    open_ticket(desk)  # first answer due in 48 h, reminder at 75 % (test_sla's TEAM)
    assert value(metrics, "ticketd_sla_tickets_breached", queue="odeme") == 0
    assert value(metrics, "ticketd_sla_tickets_at_risk", queue="odeme") == 0

    clock.current = opened + timedelta(hours=36)
    metrics.sla_settled(tick(desk.db, desk.config, clock, desk.templates))
    assert value(metrics, "ticketd_sla_tickets_at_risk", queue="odeme") == 1
    assert value(metrics, "ticketd_sla_mails_total", kind="reminder") == 1

    clock.current = opened + timedelta(hours=48, minutes=1)
    assert value(metrics, "ticketd_sla_tickets_breached", queue="odeme") == 1
    assert value(metrics, "ticketd_sla_tickets_at_risk", queue="odeme") == 0
    actions = tick(desk.db, desk.config, clock, desk.templates)
    assert [(a.kind, a.recipients) for a in actions] == [("escalation", (LEAD,))]
    metrics.sla_settled(actions)
    assert value(metrics, "ticketd_sla_mails_total", kind="escalation") == 1
    assert value(metrics, "ticketd_sla_breaches_total", target="first_answer") == 1


def test_health_names_an_imap_token_file_about_to_expire(
    state: State, clock: FixedClock, tmp_path: Path
) -> None:
    token_file = tmp_path / "token.json"
    account = ImapAccountConfig(
        name="m365",
        host="127.0.0.1",
        port=993,
        security="tls",
        username="destek",
        auth="xoauth2",
        token_file=token_file,
    )

    def write(expires_in: timedelta) -> None:
        expires_at = (clock.now() + expires_in).isoformat()
        token_file.write_text(json.dumps({"access_token": "t0k3n", "expires_at": expires_at}))

    write(timedelta(minutes=50))
    assert check(state.db, clock, accounts=[account]).healthy
    write(timedelta(minutes=3))  # the refreshing tool stopped: the daemon is logged out soon
    report = check(state.db, clock, accounts=[account])
    assert [p.check for p in report.problems] == ["imap_token"]
    assert "m365" in report.problems[0].reason and "in 3 min" in report.problems[0].reason
    assert "t0k3n" not in report.problems[0].reason  # never the token itself
    token_file.unlink()
    report = check(state.db, clock, accounts=[account])
    assert "m365: no usable token" in report.problems[0].reason
