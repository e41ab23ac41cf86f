"""`ticketd run`, `ticketd check [--connect]`, `ticketd db upgrade` and `ticketd health`: the
service itself, its configuration, its schema and whether something needs a person."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys

from domain import logs
from domain.clock import SystemClock
from domain.config import Config, load_config, load_listener_config
from storage.db import Database, safe_url
from storage.migrate import upgrade
from ticketd.commands import EX_CONFIG, EX_OK, EX_UNAVAILABLE, config_path, print_json
from ticketd.health import (
    Report,
    Thresholds,
    check,
    database_problem,
    with_account_probes,
    with_scanner_probe,
)
from ticketd.state import DatabaseMissing, key_problem, open_for_reading, open_state
from ticketd.state_checks import check_state_files


def run(args: argparse.Namespace) -> int:
    from ticketd.daemon import Daemon  # the daemon's own imports are for `run` alone

    config = load_listener_config(config_path(args))
    logs.protect_config(config)
    for key, reason in config.warnings:
        logging.getLogger("ticketd").warning("configuration: %s: %s", key, reason)
    check_state_files(config)  # a ConfigError naming the key, never a raw exception
    state = open_state(config)
    try:
        # Before any mail is accepted: a key file that lacks keys of the database would
        # quarantine every message the other daemons sealed.
        problem = key_problem(state, f"ticketd run on {socket.gethostname()}:{os.getpid()}")
        if problem is not None:
            print(f"ticketd run: {problem}", file=sys.stderr)
            return EX_CONFIG
        asyncio.run(Daemon(state).run())
    finally:
        state.close()
    return EX_OK


def check_config(args: argparse.Namespace) -> int:
    config = load_listener_config(config_path(args))
    check_state_files(config)  # what run needs of the files it names
    print(f"{config.path}: the configuration is sound")
    print(f"  desk: {config.desk.name} <{config.desk.address}>, language {config.desk.language}")
    where = config.desk.secret_file or "desk.secret"
    print(f"  desk secret: {where} ({len(config.desk.secret)} characters)")
    print(f"  database: {safe_url(config.storage.database)}")
    _print_mail_paths(config)
    _print_checks(config)
    for key, reason in config.warnings:
        print(f"  warning: {key}: {reason}")
    if not args.connect:
        return EX_OK
    return _check_connect(config)


def _print_mail_paths(config: Config) -> None:
    """Where mail comes in and goes out, and who signs in where."""
    print(f"  SMTP listener: {config.smtp_in.listen}")
    if config.smtp_in.tls_cert is not None:
        required = ", required before MAIL" if config.smtp_in.require_tls else ""
        print(f"  STARTTLS: {config.smtp_in.tls_cert}{required}")
    out = config.smtp_out
    print(f"  outgoing mail: {f'relay {out.relay}' if out.relay else f'Maildir {out.maildir}'}")
    if out.relay and out.auth == "xoauth2":
        print(f"    AUTH XOAUTH2 as {out.username}, token from [oauth.{out.oauth}]")
    for account in config.imap:
        where = f"{account.username}@{account.host}:{account.port}/{account.folder}"
        print(f"  imap {account.name}: {where} ({account.security}), after {account.after}")
    for provider in config.oauth:
        print(f"  oauth {provider.name}: {provider.kind}, {provider.grant} at {provider.endpoint}")


def _print_checks(config: Config) -> None:
    """What each message is checked with: viruses, senders, agents' proof, spam."""
    clamd = config.kyc.clamd
    print(f"  virus scanner: {f'clamd at {clamd}' if clamd else 'none (attachments not scanned)'}")
    trust = config.trust
    dns = ", ".join(f"{h}:{p}" for h, p in trust.dns.nameservers) or "the system's resolver"
    verification = (
        f"ours as {trust.authserv_id} (DNS: {dns}, {trust.dns.timeout:g} s a message)"
        if trust.verify_senders
        else "off (verify_senders = false)"
    )
    trusted = ", ".join(trust.trusted_authserv_ids) or "none"
    print(f"  sender verification: {verification}; trusted: {trusted}")
    # What proves an agent follows from the listener when unset: say which it is, so a desk
    # whose agents' mail stops acting after an upgrade sees why before any mail is refused.
    proof = (
        "an aligned DKIM or SPF pass in a verdict we believe, and the signed reply address "
        "(require_authentication = true)"
        if config.team.agent_replies.require_authentication
        else "the signed reply address (require_authentication = false)"
    )
    print(f"  agent mail acts with: {proof}")
    rspamd = config.spam.rspamd_url
    print(f"  spam filter: {f'rspamd at {rspamd}' if rspamd else 'none (mail is not checked)'}")


