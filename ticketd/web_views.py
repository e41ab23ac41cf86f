"""What the HTTP interface (web/) reads through ticketd: the command line's own views, so
`GET /api/v1/tickets/{ref}` is `tickets show --json`, `/healthz` is `health --json` and a
customer's verification is `kyc status` (web/services.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from storage.documents import DocumentStore
from ticketd import views
from ticketd.health import check, database_problem
from ticketd.state import State
from ticketd.verification_admin import verification_states
from web.services import WebDeps


class CommandLineViews:
    def __init__(self, state: State) -> None:
        self.state = state

    def show_ticket(self, ref: str) -> dict[str, Any] | None:
        return views.show_ticket(self.state.db, ref)

    def health(self) -> dict[str, Any]:
        config = self.state.config
        relay = config.smtp_out.relay is not None and config.smtp_out.auth == "xoauth2"
        try:
            report = check(self.state.db, self.state.clock, None, config.imap, relay)
        except Exception as error:  # an unreachable database is an answer too
            report = database_problem(error)
        return report.as_json()

    def verification(self, customer: str) -> dict[str, Any] | None:
        found = verification_states(self.state.db, customer)
        return found[0] if found else None

    def quarantine(self) -> list[dict[str, Any]]:
        return views.list_quarantine(self.state.db)

    def retry(self, journal_id: int, actor: str) -> bool:
        return views.requeue(self.state.db, journal_id, actor, self.state.clock.now())

    def dismiss(self, journal_id: int, reason: str, actor: str) -> str | None:
        return views.dismiss(self.state.db, self.state.clock, journal_id, reason, actor)


def web_deps(state: State, mail_ready: asyncio.Event, work_ready: asyncio.Event) -> WebDeps:
    loop = asyncio.get_running_loop()
    documents: list[DocumentStore] = []

    def document_store() -> DocumentStore:
        if not documents:  # opened on first use, as the worker does
            documents.append(DocumentStore.open(state.blobs, state.config.kyc.key_file))
        return documents[0]

    def wake() -> None:
        loop.call_soon_threadsafe(mail_ready.set)

    def journaled() -> None:
        loop.call_soon_threadsafe(work_ready.set)

    return WebDeps(
        db=state.db,
        clock=state.clock,
        blobs=state.blobs,
        views=CommandLineViews(state),
        config=lambda: state.config,
        templates=lambda: state.templates,
        documents=document_store,
        mail_queued=wake,
        message_journaled=journaled,
    )
