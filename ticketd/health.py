"""`ticketd health`: does something need a person? For monitoring (Nagios, a cron, a probe).

Every check reads the database only, so it answers the same whichever daemon (or none) runs, and
it judges states that last, not events: a journal that does not move, messages in quarantine, an
outbox that does not drain, deliveries that failed recently to more than one address and to a
share of the mail that left (`failed_percent`: one dead mailbox, a customer's typing error, is
the ticket's business, noted there and told to its agents, and only a warning here; mail failing
to many is the way out broken: the relay, our DNS, a blocklist), an XOAUTH2 token file whose token
is about to expire, messages waiting for a virus scanner (clamd) that cannot be reached (the
worker writes that on the pending row; `--connect` also asks clamd for a PONG), an IMAP account
that has been failing for longer than `imap_minutes` (the daemon polling it records its state in
`imap_account_status`, see domain/account_status.py; the newest row of an account is its state, and
accounts no longer configured are passed over). A checkpoint that does not move is not judged: it
only means a quiet mailbox.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from domain.account_status import RELAY_ACCOUNT
from domain.clock import Clock
from domain.config import Config, ImapAccountConfig
from domain.config_kyc import ClamdAddress
from domain.logs import redact
from domain.token_source import REFRESH_MARGIN, TokenError, parse_token
from ingest.virus_scan import WAITING_FOR_SCANNER
from storage.db import Database
from storage.models import (
    JOURNAL_PENDING,
    JOURNAL_QUARANTINED,
    OUTBOX_FAILED,
    OUTBOX_QUEUED,
    OUTBOX_SENT,
    ImapAccountStatus,
    JournalEntry,
    OutboxMail,
)


@dataclass(frozen=True)
class Thresholds:
    # A message pending longer than this means no worker is getting through the journal.
    journal_minutes: int = 15
    # Mail queued longer than this: the relay refuses or is unreachable (retries back off to 1 h).
    outbox_minutes: int = 60
    # Failed deliveries of mail queued within this window still need a look; retries give up
    # after 5 days, so the default window covers them.
    failed_hours: int = 7 * 24
    # Failed deliveries need a person when they are at least this share (percent) of the mail
    # that left in `failed_hours` and went to more than one address; fewer is a warning.
    failed_percent: int = 10
    # An IMAP account failing (login or sync) for longer than this; its loop retries with a
    # backoff of up to 5 min, so a short outage of the server clears on its own.
    imap_minutes: int = 10


@dataclass(frozen=True)
class Problem:
    # stuck_journal, quarantine, outbox_stuck, failed_deliveries, imap_token, imap_account,
    # relay_login, virus_scanner, database
    check: str
    reason: str


@dataclass(frozen=True)
class Report:
    problems: tuple[Problem, ...]
    facts: dict[str, Any]
    # What a person may want to look at but that does not fail health (exit 0 all the same).
    warnings: tuple[Problem, ...] = ()

    @property
    def healthy(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "problems": [asdict(p) for p in self.problems],
            "warnings": [asdict(p) for p in self.warnings],
            **self.facts,
        }


def _age_minutes(now: datetime, then: datetime | None) -> float | None:
    return None if then is None else max((now - then).total_seconds() / 60, 0.0)


@dataclass(frozen=True)
class _Counts:
    """What the checks read from the database, in one read transaction."""

    pending: int
    oldest_pending: datetime | None
    waiting_reason: str | None  # the scanner the oldest unscanned message waits for
    statuses: list[ImapAccountStatus]
    quarantined: int
    queued: int
    oldest_queued: datetime | None
    failed: int  # deliveries failed within limits.failed_hours
    failed_addresses: int  # the different addresses they were for
    left: int  # mail sent or failed within limits.failed_hours


def check(
    db: Database,
    clock: Clock,
    limits: Thresholds | None = None,
    accounts: Sequence[ImapAccountConfig] = (),
    relay_login: bool = False,
) -> Report:
    """`relay_login`: the relay takes XOAUTH2, whose login state the sender records."""
    limits = limits or Thresholds()
    now = clock.now()
    names = [account.name for account in accounts] + ([RELAY_ACCOUNT] if relay_login else [])
    counts = _read_counts(db, now, limits, names)
    journal_age = _age_minutes(now, counts.oldest_pending)
    outbox_age = _age_minutes(now, counts.oldest_queued)
    failed, failing_path = _failed_deliveries(counts, limits)
    problems = [
        *_journal_problems(counts, journal_age, limits),
        *_outbox_problems(counts, outbox_age, limits),
        *([failed] if failed is not None and failing_path else []),
        *token_problems(accounts, now),
    ]
    failing = failing_accounts(counts.statuses, now, limits.imap_minutes)
    problems += failing.values()
    facts = {
        "journal_pending": counts.pending,
        "journal_oldest_pending_minutes": journal_age,
        "quarantined": counts.quarantined,
        "waiting_for_virus_scanner": counts.waiting_reason is not None,
        "outbox_queued": counts.queued,
        "outbox_oldest_queued_minutes": outbox_age,
        "outbox_failed_recently": counts.failed,
        "outbox_left_recently": counts.left,
        "imap_accounts_failing": [name for name in failing if name != RELAY_ACCOUNT],
        "relay_login_failing": RELAY_ACCOUNT in failing,
    }
    warnings = (failed,) if failed is not None and not failing_path else ()
    return Report(tuple(problems), facts, warnings)


def _read_counts(db: Database, now: datetime, limits: Thresholds, names: list[str]) -> _Counts:
    with db.read() as session:
        pending, pending_since = session.execute(
            select(func.count(JournalEntry.id), func.min(JournalEntry.received_at)).where(
                JournalEntry.state == JOURNAL_PENDING
            )
        ).one()
        # The worker marks the message it could not scan; the ones behind it wait in order.
        waiting_reason = session.scalar(
            select(JournalEntry.reason)
            .where(
                JournalEntry.state == JOURNAL_PENDING,
                JournalEntry.reason.startswith(WAITING_FOR_SCANNER),
            )
            .order_by(JournalEntry.id)
            .limit(1)
        )
        status_query = select(ImapAccountStatus).where(ImapAccountStatus.account.in_(names))
        statuses = list(session.scalars(status_query)) if names else []
        session.expunge_all()  # plain values after the read transaction ends
        quarantined = session.scalar(
            select(func.count(JournalEntry.id)).where(JournalEntry.state == JOURNAL_QUARANTINED)
        )
        queued, queued_since = session.execute(
            select(func.count(OutboxMail.id), func.min(OutboxMail.created_at)).where(
                OutboxMail.state == OUTBOX_QUEUED
            )
        ).one()
        since = now - timedelta(hours=limits.failed_hours)
        failed, failed_addresses = session.execute(
            select(func.count(OutboxMail.id), func.count(OutboxMail.recipient.distinct())).where(
                OutboxMail.state == OUTBOX_FAILED, OutboxMail.created_at >= since
            )
        ).one()
        left = session.scalar(
            select(func.count(OutboxMail.id)).where(
                OutboxMail.state.in_((OUTBOX_SENT, OUTBOX_FAILED)), OutboxMail.created_at >= since
            )
        )
    # min() over a TypeDecorator column comes back raw on SQLite: a naive UTC datetime or text.
    return _Counts(
        pending=int(pending),
        oldest_pending=_as_utc(pending_since),
        waiting_reason=waiting_reason,
        statuses=statuses,
        quarantined=int(quarantined or 0),
        queued=int(queued),
        oldest_queued=_as_utc(queued_since),
        failed=int(failed or 0),
        failed_addresses=int(failed_addresses or 0),
        left=int(left or 0),
    )


def _journal_problems(counts: _Counts, age: float | None, limits: Thresholds) -> list[Problem]:
    problems = []
    if age is not None and age > limits.journal_minutes:
        problems.append(
            Problem(
                "stuck_journal",
                f"{counts.pending} message(s) pending, the oldest for {age:.0f} min "
                f"(limit {limits.journal_minutes}): is the daemon running and the database "
                "writable?",
            )
        )
    if counts.waiting_reason is not None:
        problems.append(
            Problem(
                "virus_scanner",
                f"{counts.pending} message(s) pending, unscanned and not stored, "
                f"{counts.waiting_reason}",
            )
        )
    if counts.quarantined:
        problems.append(
            Problem(
                "quarantine",
                f"{counts.quarantined} message(s) quarantined: see `ticketd quarantine list`, "
                "then `ticketd quarantine retry ID` after a fix",
            )
        )
    return problems


def _outbox_problems(counts: _Counts, age: float | None, limits: Thresholds) -> list[Problem]:
    problems = []
    if age is not None and age > limits.outbox_minutes:
        problems.append(
            Problem(
                "outbox_stuck",
                f"{counts.queued} mail(s) waiting, the oldest for {age:.0f} min "
                f"(limit {limits.outbox_minutes}): `ticketd outbox list` shows the relay's answer",
            )
        )
    return problems


def _failed_deliveries(counts: _Counts, limits: Thresholds) -> tuple[Problem | None, bool]:
    """The failed deliveries of the window, if any, and whether they need a person: mail to
    more than one address failed, and at least `failed_percent` of the mail that left (with 0,
    any failure)."""
    if not counts.failed:
        return None, False
    share = 100 * counts.failed / max(counts.left, counts.failed)
    # 0: every failure needs a person, one address's too.
    many = share >= limits.failed_percent and (
        counts.failed_addresses > 1 or limits.failed_percent == 0
    )
    to = f"{counts.failed_addresses} address(es)"
    reason = (
        f"{counts.failed} mail(s) to {to} could not be delivered in the last "
        f"{limits.failed_hours} h ({share:.0f}% of {max(counts.left, counts.failed)} sent): "
        "see `ticketd outbox list`"
    )
    if not many:
        reason += f"; noted on the tickets (limit: more than one address, {limits.failed_percent}%)"
    return Problem("failed_deliveries", reason), many


def failing_accounts(
    rows: Sequence[ImapAccountStatus], now: datetime, limit_minutes: int
) -> dict[str, Problem]:
    """Accounts whose newest status row says failing for longer than `limit_minutes`, by name."""
    newest: dict[str, ImapAccountStatus] = {}
    for row in rows:
        known = newest.get(row.account)
        if known is None or (row.updated_at, row.id) > (known.updated_at, known.id):
            newest[row.account] = row
    problems = {}
    for name in sorted(newest):
        row = newest[name]
        age = _age_minutes(now, row.failing_since)
        if age is None or age <= limit_minutes:
            continue
        last_ok = row.last_ok_at.isoformat() if row.last_ok_at else "never"
        relay = name == RELAY_ACCOUNT
        problems[name] = Problem(
            "relay_login" if relay else "imap_account",
            f"{f'smtp_out {row.mailbox}' if relay else f'imap {name}'}: failing for {age:.0f} "
            f"min (limit {limit_minutes}) on "
            f"{row.daemon_host}, last success {last_ok}: {redact(row.last_error or '?')}",
        )
    return problems


def token_problems(accounts: Sequence[ImapAccountConfig], now: datetime) -> list[Problem]:
    """XOAUTH2 accounts with a `token_file` whose token is unreadable or about to expire.

    Only files: running a `token_command` from a monitoring probe could hit the identity
    provider every minute, and the daemon logs a command's short-lived token itself. A file's
    token within REFRESH_MARGIN of its end means the tool that refreshes it has stopped; the
    daemon would be logged out within minutes. A bare token gives no expiry and is not judged.
    """
    problems = []
    for account in accounts:
        if account.auth != "xoauth2" or account.token_file is None:
            continue
        try:
            token = parse_token(account.token_file.read_text(encoding="utf-8"), now)
        except (OSError, TokenError) as error:
            problems.append(
                Problem("imap_token", f"imap account {account.name}: no usable token: {error}")
            )
            continue
        if token.expires_at is not None and token.expires_at - now <= REFRESH_MARGIN:
            minutes = (token.expires_at - now).total_seconds() / 60
            when = f"in {minutes:.0f} min" if minutes >= 0 else f"{-minutes:.0f} min ago"
            problems.append(
                Problem(
                    "imap_token",
                    f"imap account {account.name}: the access token in {account.token_file} "
                    f"expires {when} ({token.expires_at.isoformat()}): is the tool that "
                    "refreshes it running?",
                )
            )
    return problems


def _as_utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def with_account_probes(
    report: Report, config: Config, clock: Clock, relay: bool = False
) -> Report:
    """Log in to each account (`health --connect`), and with `relay` to the relay: the daemon
    keeps an account's failures in its memory and its metrics, so the probe asks the server
    itself. One token broker for all, as in the daemon."""
    from ingest.imap_probe import probe
    from ingest.oauth_tokens import OAuthBroker
    from ticketd.probes import relay_probe

    broker = OAuthBroker(config.oauth, clock)
    failures = [
        Problem("imap_account", str(result))
        for result in (probe(account, clock, broker) for account in config.imap)
        if not result.ok
    ]
    if relay:
        ok, text = relay_probe(config, broker)
        if not ok:
            failures.append(Problem("relay_login", text))
    return Report((*report.problems, *failures), report.facts, report.warnings)


def with_scanner_probe(report: Report, clamd: ClamdAddress) -> Report:
    from ticketd.probes import scanner_problem  # clamd's client only for --connect

    problem = scanner_problem(clamd)
    if problem is None:
        return report
    problems = (*report.problems, Problem("virus_scanner", problem))
    return Report(problems, report.facts, report.warnings)


def database_problem(error: Exception) -> Report:
    return Report((Problem("database", f"cannot read the database: {error}"),), {})
