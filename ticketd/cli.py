"""The command line: `ticketd --config FILE COMMAND`, the interface scripts and admins rely on.

`COMMANDS` is every command, its arguments, what it opens and its handler; how to read an entry
and how to add a command or a group is in ticketd/commands.py. A handler's module is imported
only when its command runs.
"""

from __future__ import annotations

import argparse
import logging
import os
import select
import signal
import sys
from collections.abc import Sequence

from domain import logs
from domain.allocator import release_large_buffers
from domain.config_file import ConfigError
from ticketd.commands import (
    EX_CONFIG,
    EX_DATAERR,
    EX_OK,
    EX_TEMPFAIL,
    EX_UNAVAILABLE,
    EX_USAGE,
    Arg,
    Command,
    Entry,
    Group,
    OneOf,
    Opens,
    build_parser,
    config_path,
    run,
)

# The exit statuses too, for scripts and tests that import them from here.
__all__ = [
    "COMMANDS",
    "EX_CONFIG",
    "EX_DATAERR",
    "EX_OK",
    "EX_PIPE",
    "EX_TEMPFAIL",
    "EX_UNAVAILABLE",
    "EX_USAGE",
    "main",
]

# A command whose reader stopped early (`| head`): 128 + SIGPIPE, as a shell reports coreutils
# and git then (main, _quiet_end).
EX_PIPE = 128 + signal.SIGPIPE
EX_INTERRUPTED = 128 + signal.SIGINT  # what a shell reports for a program Ctrl-C ended

AT = Arg("--at", help="as if at this ISO 8601 time")
DRY_RUN = Arg("--dry-run", flag=True, help="say what would change, change nothing")
AGENT_ASKING = Arg(
    "--agent", metavar="EMAIL", help="the agent asking (audited); default: the admin"
)

SERVICE = (
    Command(
        "run", "ticketd.service_commands:run", Opens.NONE, help="run the daemon in the foreground"
    ),
    Command(
        "check",
        "ticketd.service_commands:check_config",
        Opens.NONE,
        help="validate the configuration",
        arguments=(
            Arg(
                "--connect",
                flag=True,
                help="also log in to every IMAP account and the relay (sending nothing), "
                "PING clamd",
            ),
        ),
    ),
    Group(
        "db",
        "database maintenance",
        (
            Command(
                "upgrade",
                "ticketd.service_commands:db_upgrade",
                Opens.NONE,
                help="apply migrations",
            ),
        ),
    ),
)

MAIL_IN = (
    Command(
        "ingest",
        "ticketd.ingest_command:ingest",
        Opens.NONE,
        help="store one raw message (for an MTA pipe)",
        arguments=(
            Arg("file", nargs="?", help="the message; standard input when omitted"),
            Arg("--sender", help="envelope sender, as an MTA passes it"),
            Arg("--recipient", repeat=True, help="envelope recipient (repeatable)"),
            Arg(
                "--process",
                flag=True,
                help="also process pending messages now instead of leaving it to `run`",
            ),
        ),
        parses=lambda args: bool(args.process),
    ),
    Command(
        "import",
        "ticketd.import_command:import_mail",
        Opens.FULL,
        help="import a mbox, a Maildir or a folder of .eml files",
        json=True,
        arguments=(
            Arg("path"),
            Arg(
                "--acknowledge",
                flag=True,
                help="treat the mail as new: acknowledgements to customers, notifications to "
                "agents (off: it is historical and tells no one)",
            ),
            Arg(
                "--no-process",
                flag=True,
                help="only journal the messages; the daemon processes them",
            ),
        ),
        parses=lambda args: not args.no_process,
    ),
)

# The statuses of a ticket (storage/models.py TICKET_STATUSES; a test keeps the two the same).
TICKET_STATUSES = ("open", "pending", "closed", "merged")

