"""The command line: `ticketd --config FILE COMMAND`, the interface scripts and admins rely on."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import re
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from domain import logs
from domain.config import Config, ConfigError, load_config, load_listener_config
from ingest.regular_files import NotRegular, open_regular
from ticketd import views
from ticketd.blob_commands import add_blob_commands
from ticketd.block_commands import add_block_commands
from ticketd.customer_commands import add_customer_commands
from ticketd.journal_view import add_journal_commands
from ticketd.kyc_commands import add_kyc_commands
from ticketd.oauth_commands import add_oauth_commands, relay_probe
from ticketd.retention_commands import add_retention_commands
from ticketd.sla_commands import add_sla_commands
from ticketd.state_checks import check_state_files
from ticketd.token_commands import add_token_commands
from ticketd.webhook_commands import add_webhook_commands

EX_OK = 0
EX_USAGE = 64
EX_DATAERR = 65
EX_CONFIG = 78
EX_TEMPFAIL = 75
EX_UNAVAILABLE = 69

Handler = Callable[[argparse.Namespace], int]


def _config_path(args: argparse.Namespace) -> Path:
    value = args.config or os.environ.get("TICKETD_CONFIG") or "ticketd.toml"
    return Path(value)


# The C1 controls JSON leaves raw (it escapes only U+0000-U+001F): a terminal showing the
# output would obey U+009B (CSI) and U+009D (OSC). Escaped, the decoded text is the same.
_C1 = re.compile("[\x7f-\x9f]")


def _print_json(value: Any) -> None:
    text = json.dumps(value, ensure_ascii=False, indent=2, default=str)
    sys.stdout.write(_C1.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n")


def cmd_check(args: argparse.Namespace) -> int:
    config = load_listener_config(_config_path(args))
    check_state_files(config)  # what run needs of the files it names
    print(f"{config.path}: the configuration is sound")
    print(f"  desk: {config.desk.name} <{config.desk.address}>, language {config.desk.language}")
    where = config.desk.secret_file or "desk.secret"
    print(f"  desk secret: {where} ({len(config.desk.secret)} characters)")
    print(f"  database: {views.safe_url(config.storage.database)}")
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
    for key, reason in config.warnings:
        print(f"  warning: {key}: {reason}")
    if not getattr(args, "connect", False):
        return EX_OK
    return _check_connect(config)


def _check_connect(config: Config) -> int:
    from domain.clock import SystemClock
    from ingest.imap_probe import probe
    from ingest.oauth_tokens import OAuthBroker
    from ingest.spam import ping as spam_ping
    from ticketd.health import scanner_problem

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


def cmd_run(args: argparse.Namespace) -> int:
    from ticketd.daemon import Daemon
    from ticketd.state import key_problem, open_state

    config = load_listener_config(_config_path(args))
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


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from storage.db import Database
    from storage.migrate import upgrade

    config = load_config(_config_path(args))
    db = Database(config.storage.database)
    try:
        upgrade(db)
    finally:
        db.dispose()
    print(f"database at the newest schema: {views.safe_url(config.storage.database)}")
    return EX_OK


def cmd_ingest(args: argparse.Namespace) -> int:
    """For an MTA pipe: 0 once the message is durable, 75 when it could not be stored, 65
    when it is over the size limit (read in bounded memory: ingest/oversize.py)."""
    from ingest.journal import Arrival, StorageFailure
    from ingest.oversize import header_summary, read_bounded, too_big
    from ticketd.state import open_state

    config = load_config(_config_path(args))
    limit = config.smtp_in.max_message_size
    try:
        if args.file:
            with open_regular(Path(args.file)) as file:
                read = read_bounded(file, limit)
        else:
            read = read_bounded(sys.stdin.buffer, limit)
    except NotRegular as error:  # a folder, a FIFO, a device, a link: no retry makes it mail
        print(f"ticketd ingest: not stored: {error}", file=sys.stderr)
        return EX_DATAERR
    except OSError as error:
        print(f"ticketd ingest: cannot read {args.file}: {error}", file=sys.stderr)
        permanent = isinstance(error, FileNotFoundError | NotADirectoryError | PermissionError)
        return EX_DATAERR if permanent else EX_TEMPFAIL
    if isinstance(read, tuple):
        head, size = read
        print(
            f"ticketd ingest: not stored, {too_big(size, limit)}; {header_summary(head)}",
            file=sys.stderr,
        )
        return EX_DATAERR
    raw = read
    if not raw.strip():
        print("ticketd ingest: empty input, nothing stored", file=sys.stderr)
        return EX_DATAERR
    try:
        state = open_state(config)
    except Exception as error:
        print(f"ticketd ingest: storage unavailable: {error}", file=sys.stderr)
        return EX_TEMPFAIL
    try:
        arrival = Arrival(
            raw=raw,
            source="ingest",
            envelope_from=args.sender,
            envelope_to=tuple(args.recipient or ()),
        )
        journal_id = state.journal.accept(arrival)
        print(f"stored as message {journal_id}")
        if args.process:
            state.isolate()
            for result in state.worker.drain():
                print(f"message {result.journal_id} {result.state}: {result.detail}")
    except StorageFailure as error:
        print(f"ticketd ingest: not stored: {error}", file=sys.stderr)
        return EX_TEMPFAIL
    finally:
        state.close()
    return EX_OK


def cmd_import(args: argparse.Namespace) -> int:
    from ingest.importer import import_path
    from ticketd.state import open_state

    config = load_config(_config_path(args))
    state = open_state(config)
    state.isolate()  # each message parsed within [limits] max_parse_seconds
    try:
        summary = import_path(
            state,
            Path(args.path),
            acknowledge=args.acknowledge,
            process=not args.no_process,
            progress=not args.json,
        )
    except NotRegular as error:
        print(f"ticketd import: nothing imported: {error}", file=sys.stderr)
        return EX_DATAERR
    finally:
        state.close()
    if args.json:
        _print_json(summary)
    else:
        print(", ".join(f"{key}: {value}" for key, value in summary.items()))
    return EX_OK if summary["failed"] == 0 and not summary.get("refused") else EX_DATAERR


def _with_state(body: Callable[[Any, argparse.Namespace], int]) -> Handler:
    def run(args: argparse.Namespace) -> int:
        from ticketd.state import open_state

        state = open_state(load_config(_config_path(args)))
        try:
            return body(state, args)
        finally:
            state.close()

    return run


def _reading(body: Callable[[Any, argparse.Namespace], int]) -> Handler:
    """For a command that only reads: against a database that does not exist (or holds no
    ticketd schema) it says so and exits 1, creating nothing (no file, folder or key)."""

    def run(args: argparse.Namespace) -> int:
        from ticketd.state import DatabaseMissing, open_for_reading

        try:
            state = open_for_reading(load_config(_config_path(args)))
        except DatabaseMissing as error:
            print(f"ticketd {args.command}: {error}", file=sys.stderr)
            return 1
        try:
            return body(state, args)
        finally:
            state.close()

    return run


def _tickets_list(state: Any, args: argparse.Namespace) -> int:
    rows = views.list_tickets(
        state.db,
        status=args.status,
        queue=args.queue,
        assignee=args.assignee,
        customer=args.customer,
    )
    if args.json:
        _print_json(rows)
    else:
        columns = ["ref", "status", "category", "queue", "assignee", "priority", "customer"]
        views.print_table([*columns, "messages", "subject"], rows)
    return EX_OK


def _tickets_show(state: Any, args: argparse.Namespace) -> int:
    from ticketd.access import AccessRefused, check_ticket

    ticket = views.show_ticket(state.db, args.ref)
    if ticket is None:
        print(f"no ticket {args.ref}", file=sys.stderr)
        return 1
    try:  # the acting agent's queues only; every access audited (ticketd/access.py)
        check_ticket(
            state.db, state.config, state.clock.now(), ticket["ref"], args.agent, "tickets show"
        )
    except AccessRefused as error:
        print(f"ticketd tickets show: {error}", file=sys.stderr)
        return 1
    if args.json:
        _print_json(ticket)
    else:
        views.print_ticket(ticket)
    return EX_OK


def _tickets_merge(state: Any, args: argparse.Namespace) -> int:
    from ingest.ticket_ops import TicketOperationError, merge

    try:
        survivor = merge(state.db, state.clock, args.ref, args.into, state.config.sla)
    except TicketOperationError as error:
        print(f"ticketd tickets merge: {error}", file=sys.stderr)
        return 1
    print(f"{args.ref} merged into {survivor}; its reference now leads there")
    return EX_OK


def _tickets_split(state: Any, args: argparse.Namespace) -> int:
    from ingest.ticket_ops import TicketOperationError, split

    try:
        new_ref = split(state.db, state.clock, args.ref, args.positions, state.config.sla)
    except TicketOperationError as error:
        print(f"ticketd tickets split: {error}", file=sys.stderr)
        return 1
    print(new_ref)
    return EX_OK


def _quarantine_list(state: Any, args: argparse.Namespace) -> int:
    rows = views.list_quarantine(state.db)
    if args.json:
        _print_json(rows)
    else:
        views.print_table(["id", "received_at", "source", "attempts", "step", "reason"], rows)
    return EX_OK


def _quarantine_retry(state: Any, args: argparse.Namespace) -> int:
    if not views.requeue(state.db, args.id):
        print(f"no quarantined message {args.id}", file=sys.stderr)
        return 1
    print(f"message {args.id} is pending again")
    if args.now:
        state.isolate()
        for result in state.worker.drain():
            print(f"message {result.journal_id} {result.state}: {result.detail}")
    return EX_OK


def _quarantine_dismiss(state: Any, args: argparse.Namespace) -> int:
    actor = args.actor or f"{getpass.getuser()} (command line)"
    before = views.dismiss(state.db, state.clock, args.id, args.reason, actor)
    if before is None:
        print(f"no quarantined message {args.id}", file=sys.stderr)
        return 1
    print(f"message {args.id} dismissed ({before}); `health` no longer counts it")
    return EX_OK


def _outbox_list(state: Any, args: argparse.Namespace) -> int:
    rows = views.list_outbox(state.db)
    if args.json:
        _print_json(rows)
    else:
        views.print_table(["id", "state", "kind", "to", "subject", "attempts", "last_error"], rows)
    return EX_OK


def cmd_health(args: argparse.Namespace) -> int:
    """0 when nothing needs a person, 1 with the reasons otherwise (2 when it cannot tell)."""
    from domain.clock import SystemClock
    from ticketd.health import (
        Thresholds,
        check,
        database_problem,
        with_account_probes,
        with_scanner_probe,
    )
    from ticketd.state import DatabaseMissing, open_for_reading

    config = load_config(_config_path(args))
    logs.protect_config(config)  # no IMAP password in a stored error text either
    limits = Thresholds(
        args.journal_minutes, args.outbox_minutes, args.failed_hours, args.imap_minutes
    )
    # The relay's XOAUTH2 login is recorded and probed like an IMAP account's.
    relay = config.smtp_out.relay is not None and config.smtp_out.auth == "xoauth2"
    try:
        # Nothing is created: a missing database is reported, never made (exit 2).
        state = open_for_reading(config)
    except DatabaseMissing as error:
        report, code = database_problem(error), 2
    else:
        try:
            report = check(state.db, SystemClock(), limits, config.imap, relay)
            code = EX_OK if report.healthy else 1
        except Exception as error:  # unreachable database: that needs a person too
            report, code = database_problem(error), 2
        finally:
            state.close()
    if args.connect and (config.imap or relay):
        report = with_account_probes(report, config, SystemClock(), relay)
        code = code or (0 if report.healthy else 1)
    if args.connect and config.kyc.clamd is not None:
        report = with_scanner_probe(report, config.kyc.clamd)
        code = code or (0 if report.healthy else 1)
    if args.json:
        _print_json(report.as_json())
    elif report.healthy:
        print("ok: nothing needs attention")
    else:
        for problem in report.problems:
            print(f"{problem.check}: {problem.reason}")
    return code


def _stats(state: Any, args: argparse.Namespace) -> int:
    from ticketd.stats import print_stats, ticket_stats

    stats = ticket_stats(state.db)
    if args.json:
        _print_json(stats)
    else:
        print_stats(stats)
    return EX_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ticketd", description="Email ticket ingestion daemon.")
    parser.add_argument(
        "--config", help="configuration file (default: $TICKETD_CONFIG, else ./ticketd.toml)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("run", help="run the daemon in the foreground").set_defaults(
        handler=cmd_run
    )
    check = commands.add_parser("check", help="validate the configuration")
    check.add_argument(
        "--connect",
        action="store_true",
        help="also log in to every IMAP account and the relay (sending nothing), PING clamd",
    )
    check.set_defaults(handler=cmd_check)

    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    db_commands.add_parser("upgrade", help="apply migrations").set_defaults(handler=cmd_db_upgrade)

    ingest = commands.add_parser("ingest", help="store one raw message (for an MTA pipe)")
    ingest.add_argument("file", nargs="?", help="the message; standard input when omitted")
    ingest.add_argument("--sender", help="envelope sender, as an MTA passes it")
    ingest.add_argument("--recipient", action="append", help="envelope recipient (repeatable)")
    ingest.add_argument(
        "--process",
        action="store_true",
        help="also process pending messages now instead of leaving it to `run`",
    )
    ingest.set_defaults(handler=cmd_ingest)

    imp = commands.add_parser("import", help="import a mbox, a Maildir or a folder of .eml files")
    imp.add_argument("path")
    imp.add_argument(
        "--acknowledge",
        action="store_true",
        help="treat the mail as new: acknowledgements to customers, notifications to agents "
        "(off: it is historical and tells no one)",
    )
    imp.add_argument(
        "--no-process",
        action="store_true",
        help="only journal the messages; the daemon processes them",
    )
    imp.add_argument("--json", action="store_true")
    imp.set_defaults(handler=cmd_import)

    tickets = commands.add_parser("tickets", help="tickets and their history")
    t_commands = tickets.add_subparsers(dest="tickets_command", required=True, metavar="COMMAND")
    t_list = t_commands.add_parser("list")
    t_list.add_argument("--status")
    t_list.add_argument("--queue", help="only the tickets of this queue")
    t_list.add_argument("--assignee", metavar="EMAIL", help="only the tickets assigned to EMAIL")
    t_list.add_argument("--customer", metavar="EMAIL", help="only this customer's tickets")
    t_list.add_argument("--json", action="store_true")
    t_list.set_defaults(handler=_reading(_tickets_list))
    t_show = t_commands.add_parser("show")
    t_show.add_argument("ref")
    t_show.add_argument(
        "--agent", metavar="EMAIL", help="the agent asking (audited); default: the admin"
    )
    t_show.add_argument("--json", action="store_true")
    t_show.set_defaults(handler=_reading(_tickets_show))
    t_merge = t_commands.add_parser("merge", help="merge a ticket into another")
    t_merge.add_argument("ref")
    t_merge.add_argument("--into", required=True, metavar="REF", help="the ticket that remains")
    t_merge.set_defaults(handler=_with_state(_tickets_merge))
    t_split = t_commands.add_parser("split", help="move messages into a new ticket")
    t_split.add_argument("ref")
    t_split.add_argument(
        "positions", nargs="+", type=int, help="1-based positions in the history (tickets show)"
    )
    t_split.set_defaults(handler=_with_state(_tickets_split))

    quarantine = commands.add_parser("quarantine", help="messages that could not be processed")
    q_commands = quarantine.add_subparsers(dest="q_command", required=True, metavar="COMMAND")
    q_list = q_commands.add_parser("list")
    q_list.add_argument("--json", action="store_true")
    q_list.set_defaults(handler=_reading(_quarantine_list))
    q_retry = q_commands.add_parser("retry")
    q_retry.add_argument("id", type=int)
    q_retry.add_argument("--now", action="store_true", help="process it now, not in the daemon")
    q_retry.set_defaults(handler=_with_state(_quarantine_retry))
    q_dismiss = q_commands.add_parser(
        "dismiss", help="clear a quarantined message for good (audited); health stops counting it"
    )
    q_dismiss.add_argument("id", type=int)
    q_dismiss.add_argument("--reason", required=True, help="why: kept in the audit")
    q_dismiss.add_argument("--actor", help="who dismisses it (default: the login name)")
    q_dismiss.set_defaults(handler=_with_state(_quarantine_dismiss))

    outbox = commands.add_parser("outbox", help="mail sent and waiting")
    o_commands = outbox.add_subparsers(dest="o_command", required=True, metavar="COMMAND")
    o_list = o_commands.add_parser("list")
    o_list.add_argument("--json", action="store_true")
    o_list.set_defaults(handler=_reading(_outbox_list))

    health = commands.add_parser("health", help="exit non-zero when something needs a person")
    health.add_argument(
        "--journal-minutes", type=int, default=15, help="oldest pending message (default 15)"
    )
    health.add_argument(
        "--outbox-minutes", type=int, default=60, help="oldest mail waiting (default 60)"
    )
    health.add_argument(
        "--failed-hours", type=int, default=168, help="failed deliveries this recent (168)"
    )
    health.add_argument(
        "--imap-minutes", type=int, default=10, help="an IMAP account failing this long (10)"
    )
    health.add_argument(
        "--connect",
        action="store_true",
        help="also log in to each IMAP account (and an XOAUTH2 relay) and PING clamd: "
        "a failure needs a person",
    )
    health.add_argument("--json", action="store_true")
    health.set_defaults(handler=cmd_health)

    stats = commands.add_parser("stats", help="tickets per status and category")
    stats.add_argument("--json", action="store_true")
    stats.set_defaults(handler=_reading(_stats))
    add_journal_commands(commands, _reading)
    add_sla_commands(commands, _with_state, _reading)
    add_kyc_commands(commands, _with_state, _reading)
    add_blob_commands(commands, _with_state)
    add_retention_commands(commands, _with_state)
    add_customer_commands(commands, _with_state)
    add_block_commands(commands, _with_state)
    add_webhook_commands(commands, _reading)
    add_token_commands(commands, _with_state, _reading)
    add_oauth_commands(commands, lambda args: load_config(_config_path(args)))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logs.setup(verbose=args.verbose)
    handler: Handler = args.handler
    try:
        return handler(args)
    except ConfigError as error:
        print(error.render(_config_path(args)), file=sys.stderr)
        return EX_CONFIG
    except KeyboardInterrupt:
        return EX_OK
    except Exception as error:  # never a traceback to a user; the log has the detail
        logging.getLogger("ticketd").debug("unexpected error", exc_info=True)
        print(f"ticketd {args.command}: {type(error).__name__}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
