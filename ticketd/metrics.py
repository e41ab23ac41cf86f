"""Prometheus metrics: counters for what this process did, gauges read from the database.

States (how many messages wait, how old the oldest is, what the outbox holds) are computed from
the database at scrape time by `DatabaseCollector`, so every daemon sharing a database reports
the same numbers and a restart loses nothing. Events (received, processed, ignored, delivered,
latency) are counters and a histogram of this process; Prometheus' `rate()` copes with restarts.

The SLA gauges (tickets at risk and breached per queue) come from `outbound.sla.report` at
scrape time, so they match `ticketd sla report`. IMAP account series appear only once an account
loop of this process reports (a labelled gauge has no series until set), so a dashboard never
shows a made-up value for an account that was never polled.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from domain.clock import Clock
from domain.config import Config, ConfigError, HostPort
from storage.db import Database
from storage.models import (
    JOURNAL_DISMISSED,
    JOURNAL_DONE,
    JOURNAL_IGNORED,
    JOURNAL_PENDING,
    JOURNAL_QUARANTINED,
    OUTBOX_FAILED,
    OUTBOX_QUEUED,
    OUTBOX_SENT,
    OUTBOX_SUPPRESSED,
    SLA_AUTO_CLOSE,
    SLA_ESCALATION,
    SLA_FOLLOWUP,
    SLA_PENDING_REMINDER,
    SLA_REMINDER,
    JournalEntry,
    OutboxMail,
)

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from ingest.worker import Processed
    from outbound.sender import DeliveryResult
    from outbound.sla import SlaAction

log = logging.getLogger("ticketd.metrics")

# Fixed label sets keep the number of series small whatever arrives; anything else is "other".
SOURCES = ("smtp", "imap", "ingest", "import")
IGNORE_REASONS = ("bounce", "auto-reply", "list", "bulk", "loop", "duplicate", "blocked")
DELIVERY_RESULTS = ("sent", "retry", "failed")
JOURNAL_STATES = (
    JOURNAL_PENDING,
    JOURNAL_DONE,
    JOURNAL_IGNORED,
    JOURNAL_QUARANTINED,
    JOURNAL_DISMISSED,
)
OUTBOX_STATES = (OUTBOX_QUEUED, OUTBOX_SENT, OUTBOX_FAILED, OUTBOX_SUPPRESSED)
SLA_KINDS = (SLA_REMINDER, SLA_ESCALATION, SLA_FOLLOWUP, SLA_PENDING_REMINDER, SLA_AUTO_CLOSE)
SLA_TARGETS = ("first_answer", "next_answer", "resolution")
# Delivery latency runs from seconds (relay up) to hours (retries with backoff).
LATENCY_BUCKETS = (0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)


def source_label(source: str) -> str:
    """ "smtp:192.0.2.1" -> "smtp": the peer address would make one series per client."""
    kind = source.partition(":")[0]
    return kind if kind in SOURCES else "other"


def ignore_label(detail: str) -> str:
    """The worker records an ignored message as "REASON: detail"; keep only a known REASON."""
    reason = detail.partition(":")[0].strip().lower()
    return reason if reason in IGNORE_REASONS else "other"


class DatabaseCollector(Collector):
    """Gauges computed at scrape time from the journal and the outbox."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("ticketd_database_up", "1 when the last scrape read the database")
        try:
            families = list(self._read())
        except Exception as error:  # a scrape must answer even when the database is gone
            log.warning("metrics: cannot read the database: %s", error)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _read(self) -> Iterator[GaugeMetricFamily]:
        now = self.clock.now()
        with self.db.read() as session:
            journal = dict(
                session.execute(
                    select(JournalEntry.state, func.count(JournalEntry.id)).group_by(
                        JournalEntry.state
                    )
                ).all()
            )
            oldest_pending = session.scalar(
                select(func.min(JournalEntry.received_at)).where(
                    JournalEntry.state == JOURNAL_PENDING
                )
            )
            outbox = dict(
                session.execute(
                    select(OutboxMail.state, func.count(OutboxMail.id)).group_by(OutboxMail.state)
                ).all()
            )
            oldest_queued = session.scalar(
                select(func.min(OutboxMail.created_at)).where(OutboxMail.state == OUTBOX_QUEUED)
            )
        states = GaugeMetricFamily(
            "ticketd_journal_messages", "Received messages by state", labels=["state"]
        )
        for state in JOURNAL_STATES:
            states.add_metric([state], int(journal.get(state, 0)))
        yield states
        yield GaugeMetricFamily(
            "ticketd_journal_oldest_pending_age_seconds",
            "Age of the oldest message not processed yet (0 when none waits)",
            value=(now - oldest_pending).total_seconds() if oldest_pending else 0.0,
        )
        mails = GaugeMetricFamily(
            "ticketd_outbox_messages", "Outgoing mail by state", labels=["state"]
        )
        for state in OUTBOX_STATES:
            mails.add_metric([state], int(outbox.get(state, 0)))
        yield mails
        yield GaugeMetricFamily(
            "ticketd_outbox_oldest_queued_age_seconds",
            "Age of the oldest mail still waiting to be delivered (0 when none waits)",
            value=(now - oldest_queued).total_seconds() if oldest_queued else 0.0,
        )