TICKETS = Group(
    "tickets",
    "tickets and their history",
    (
        Command(
            "list",
            "ticketd.ticket_commands:list_tickets",
            Opens.READ,
            help="tickets with their queue, assignee and priority",
            json=True,
            arguments=(
                Arg("--status", choices=TICKET_STATUSES),
                Arg("--queue", help="only the tickets of this queue"),
                Arg("--assignee", metavar="EMAIL", help="only the tickets assigned to EMAIL"),
                Arg("--customer", metavar="EMAIL", help="only this customer's tickets"),
            ),
        ),
        Command(
            "show",
            "ticketd.ticket_commands:show_ticket",
            Opens.READ,
            help="one ticket's history and what was sent (audited)",
            json=True,
            arguments=(Arg("ref"), AGENT_ASKING),
        ),
        Command(
            "merge",
            "ticketd.ticket_commands:merge_tickets",
            Opens.FULL,
            help="merge a ticket into another",
            arguments=(
                Arg("ref"),
                Arg("--into", required=True, metavar="REF", help="the ticket that remains"),
            ),
        ),
        Command(
            "split",
            "ticketd.ticket_commands:split_ticket",
            Opens.FULL,
            help="move messages into a new ticket",
            arguments=(
                Arg("ref"),
                Arg(
                    "positions",
                    nargs="+",
                    type=int,
                    help="1-based positions in the history (tickets show)",
                ),
            ),
        ),
    ),
)

# The states of a journal row (storage/models.py JOURNAL_*; a test keeps the two the same).
JOURNAL_STATES = ("pending", "done", "ignored", "quarantined", "dismissed")

MAIL_FLOW = (
    Group(
        "quarantine",
        "messages that could not be processed",
        (
            Command(
                "list",
                "ticketd.journal_commands:quarantine_list",
                Opens.READ,
                help="quarantined messages and the pipeline step that stopped each",
                json=True,
            ),
            Command(
                "retry",
                "ticketd.journal_commands:quarantine_retry",
                Opens.FULL,
                help="put a quarantined message back in the journal",
                arguments=(
                    Arg("id", type=int),
                    Arg("--now", flag=True, help="process it now, not in the daemon"),
                ),
                parses=lambda args: bool(args.now),
            ),
            Command(
                "dismiss",
                "ticketd.journal_commands:quarantine_dismiss",
                Opens.FULL,
                help="clear a quarantined message for good (audited); health stops counting it",
                arguments=(
                    Arg("id", type=int),
                    Arg("--reason", required=True, help="why: kept in the audit"),
                    Arg("--actor", help="who dismisses it (default: the login name)"),
                ),
            ),
        ),
    ),
    Group(
        "outbox",
        "mail sent and waiting",
        (
            Command(
                "list",
                "ticketd.journal_commands:outbox_list",
                Opens.READ,
                help="outgoing mail with its state (queued, sent, failed)",
                json=True,
            ),
        ),
    ),
)

HEALTH = (
    Command(
        "health",
        "ticketd.service_commands:health",
        Opens.NONE,
        help="exit non-zero when something needs a person",
        json=True,
        arguments=(
            Arg(
                "--journal-minutes",
                type=int,
                default=15,
                help="oldest pending message (default 15)",
            ),
            Arg("--outbox-minutes", type=int, default=60, help="oldest mail waiting (default 60)"),
            Arg(
                "--failed-hours", type=int, default=168, help="failed deliveries this recent (168)"
            ),
            Arg(
                "--failed-percent",
                type=int,
                default=10,
                help="failed deliveries need a person from this share of the mail sent, to more "
                "than one address (10; 0: any failure); fewer are a warning",
            ),
            Arg(
                "--imap-minutes",
                type=int,
                default=10,
                help="an IMAP account failing this long (10)",
            ),
            Arg(
                "--connect",
                flag=True,
                help="also log in to each IMAP account (and an XOAUTH2 relay) and PING clamd: "
                "a failure needs a person",
            ),
        ),
    ),
    Command(
        "stats",
        "ticketd.ticket_commands:stats",
        Opens.READ,
        help="tickets per status and category",
        json=True,
    ),
    Group(
        "journal",
        "every message received and what became of it",
        (
            Command(
                "list",
                "ticketd.journal_commands:journal_list",
                Opens.READ,
                help="received messages: ticket, ignored or quarantined",
                json=True,
                arguments=(
                    Arg("--state", choices=JOURNAL_STATES),
                    Arg("--limit", type=int, metavar="N", help="only the newest N messages"),
                ),
            ),
        ),
    ),
)

