"""The daemon's side of IMAP intake: one thread per `[[imap]]` account, stopped together.

IMAP is blocking I/O (imapclient), so each account gets its own daemon thread rather than a
slot in asyncio's default executor: a thread stuck in a network read for a minute must neither
starve the worker's `to_thread` calls nor hold up the exit after SIGTERM (the journal makes an
abandoned fetch harmless). The event loop only awaits each thread's end, inside `supervise`,
which restarts an account whose loop died of a bug.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable

from domain.config import ImapAccountConfig
from ingest.imap_accounts import AccountRunner
from ingest.oauth_tokens import OAuthBroker
from ticketd.metrics import Metrics
from ticketd.state import State


class ImapService:
    def __init__(
        self,
        state: State,
        on_journaled: Callable[[], None],
        metrics: Metrics | None = None,
        broker: OAuthBroker | None = None,
    ) -> None:
        self.state = state
        self.broker = broker
        self.metrics = metrics
        self.on_journaled = on_journaled  # called on the event loop's thread
        self.stop = threading.Event()
        self.runners: dict[str, AccountRunner] = {}

    async def run_account(self, account: ImapAccountConfig) -> None:
        """Run one account until stop; raises what killed its loop (for `supervise`)."""
        loop = asyncio.get_running_loop()
        finished: asyncio.Future[BaseException | None] = loop.create_future()

        def wake() -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed during shutdown
                loop.call_soon_threadsafe(self.on_journaled)

        runner = AccountRunner(
            account,
            self.state.db,
            self.state.journal,
            self.state.clock,
            on_journaled=wake,
            stop=self.stop,
            metrics=self.metrics,
            max_message_size=self.state.config.smtp_in.max_message_size,
            broker=self.broker,
        )
        self.runners[account.name] = runner

        def target() -> None:
            outcome: BaseException | None = None
            try:
                runner.run()
            except BaseException as error:  # handed to the event loop, which logs it
                outcome = error
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, finished, outcome)

        threading.Thread(target=target, name=f"imap-{account.name}", daemon=True).start()
        error = await finished
        if error is not None:
            raise error


def _settle(future: asyncio.Future[BaseException | None], outcome: BaseException | None) -> None:
    if not future.done():
        future.set_result(outcome)