class SlaCollector(Collector):
    """Tickets at risk and breached per queue, as `ticketd sla report` counts them."""

    def __init__(self, db: Database, clock: Clock, config: Callable[[], Config]) -> None:
        self.db = db
        self.clock = clock
        self.config = config  # a getter: a SIGHUP may replace the configuration

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from outbound.sla import report  # outbound imports much; only a scrape needs it

        try:
            rows = report(self.db, self.config(), self.clock)
        except Exception as error:  # ticketd_database_up already says why; answer the rest
            log.warning("metrics: cannot read the SLA state: %s", error)
            return
        at_risk = GaugeMetricFamily(
            "ticketd_sla_tickets_at_risk",
            "Running tickets past a reminder point, their deadline not passed yet",
            labels=["queue"],
        )
        breached = GaugeMetricFamily(
            "ticketd_sla_tickets_breached",
            "Running tickets whose nearest deadline has passed",
            labels=["queue"],
        )
        for row in rows:
            at_risk.add_metric([row["queue"]], len(row["at_risk"]))
            breached.add_metric([row["queue"]], len(row["breached"]))
        yield at_risk
        yield breached


class Metrics:
    """Every metric of a daemon, in a registry of its own (tests may run several)."""

    def __init__(
        self, db: Database, clock: Clock, config: Callable[[], Config] | None = None
    ) -> None:
        self.registry = CollectorRegistry()
        self._declare_messages(self.registry)
        self._declare_delivery_and_accounts(self.registry)
        self._declare_sla(self.registry)
        self._start_series()
        self.registry.register(DatabaseCollector(db, clock))
        if config is not None:
            self.registry.register(SlaCollector(db, clock, config))
        self.server: WSGIServer | None = None

    def _declare_messages(self, r: CollectorRegistry) -> None:
        self.received = Counter(
            "ticketd_messages_received", "Messages journaled", ["source"], registry=r
        )
        self.processed = Counter(
            "ticketd_messages_processed", "Messages that became part of a ticket", registry=r
        )
        self.ignored = Counter(
            "ticketd_messages_ignored", "Messages recorded without a ticket", ["reason"], registry=r
        )
        self.quarantined = Counter(
            "ticketd_messages_quarantined", "Messages that could not be processed", registry=r
        )
        self.unanswered = Counter(
            "ticketd_messages_unanswered",
            "Messages that landed on a ticket from a sender nothing automatic answers",
            ["reason"],
            registry=r,
        )

    def _declare_delivery_and_accounts(self, r: CollectorRegistry) -> None:
        self.deliveries = Counter(
            "ticketd_deliveries", "Delivery attempts by result", ["result"], registry=r
        )
        self.delivery_latency = Histogram(
            "ticketd_delivery_latency_seconds",
            "From queued in the outbox to accepted by the relay or the Maildir",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        # Set by each account loop (ingest/imap_accounts.py) after every poll.
        self.imap_account_up = Gauge(
            "ticketd_imap_account_up",
            "1 when the last poll of the IMAP account succeeded",
            ["account"],
            registry=r,
        )
        self.imap_last_poll = Gauge(
            "ticketd_imap_last_success_timestamp_seconds",
            "When the IMAP account was last polled successfully",
            ["account"],
            registry=r,
        )
        self.imap_fetched = Counter(
            "ticketd_imap_messages_fetched",
            "New messages journaled from the IMAP account",
            ["account"],
            registry=r,
        )
        # Set by the worker loop (ticketd/daemon.py): 0 while messages wait for an unreachable
        # clamd, 1 once they go through again. No series before clamd was first missed.
        self.scanner_up = Gauge(
            "ticketd_virus_scanner_up",
            "0 while the configured clamd cannot be reached and messages wait for it",
            ["clamd"],
            registry=r,
        )

    def _declare_sla(self, r: CollectorRegistry) -> None:
        # Fed by the SLA tick (ticketd/sla_service.py) from what it settled.
        self.sla_breaches = Counter(
            "ticketd_sla_breaches",
            "Missed deadlines escalated, by SLA target",
            ["target"],
            registry=r,
        )
        self.sla_mails = Counter(
            "ticketd_sla_mails", "SLA mails queued, one per recipient", ["kind"], registry=r
        )

    def _start_series(self) -> None:
        # Series for the fixed label sets exist from the start, so rate() works from zero.
        for source in SOURCES:
            self.received.labels(source)
        for reason in (*IGNORE_REASONS, "other"):
            self.ignored.labels(reason)
        for result in DELIVERY_RESULTS:
            self.deliveries.labels(result)
        for kind in (*SLA_KINDS, "other"):
            self.sla_mails.labels(kind)
        for target in SLA_TARGETS:
            self.sla_breaches.labels(target)

    def message_received(self, source: str) -> None:
        self.received.labels(source_label(source)).inc()

    def message_processed(self, result: Processed) -> None:
        if result.state == JOURNAL_DONE:
            self.processed.inc()
        elif result.state == JOURNAL_IGNORED:
            self.ignored.labels(ignore_label(result.detail)).inc()
        elif result.state == JOURNAL_QUARANTINED:
            self.quarantined.inc()
        if result.untrusted is not None:  # dmarc, refuted, spam
            self.unanswered.labels(result.untrusted).inc()

    def scanner_reachable(self, clamd: str, up: bool) -> None:
        self.scanner_up.labels(clamd).set(1 if up else 0)

    def delivery(self, result: DeliveryResult) -> None:
        if result.state == OUTBOX_SENT:
            self.deliveries.labels("sent").inc()
            if result.queued_seconds is not None:
                self.delivery_latency.observe(max(result.queued_seconds, 0.0))
        elif result.state == OUTBOX_FAILED:
            self.deliveries.labels("failed").inc()
        else:
            self.deliveries.labels("retry").inc()

    def imap_polled(self, account: str, journaled: int, at: datetime) -> None:
        """One sync of the account's folder went through."""
        self.imap_account_up.labels(account).set(1)
        self.imap_last_poll.labels(account).set(at.timestamp())
        self.imap_fetched.labels(account).inc(journaled)
        self.received.labels("imap").inc(journaled)

    def imap_failed(self, account: str) -> None:
        self.imap_account_up.labels(account).set(0)

    def sla_settled(self, actions: list[SlaAction]) -> None:
        for action in actions:
            # A kind added later (the survey, the digest) counts as "other" until listed.
            kind = action.kind if action.kind in SLA_KINDS else "other"
            self.sla_mails.labels(kind).inc(len(action.recipients))
            # An escalation is a missed deadline unless the tick found the deadline gone
            # (answered, paused, closed); "nobody to tell" is still a breach.
            if (
                action.kind == SLA_ESCALATION
                and action.target in SLA_TARGETS
                and "no longer runs" not in action.outcome
            ):
                self.sla_breaches.labels(action.target).inc()

    def serve(self, listen: HostPort) -> None:
        """HTTP on `listen` (GET /metrics), in a thread of its own."""
        if not _is_loopback(listen.host):
            log.warning(
                "metrics.listen %s is not a loopback address: anyone who reaches it sees the "
                "desk's volumes; put it behind a firewall or a proxy",
                listen,
            )
        try:
            self.server, _thread = start_http_server(
                listen.port, listen.host, registry=self.registry
            )
        except OSError as error:
            reason = f"cannot listen on {listen}: {error.strerror or error}"
            raise ConfigError([("metrics.listen", reason)]) from error
        log.info("metrics at http://%s/metrics", listen)

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