SLA_AT = Arg("--at", help="as if it were this ISO 8601 time (UTC without an offset)")
SLA_DRY_RUN = Arg("--dry-run", flag=True, help="show what would be sent")

SLA = (
    Group(
        "sla",
        "the SLA clock: reminders and escalations",
        (
            Command(
                "tick",
                "ticketd.sla_commands:sla_tick",
                Opens.FULL,
                help="one pass of the SLA clock",
                json=True,
                arguments=(SLA_AT, SLA_DRY_RUN),
            ),
            Command(
                "digest",
                "ticketd.sla_commands:sla_digest",
                Opens.FULL,
                help="the daily digest per queue, when due",
                json=True,
                arguments=(SLA_AT, SLA_DRY_RUN),
            ),
            Command(
                "report",
                "ticketd.sla_commands:sla_report",
                Opens.READ,
                help="at-risk and breached tickets per queue",
                json=True,
            ),
            Command(
                "recompute",
                "ticketd.sla_commands:sla_recompute",
                Opens.FULL,
                help="recompute open tickets' deadlines from the current [sla]",
                json=True,
                arguments=(Arg("--dry-run", flag=True, help="show what would move"),),
            ),
        ),
    ),
    Group(
        "survey",
        "the satisfaction survey",
        (
            Command(
                "report",
                "ticketd.sla_commands:survey",
                Opens.READ,
                help="average score per queue and agent",
                json=True,
            ),
        ),
    ),
)

KYC = Group(
    "kyc",
    "identity documents: list, export, audit, purge",
    (
        Command(
            "list",
            "ticketd.kyc_commands:list_kyc",
            Opens.READ,
            help="a ticket's documents (metadata only)",
            json=True,
            arguments=(Arg("ref"),),
        ),
        Command(
            "export",
            "ticketd.kyc_commands:export_kyc",
            Opens.FULL,
            help="decrypt a ticket's documents to a folder",
            arguments=(
                Arg("ref"),
                Arg("--to", required=True, metavar="DIR"),
                Arg(
                    "--agent",
                    required=True,
                    metavar="EMAIL",
                    help="the identity agent asking (audited)",
                ),
            ),
        ),
        Command(
            "audit",
            "ticketd.kyc_commands:audit_kyc",
            Opens.READ,
            help="every access to a document",
            json=True,
        ),
        Command(
            "purge",
            "ticketd.kyc_commands:purge_kyc",
            Opens.FULL,
            help="delete content whose retention ended",
            arguments=(Arg("--dry-run", flag=True, help="show what would go"), AT),
        ),
        Command(
            "status",
            "ticketd.kyc_commands:verification_status",
            Opens.READ,
            help="customers' verification states",
            json=True,
            arguments=(Arg("customer", nargs="?", help="one customer's address"),),
        ),
        Command(
            "request",
            "ticketd.kyc_commands:request_verification",
            Opens.FULL,
            help="ask a ticket's customer for documents",
            arguments=(
                Arg("ref"),
                Arg(
                    "--agent",
                    required=True,
                    metavar="EMAIL",
                    help="the identity agent asking (recorded)",
                ),
            ),
        ),
        Command(
            "keys",
            "ticketd.key_commands:list_keys",
            Opens.FULL,
            help="the keys of the key file (ids, never the keys)",
            json=True,
        ),
        Command(
            "rotate-key",
            "ticketd.key_commands:rotate_key",
            Opens.FULL,
            help="a new key for sealing; re-encrypt every blob and document under it",
            description="Adds a new key that seals from now on and re-encrypts the journal and "
            "the identity documents under it while the daemons keep running; run again to "
            "resume one cut short. With --retire: no new key; remove the old keys once nothing "
            "needs them.",
            json=True,
            arguments=(
                Arg("--retire", flag=True, help="remove the old keys (after the rotation)"),
            ),
        ),
    ),
)

