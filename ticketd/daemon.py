"""`ticketd run`: the SMTP listener, the worker and the sender in one event loop.

SIGTERM (or SIGINT) drains, within DRAIN_SECONDS (the unit's TimeoutStopSec is 30 s): new
connections are greeted with 421 and new MAIL commands get 421, while transactions already under
way finish (their 250 comes once the message is durable); then the listener closes and idle
sessions get 421. The worker finishes the message in hand (the rest stays in the journal for next
time), the sender the delivery in hand. Then exit status 0.

SIGHUP re-reads the configuration and the templates; see ticketd/reload.py for what applies live.
It also re-reads the listener's TLS certificate and key: a renewed certificate keeps its paths.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.exc import OperationalError

from domain import logs
from domain.account_status import RELAY_ACCOUNT, AccountStatus
from domain.config import ConfigError, SmtpInConfig, load_listener_config
from domain.errors import Temporary
from domain.templating import Templates
from domain.tls_files import describe, server_context
from ingest.isolation import IsolatedCall
from ingest.oauth_tokens import OAuthBroker
from ingest.smtp_listener import IntakeHandler, make_smtp
from ingest.worker import RUN_MESSAGES, Processed, ScanWait, prepare_stored
from outbound.sender import Sender
from outbound.transports import Transport, make_transport
from ticketd import reload
from ticketd.give_way import QUIET, WaitBudget, give_way
from ticketd.imap_service import ImapService
from ticketd.kyc_service import run_kyc_housekeeping
from ticketd.maintenance_service import run_maintenance
from ticketd.metrics import Metrics
from ticketd.notify import Notifier
from ticketd.sla_service import run_sla_clock
from ticketd.state import State
from ticketd.web_views import web_deps
from ticketd.webhook_service import run_webhooks
from web.server import HttpService, stop_and_wait

log = logging.getLogger("ticketd.daemon")
IDLE_POLL_SECONDS = 1.0  # how often to look for work written by other processes (`ingest`)
DRAIN_SECONDS = 20.0
ORPHAN_CHECK_SECONDS = 10.0
# After the drain, a message whose storing was cut short still gets this long to commit.
STORE_GRACE_SECONDS = 5.0


@dataclass
class WorkerOutages:
    """The worker's temporary failures in a row (ingest/runner.py's retry-later), by cause."""

    database: int = 0  # the database went away, or another temporary failure
    scanner: int = 0  # clamd could not be reached
    scanner_address: str = ""  # the clamd that failed: its gauge series goes back to 1


class Daemon:
    def __init__(self, state: State) -> None:
        self.state = state
        self.stopping = asyncio.Event()
        self.work_ready = asyncio.Event()
        self.mail_ready = asyncio.Event()
        self.stopping_nudge = asyncio.Event()
        self.hostname = socket.getfqdn()
        self.notifier = Notifier()
        self.heartbeats: dict[str, float] = {}
        self.warmup: asyncio.Task[None] | None = None  # the parsing process's start
        self.handler: IntakeHandler | None = None  # the SMTP listener's, once it listens
        self.give_way_budget = WaitBudget()
        self.metrics = Metrics(state.db, state.clock, lambda: self.state.config)
        # One token per mailbox for the IMAP and the SMTP side ([oauth.NAME]).
        self.oauth = OAuthBroker(state.config.oauth, state.clock)
        self.imap = ImapService(
            state, on_journaled=self.work_ready.set, metrics=self.metrics, broker=self.oauth
        )
        # Parsing in a child process: a message that holds the interpreter for minutes holds
        # only the child's, never the listener's (ingest/isolation.py).
        state.isolation = IsolatedCall(prepare_stored)
        # What STARTTLS offers; None: no STARTTLS. A failure here stops the start.
        self.smtp_tls: ssl.SSLContext | None = self.load_tls(state.config.smtp_in)

    def load_tls(self, smtp_in: SmtpInConfig) -> ssl.SSLContext | None:
        if smtp_in.tls_cert is None or smtp_in.tls_key is None:
            return None
        context = server_context(smtp_in.tls_cert, smtp_in.tls_key)
        text, expired = describe(smtp_in.tls_cert, self.state.clock.now())
        if expired:
            log.warning("STARTTLS certificate %s has EXPIRED: %s", smtp_in.tls_cert, text)
        else:
            log.info("STARTTLS certificate %s: %s", smtp_in.tls_cert, text)
        return context

    def request_stop(self) -> None:
        if not self.stopping.is_set():
            log.info("stop requested: draining")
        self.stopping.set()
        self.imap.stop.set()  # account threads notice within half a second
        self.work_ready.set()
        self.mail_ready.set()
        self.stopping_nudge.set()

    def reload(self) -> None:
        """SIGHUP: apply what can change live; a broken file leaves everything as it is."""
        running = self.state.config
        try:
            new = load_listener_config(running.path)
        except ConfigError as error:
            for key, reason in error.problems:
                log.error("reload refused, configuration unchanged: %s: %s", key, reason)
            return
        except Exception as error:  # never let a reload take the daemon down
            log.error("reload refused, configuration unchanged: %s", error)
            return
        logs.protect_config(new)
        result = reload.plan(running, new)
        try:
            templates = Templates(result.config.templates_dir)
        except Exception as error:
            log.error("reload refused, templates.folder: %s", error)
            return
        try:
            smtp_tls = self.load_tls(result.config.smtp_in)
        except (ssl.SSLError, OSError, ValueError) as error:  # changed again since the check
            log.error("reload refused, smtp_in.tls_cert/tls_key: %s", error)
            return
        self.state.config, self.state.templates = result.config, templates
        self.state.apply_webhooks()
        self._reload_keys()
        self.smtp_tls = smtp_tls
        if result.applied:
            log.info("reloaded: %s", reload.describe(running, new, result.applied))
        elif not result.needs_restart:
            log.info("reloaded: no configuration change")
        log.info("reloaded: templates re-read")
        if result.needs_restart:
            log.warning(
                "reload: these changes need a restart, running values kept: %s",
                reload.describe(running, new, result.needs_restart),
            )

    def _reload_keys(self) -> None:
        # Processes re-read the key file by themselves when it changes; SIGHUP does it now.
        keyring = getattr(self.state.blobs, "keyring", None)
        if keyring is None:
            return
        try:
            keyring.reload()
        except Exception as error:  # the keys in memory stay in use
            log.error("reload: key file not re-read, the keys in use are kept: %s", error)
            return
        log.info("reloaded: key file re-read, sealing with key %s", keyring.data.write)

    def smtp_accepted(self) -> None:
        self.metrics.message_received("smtp")
        self.work_ready.set()

    async def _wait(self, event: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)
        event.clear()

    async def supervise(self, name: str, loop_body: Callable[[], Awaitable[None]]) -> None:
        """Run a loop until stop; an unexpected error is logged and the loop restarted, so one
        bug costs a retry, never a daemon that silently stopped working."""
        failures = 0
        while not self.stopping.is_set():
            try:
                await loop_body()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                failures += 1
                log.exception("%s loop failed (%d), restarting", name, failures)
                await self._wait(self.stopping_nudge, min(2.0**failures, 60.0))

    async def watchdog_loop(self, tasks: list[asyncio.Task[None]]) -> None:
        """Ping systemd's watchdog while the loops are alive, so a hung daemon is restarted."""
        if self.notifier.watchdog_seconds is None:
            return
        limit = self.notifier.watchdog_seconds
        loop = asyncio.get_running_loop()
        while not self.stopping.is_set():
            now = loop.time()
            alive = all(not task.done() for task in tasks)
            fresh = all(now - beat < limit for beat in self.heartbeats.values())
            if alive and fresh:
                self.notifier.watchdog()
            else:
                stale = [n for n, beat in self.heartbeats.items() if now - beat >= limit]
                log.error("not pinging the watchdog: loops stuck: %s", ", ".join(stale) or "?")
            await asyncio.sleep(limit / 3)

    def beat(self, name: str) -> None:
        self.heartbeats[name] = asyncio.get_running_loop().time()

    async def _in_worker_thread(self, call: Callable[[], list[Processed]]) -> list[Processed]:
        """`call` in a thread. While it waits for the parsing process the worker is not stuck
        (the wait ends within [limits] max_parse_seconds): its heartbeat goes on, so a long
        parse is not taken for a hung daemon by the watchdog."""
        task = asyncio.ensure_future(asyncio.to_thread(call))
        isolation = self.state.isolation
        while True:
            done, _ = await asyncio.wait({task}, timeout=1.0)
            if done:
                return task.result()
            if isolation is not None and isolation.busy:
                self.beat("worker")

    async def give_way(self, spent: float) -> float:
        """The worker's wait while the listener stores a burst (ticketd/give_way.py)."""
        return await give_way(self.handler, self.give_way_budget, spent, self.stopping)

    async def worker_loop(self) -> None:
        outages = WorkerOutages()
        spent = 0.0
        loop = asyncio.get_running_loop()
        while not self.stopping.is_set():
            self.beat("worker")
            await self.give_way(spent)
            # A fresh worker each time: it takes the configuration and templates of the last
            # SIGHUP (cheap: a worker only holds references).
            worker = self.state.worker
            began = loop.time()
            # During a burst one message at a time, so that the listener's journal commits
            # wait for one message's transaction at most; else a run of them in one commit.
            storing = self.handler is not None and self.handler.storing(QUIET)
            most = 1 if storing else RUN_MESSAGES
            try:
                results = await self._in_worker_thread(functools.partial(worker.process_run, most))
                spent = (loop.time() - began) / max(len(results), 1)
            except (Temporary, OperationalError) as error:
                # The runner's policy: retry later (ingest/runner.py). Only how long differs.
                await self._wait(*self._worker_waits(outages, error))
                continue
            self._worker_recovered(outages, results[0] if results else None)
            if not results:
                await self._wait(self.work_ready, IDLE_POLL_SECONDS)
            else:
                for result in results:
                    self.metrics.message_processed(result)
                self.mail_ready.set()

    def _worker_waits(
        self, outages: WorkerOutages, error: Exception
    ) -> tuple[asyncio.Event, float]:
        """What to wait for, and at most how long, after a temporary failure; logged once."""
        if isinstance(error, ScanWait):
            outages.scanner += 1
            outages.scanner_address = str(error.error.address)
            self.metrics.scanner_reachable(outages.scanner_address, False)
            if outages.scanner == 1:
                log.error(
                    "virus scanner unreachable, messages wait in the journal unscanned "
                    "(nothing of them stored): %s",
                    error,
                )
            # A new message does not bring clamd back: only the stop cuts the wait short.
            return self.stopping_nudge, min(2.0**outages.scanner, 60.0)
        outages.database += 1
        if outages.database == 1:
            what = "database unavailable" if isinstance(error, OperationalError) else "retry later"
            log.error("%s, messages wait in the journal: %s", what, error)
        return self.work_ready, min(2.0**outages.database, 60.0)

    def _worker_recovered(self, outages: WorkerOutages, result: Processed | None) -> None:
        if outages.database:
            log.info("database reachable again")
            outages.database = 0
        if outages.scanner and result is not None:
            log.info("virus scanner reachable again: scanning the waiting messages")
            # The series that went to 0, even if a SIGHUP changed kyc.clamd since.
            self.metrics.scanner_reachable(outages.scanner_address, True)
            outages.scanner = 0

    def transport(self) -> Transport:
        out = self.state.config.smtp_out
        if out.auth != "xoauth2" or out.oauth is None or out.username is None:
            return make_transport(out)
        tokens = self.oauth.tokens(out.oauth, out.username)
        mailbox = f"{out.username} via {out.relay}"
        status = AccountStatus(
            self.state.db, self.state.clock, RELAY_ACCOUNT, mailbox, self.oauth.secrets
        )
        return make_transport(out, tokens, status)

    async def sender_loop(self) -> None:
        sender = Sender(self.state.db, self.transport(), self.state.clock)
        await asyncio.to_thread(sender.release_orphans)
        loop = asyncio.get_running_loop()
        next_release = loop.time() + ORPHAN_CHECK_SECONDS
        while not self.stopping.is_set():
            self.beat("sender")
            if loop.time() >= next_release:
                # A sender that died beside us (another daemon on this host) leaves claimed
                # rows; take them back now rather than after the lease.
                await asyncio.to_thread(sender.release_orphans)
                next_release = loop.time() + ORPHAN_CHECK_SECONDS
            try:
                result = await sender.send_one()
            except OperationalError as error:
                log.error("database unavailable for the outbox: %s", error)
                await self._wait(self.mail_ready, 5.0)
                continue
            if result is None:
                await self._wait(self.mail_ready, IDLE_POLL_SECONDS)
            else:
                self.metrics.delivery(result)

    def start_http(self) -> tuple[HttpService, asyncio.Task[None]] | None:
        """The API on `[http] listen` (web/), bound before the daemon says it is ready."""
        listen = self.state.config.http.listen
        if listen is None:
            return None
        service = HttpService(web_deps(self.state, self.mail_ready, self.work_ready), listen)
        log.info("HTTP API on %s", listen)
        return service, asyncio.create_task(service.serve(), name="http")

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        config = self.state.config
        handler = IntakeHandler(
            self.state.journal,
            config.desk.addresses,
            self.state.clock,
            self.hostname,
            on_accepted=self.smtp_accepted,
        )
        self.handler = handler
        if config.metrics.listen is not None:
            self.metrics.serve(config.metrics.listen)
        http = self.start_http()
        server = await self._listen(handler)
        tasks = self._start_loops()
        # Ready only now: the database is migrated and reachable, the listener is bound.
        self.notifier.ready(f"listening on {config.smtp_in.listen}")
        watchdog = asyncio.create_task(self.watchdog_loop(tasks), name="watchdog")
        await self.stopping.wait()
        self.notifier.stopping()
        watchdog.cancel()
        deadline = await self._drain_smtp(handler, server)
        if http is not None:
            await stop_and_wait(*http)
        await asyncio.wait(tasks, timeout=max(deadline - loop.time(), 1.0))
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.state.isolation is not None:
            self.state.isolation.close()  # a parse still running is left for the next start
            # A row sent ahead to the parsing process was not tried: its try is not a stop.
            await asyncio.to_thread(self.state.worker.release_ahead)
        self.metrics.close()
        log.info("stopped")

    async def _listen(self, handler: IntakeHandler) -> asyncio.Server:
        config = self.state.config
        listen = config.smtp_in.listen
        try:
            server = await asyncio.get_running_loop().create_server(
                # The limits are read per connection, so a SIGHUP can change them.
                lambda: make_smtp(handler, self.state.config.smtp_in, self.hostname, self.smtp_tls),
                host=listen.host,
                port=listen.port,
            )
        except OSError as error:  # the port is taken (another daemon?), or not ours to bind
            reason = f"cannot listen on {listen}: {error.strerror or error}"
            raise ConfigError([("smtp_in.listen", reason)]) from error
        relay = config.smtp_out.relay
        outgoing = f"via {relay}" if relay else f"to Maildir {config.smtp_out.maildir}"
        log.info("listening for SMTP on %s; outgoing mail %s", listen, outgoing)
        if config.kyc.clamd is not None:
            log.info("attachments are scanned by clamd at %s", config.kyc.clamd)
        else:
            log.info("no virus scanner configured ([kyc] clamd): attachments are not scanned")
        return server

    def _start_loops(self) -> list[asyncio.Task[None]]:
        """The daemon's loops, each under `supervise`; the parsing process's start beside."""
        bodies: dict[str, Callable[[], Awaitable[None]]] = {
            "worker": self.worker_loop,
            "sender": self.sender_loop,
            "sla": lambda: run_sla_clock(self),
            "kyc": lambda: run_kyc_housekeeping(self),
            "maintenance": lambda: run_maintenance(self),
            "webhooks": lambda: run_webhooks(self),
        }
        for account in self.state.config.imap:
            bodies[f"imap {account.name}"] = functools.partial(self.imap.run_account, account)
        tasks = [
            asyncio.create_task(self.supervise(name, body), name=name)
            for name, body in bodies.items()
        ]
        if self.state.isolation is not None:
            # In the background: the forkserver and its imports take seconds, and a SIGTERM
            # meanwhile must find run() waiting for it, ready to drain.
            # Not among `tasks`: the watchdog takes a finished one there for a dead loop.
            self.warmup = asyncio.create_task(
                asyncio.to_thread(self.state.isolation.start), name="parse-warmup"
            )
        return tasks

    async def _drain_smtp(self, handler: IntakeHandler, server: asyncio.Server) -> float:
        """Let SMTP transactions under way finish, then close; the drain's deadline."""
        loop = asyncio.get_running_loop()
        # Keep listening while transactions finish, so that a client connecting now hears a
        # 421 greeting (and tries again later or at another MX) rather than "connection refused".
        handler.closing = True
        deadline = loop.time() + DRAIN_SECONDS
        while (handler.in_flight or handler.busy_sessions()) and loop.time() < deadline:
            await asyncio.sleep(0.05)
        if handler.busy_sessions():
            log.warning("drain over: ending %d unfinished SMTP sessions", handler.busy_sessions())
        server.close()
        handler.close_sessions()
        # A message being stored when its session was cut still commits (its client saw no
        # 250 and sends it again; the duplicate is recognised).
        grace = deadline + STORE_GRACE_SECONDS
        while handler.in_flight and loop.time() < grace:
            await asyncio.sleep(0.05)
        return deadline