def _check_connect(config: Config) -> int:
    # The clients of the peers (msal, google-auth, aiosmtplib) only for --connect.
    from ingest.imap_probe import probe
    from ingest.oauth_tokens import OAuthBroker
    from ingest.spam import ping as spam_ping
    from ticketd.probes import relay_probe, scanner_problem

    logs.protect_config(config)
    clock = SystemClock()
    # One broker, as in the daemon: the IMAP and SMTP sides of a mailbox share the token.
    broker = OAuthBroker(config.oauth, clock)
    # Every account is tried, so one bad password does not hide a second problem.
    results = [probe(account, clock, broker) for account in config.imap]
    for result in results:
        print(result)
    relay_ok = True
    if config.smtp_out.relay is not None:
        relay_ok, relay_text = relay_probe(config, broker)
        print(relay_text)
    clamd = config.kyc.clamd
    scanner = None if clamd is None else scanner_problem(clamd)
    if clamd is not None:
        print(scanner or f"clamd at {clamd}: PONG")
    spam = None if config.spam.rspamd_url is None else spam_ping(config.spam)
    if config.spam.rspamd_url is not None:
        print(spam or f"rspamd at {config.spam.rspamd_url}: pong")
    healthy = relay_ok and scanner is None and spam is None
    healthy = healthy and all(result.ok for result in results)
    return EX_OK if healthy else EX_UNAVAILABLE


def db_upgrade(args: argparse.Namespace) -> int:
    config = load_config(config_path(args))
    db = Database(config.storage.database)
    try:
        upgrade(db)
    finally:
        db.dispose()
    print(f"database at the newest schema: {safe_url(config.storage.database)}")
    return EX_OK


def health(args: argparse.Namespace) -> int:
    """0 when nothing needs a person, 1 with the reasons otherwise (2 when it cannot tell)."""
    config = load_config(config_path(args))
    logs.protect_config(config)  # no IMAP password in a stored error text either
    limits = Thresholds(
        args.journal_minutes,
        args.outbox_minutes,
        args.failed_hours,
        args.failed_percent,
        args.imap_minutes,
    )
    # The relay's XOAUTH2 login is recorded and probed like an IMAP account's.
    relay = config.smtp_out.relay is not None and config.smtp_out.auth == "xoauth2"
    report, code = _health_of_database(config, limits, relay)
    if args.connect and (config.imap or relay):
        report = with_account_probes(report, config, SystemClock(), relay)
        code = code or (0 if report.healthy else 1)
    if args.connect and config.kyc.clamd is not None:
        report = with_scanner_probe(report, config.kyc.clamd)
        code = code or (0 if report.healthy else 1)
    if args.json:
        print_json(report.as_json())
        return code
    for warning in report.warnings:  # beside the lines scripts read, not among them
        print(f"warning: {warning.check}: {warning.reason}", file=sys.stderr)
    if report.healthy:
        print("ok: nothing needs attention")
    else:
        for problem in report.problems:
            print(f"{problem.check}: {problem.reason}")
    return code


def _health_of_database(config: Config, limits: Thresholds, relay: bool) -> tuple[Report, int]:
    try:
        # Nothing is created: a missing database is reported, never made (exit 2).
        state = open_for_reading(config)
    except DatabaseMissing as error:
        return database_problem(error), 2
    try:
        report = check(state.db, SystemClock(), limits, config.imap, relay)
        return report, EX_OK if report.healthy else 1
    except Exception as error:  # unreachable database: that needs a person too
        return database_problem(error), 2
    finally:
        state.close()