DATA = (
    Group(
        "blobs",
        "the blob store: remove orphans",
        (
            Command(
                "sweep",
                "ticketd.blob_commands:sweep_blobs",
                Opens.FULL,
                help="delete blobs no journal row and no document refers to",
                json=True,
                arguments=(
                    Arg("--dry-run", flag=True, help="list, delete nothing"),
                    Arg(
                        "--grace-hours",
                        type=float,
                        help="leave blobs younger than this alone (default 24, at least 1)",
                    ),
                ),
            ),
        ),
    ),
    Group(
        "retention",
        "retention of raw mail and closed tickets",
        (
            Command(
                "run",
                "ticketd.retention_commands:run_pass",
                Opens.FULL,
                help="one pass of [retention] (the daemon runs it daily)",
                json=True,
                arguments=(AT, DRY_RUN),
            ),
        ),
    ),
    Group(
        "customer",
        "a customer's data: export, erase",
        (
            Command(
                "export",
                "ticketd.customer_commands:export",
                Opens.FULL,
                help="everything held about a customer, in clear",
                arguments=(
                    Arg("address"),
                    Arg("--to", required=True, metavar="DIR", help="a new or empty folder"),
                    AGENT_ASKING,
                ),
            ),
            Command(
                "erase",
                "ticketd.customer_commands:erase",
                Opens.FULL,
                help="erase a customer's data (a pseudonym stays)",
                json=True,
                arguments=(
                    Arg("address"),
                    Arg("--dry-run", flag=True, help="count, change nothing"),
                ),
            ),
        ),
    ),
)

SENDER = Arg("sender", metavar="ADDRESS|DOMAIN")
# The states of a webhook delivery (storage/models.py WEBHOOK_*; a test keeps the two the same).
WEBHOOK_STATES = ("queued", "delivered", "failed")

SENDERS = (
    Command(
        "block",
        "ticketd.block_commands:block_sender",
        Opens.FULL,
        help="ignore mail from an address or a domain",
        arguments=(SENDER, Arg("--reason", help="why, for `blocked list`")),
    ),
    Command(
        "unblock",
        "ticketd.block_commands:unblock_sender",
        Opens.FULL,
        help="take an address or a domain off the list",
        arguments=(SENDER,),
    ),
    Group(
        "blocked",
        "the blocked senders",
        (
            Command(
                "list",
                "ticketd.block_commands:list_blocked",
                Opens.READ,
                help="the blocked addresses and domains, with their reasons",
                json=True,
            ),
        ),
    ),
    Group(
        "webhooks",
        "webhook deliveries and their state",
        (
            Command(
                "list",
                "ticketd.webhook_commands:list_webhooks",
                Opens.READ,
                help="deliveries, newest first",
                json=True,
                arguments=(
                    Arg("--state", choices=WEBHOOK_STATES),
                    Arg("--limit", type=int, default=200, help="at most this many (200)"),
                ),
            ),
        ),
    ),
    Group(
        "tokens",
        "bearer tokens of the HTTP API",
        (
            Command(
                "create",
                "ticketd.token_commands:create",
                Opens.FULL,
                help="a new token, printed once",
                arguments=(
                    OneOf(
                        (
                            Arg(
                                "--agent",
                                metavar="EMAIL",
                                help="acts as this agent: their queues only",
                            ),
                            Arg("--admin", flag=True, help="sees and changes every ticket"),
                        ),
                        required=True,
                    ),
                    Arg("--name", help="what the token is for (shown by `tokens list`)"),
                ),
            ),
            Command(
                "list",
                "ticketd.token_commands:list_all",
                Opens.READ,
                help="the tokens (never the tokens themselves)",
                json=True,
            ),
            Command(
                "revoke",
                "ticketd.token_commands:revoke",
                Opens.FULL,
                help="a token stops working at once",
                arguments=(Arg("id", type=int),),
            ),
        ),
    ),
    Group(
        "oauth",
        "OAuth2 for IMAP and SMTP ([oauth.NAME])",
        (
            Command(
                "login",
                "ticketd.oauth_commands:oauth_login",
                Opens.NONE,
                help="sign in once (device code) and store the refresh token",
                arguments=(Arg("name", help="the NAME of an [oauth.NAME] block"),),
            ),
        ),
    ),
)

