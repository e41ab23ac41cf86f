"""Prometheus metrics: counters for what this process did, gauges read from the database.

States (how many messages wait, how old the oldest is, what the outbox holds) are computed from
the database at scrape time by `DatabaseCollector`, so every daemon sharing a database reports
the same numbers and a restart loses nothing. Events (received, processed, ignored, delivered,
latency) are counters and a histogram of this process; Prometheus' `rate()` copes with restarts.

Hooks for later work are registered but left empty until that work feeds them, so a dashboard
never shows a made-up value: `imap_account_up`/`imap_last_poll` (IMAP intake) and `sla_breaches`
(the SLA clock).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from storage.db import Database
from storage.models import (
    JOURNAL_DONE,
    JOURNAL_IGNORED,
    JOURNAL_PENDING,
    JOURNAL_QUARANTINED,
    OUTBOX_FAILED,
    OUTBOX_QUEUED,
    OUTBOX_SENT,
    OUTBOX_SUPPRESSED,
    JournalEntry,
    OutboxMail,
)
from ticketd.clock import Clock
from ticketd.config import HostPort

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from ingest.worker import Processed
    from outbound.sender import DeliveryResult

log = logging.getLogger("ticketd.metrics")

# Fixed label sets keep the number of series small whatever arrives; anything else is "other".
SOURCES = ("smtp", "imap", "ingest", "import")
IGNORE_REASONS = ("bounce", "auto-reply", "list", "loop", "duplicate", "blocked")
DELIVERY_RESULTS = ("sent", "retry", "failed")
JOURNAL_STATES = (JOURNAL_PENDING, JOURNAL_DONE, JOURNAL_IGNORED, JOURNAL_QUARANTINED)
OUTBOX_STATES = (OUTBOX_QUEUED, OUTBOX_SENT, OUTBOX_FAILED, OUTBOX_SUPPRESSED)
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


class Metrics:
    """Every metric of a daemon, in a registry of its own (tests may run several)."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
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
        self.deliveries = Counter(
            "ticketd_deliveries", "Delivery attempts by result", ["result"], registry=r
        )
        self.delivery_latency = Histogram(
            "ticketd_delivery_latency_seconds",
            "From queued in the outbox to accepted by the relay or the Maildir",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        # Hooks for IMAP intake: set by the poller per account; empty until it exists.
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
        # Hook for the SLA clock: incremented when it records a missed service level.
        self.sla_breaches = Counter(
            "ticketd_sla_breaches", "Service levels missed", ["kind"], registry=r
        )
        # Series for the fixed label sets exist from the start, so rate() works from zero.
        for source in SOURCES:
            self.received.labels(source)
        for reason in (*IGNORE_REASONS, "other"):
            self.ignored.labels(reason)
        for result in DELIVERY_RESULTS:
            self.deliveries.labels(result)
        r.register(DatabaseCollector(db, clock))
        self.server: WSGIServer | None = None

    def message_received(self, source: str) -> None:
        self.received.labels(source_label(source)).inc()

    def message_processed(self, result: Processed) -> None:
        if result.state == JOURNAL_DONE:
            self.processed.inc()
        elif result.state == JOURNAL_IGNORED:
            self.ignored.labels(ignore_label(result.detail)).inc()
        elif result.state == JOURNAL_QUARANTINED:
            self.quarantined.inc()

    def delivery(self, result: DeliveryResult) -> None:
        if result.state == OUTBOX_SENT:
            self.deliveries.labels("sent").inc()
            if result.queued_seconds is not None:
                self.delivery_latency.observe(max(result.queued_seconds, 0.0))
        elif result.state == OUTBOX_FAILED:
            self.deliveries.labels("failed").inc()
        else:
            self.deliveries.labels("retry").inc()

    def serve(self, listen: HostPort) -> None:
        """HTTP on `listen` (GET /metrics), in a thread of its own."""
        if not _is_loopback(listen.host):
            log.warning(
                "metrics.listen %s is not a loopback address: anyone who reaches it sees the "
                "desk's volumes; put it behind a firewall or a proxy",
                listen,
            )
        self.server, _thread = start_http_server(listen.port, listen.host, registry=self.registry)
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