# In the order `ticketd --help` lists them.
COMMANDS: tuple[Entry, ...] = (
    *SERVICE,
    *MAIL_IN,
    TICKETS,
    *MAIL_FLOW,
    *HEALTH,
    *SLA,
    KYC,
    *DATA,
    *SENDERS,
)


def main(argv: Sequence[str] | None = None) -> int:
    release_large_buffers()  # before any message is read (domain/allocator.py)
    try:
        return _main(argv)
    except BrokenPipeError:
        # _main lets through only a pipe whose reader is gone: standard output's, or standard
        # error's where an error or argparse's usage was printed (`2>&1 | head -1`).
        return _quiet_end()


def _main(argv: Sequence[str] | None) -> int:
    # Inside main's try: argparse prints --help and usage itself, into a pipe too.
    args = build_parser(COMMANDS).parse_args(argv)
    logs.setup(verbose=args.verbose)
    command = args.declared
    assert isinstance(command, Command)  # every parser of build_parser sets it
    try:
        status = run(command, args)
        sys.stdout.flush()  # what is still buffered fails here, not in the interpreter's exit
        return status
    except ConfigError as error:
        print(error.render(config_path(args)), file=sys.stderr)
        return EX_CONFIG
    except KeyboardInterrupt:
        # Not 0: `ticketd import DIR && rm -r DIR` must not take a Ctrl-C in the middle for a
        # finished import. What was journaled stays journaled (run again, it is counted as
        # already imported, and the rest is imported).
        print(f"ticketd {args.command}: interrupted", file=sys.stderr)
        return EX_INTERRUPTED
    except BrokenPipeError as error:
        if _stdout_closed():
            raise  # the reader stopped early: main ends quietly
        return _unexpected(args, error)
    except Exception as error:
        return _unexpected(args, error)


def _unexpected(args: argparse.Namespace, error: Exception) -> int:
    """Never a traceback to a user; the log has the detail."""
    logging.getLogger("ticketd").debug("unexpected error", exc_info=True)
    print(f"ticketd {args.command}: {type(error).__name__}: {error}", file=sys.stderr)
    return 1


def _stdout_closed() -> bool:
    """Whether standard output is a pipe or socket whose reader is gone: poll says POLLERR for
    a pipe without readers (POLLHUP for a socket). A BrokenPipeError is also what a socket
    raises whose peer hung up (a relay, clamd): that one is an error the admin must see."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return False  # replaced by something without a descriptor (a test's capture)
    poller = select.poll()
    poller.register(fd, 0)  # POLLERR and POLLHUP are reported without being asked for
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))


def _quiet_end() -> int:
    """The end of a command whose reader stopped early (`| head`, `less` quit): nothing on
    standard error, and EX_PIPE.

    coreutils and git die of SIGPIPE there (git's check_pipe raises it), which a shell reports
    as 141 and scripts with `set -o pipefail` see. Python ignores SIGPIPE (the daemon's
    sockets need the EPIPE error instead of being killed), so ticketd exits with 141 itself,
    the status a shell shows for them, and its exit handlers (the log's flush) still run.
    Standard output is pointed at /dev/null first: the interpreter flushes what is still
    buffered at exit, and that flush into the closed pipe printed "Exception ignored"."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)
    return EX_PIPE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
