"""One ticket: `GET /api/v1/tickets/{ref}` (as `tickets show --json`), its answers, notes and
changes. Answers and notes act as the token's agent, by the functions an agent's mail uses
(ingest/agent_replies.py, ingest/ticket_ops.py): relayed, timed by the SLA clock and written in
the history exactly as if the agent had answered by mail."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import FastAPI, Header, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from domain.config_team import AgentConfig
from domain.context import Context
from ingest.agent_replies import AnswerRefused, answer_customer, note_on_ticket
from ingest.ticket_ops import TicketChange, TicketOperationError, change_ticket
from storage.models import Ticket, TicketMessage
from web.access import audit, visible_ticket_id
from web.auth import Caller, deps_of
from web.bodies import ChangeBody, NoteBody, ReplyBody
from web.errors import ApiError, bad_request
from web.services import WebDeps
from web.tokens import Principal


@contextmanager
def acting(deps: WebDeps) -> Iterator[Context]:
    """A transaction with what the pipeline's steps get (domain/context.py)."""
    with deps.db.transaction() as session:
        yield Context(session, deps.config(), deps.clock, deps.templates(), deps.documents)


def agent_of(caller: Principal) -> AgentConfig:
    if caller.agent is None:
        raise ApiError(403, "answers and notes are an agent's: use a token of `--agent EMAIL`")
    return caller.agent


def _attachment_ids(session: Session, ticket_id: int) -> list[int]:
    return list(
        session.scalars(
            select(TicketMessage.id)
            .where(TicketMessage.ticket_id == ticket_id)
            .order_by(TicketMessage.id)
        )
    )


def shown_ticket(deps: WebDeps, caller: Principal, ref: str, action: str) -> dict[str, Any]:
    """The ticket as the command line shows it, each attachment with its `id` and `url` for
    `GET .../attachments/{id}`; audited."""
    now = deps.clock.now()
    ticket_id = visible_ticket_id(deps.db, caller, ref, action, now)
    # One after the other, never nested: on SQLite a transaction holds the write lock.
    with deps.db.read() as session:
        ticket_ref = session.scalar(select(Ticket.ref).where(Ticket.id == ticket_id))
        ids = _attachment_ids(session, ticket_id)
    shown = deps.views.show_ticket(ticket_ref or ref)
    if shown is None:
        raise ApiError(404, "no such ticket")
    with deps.db.transaction() as session:
        audit(session, caller, action, session.get(Ticket, ticket_id), now)
    base = (deps.config().http.public_url or "") + f"/api/v1/tickets/{shown['ref']}/attachments"
    for message_id, message in zip(ids, shown["messages"], strict=False):
        for number, attachment in enumerate(message["attachments"], 1):
            attachment["id"] = f"{message_id}-{number}"
            attachment["url"] = f"{base}/{message_id}-{number}"
    return shown


def reply_as(
    deps: WebDeps, caller: Principal, ref: str, text: str, key: str | None, via: str = "api"
) -> str:
    """The agent's answer to the customer (`via` names the door in the audit and the dedupe
    key); the ticket's reference. The same `key` again answers nothing twice."""
    agent = agent_of(caller)
    ticket_id = visible_ticket_id(deps.db, caller, ref, f"{via} reply", deps.clock.now())
    dedupe = f"{via}:{caller.token_id}:{key}" if key else f"{via}:{uuid.uuid4().hex}"
    with acting(deps) as ctx:
        ticket = ctx.session.get(Ticket, ticket_id)
        assert ticket is not None
        if ctx.session.scalar(select(TicketMessage.id).where(TicketMessage.dedupe_key == dedupe)):
            return ticket.ref  # the same Idempotency-Key again: answered already
        try:
            answer_customer(ctx, ticket, agent, text, (), dedupe)
        except AnswerRefused as error:
            raise ApiError(409, str(error)) from error
        audit(ctx.session, caller, f"{via} reply", ticket, ctx.clock.now())
        ref = ticket.ref
    deps.mail_queued()
    return ref


def note_as(deps: WebDeps, caller: Principal, ref: str, text: str, via: str = "api") -> str:
    agent = agent_of(caller)
    ticket_id = visible_ticket_id(deps.db, caller, ref, f"{via} note", deps.clock.now())
    with acting(deps) as ctx:
        ticket = ctx.session.get(Ticket, ticket_id)
        assert ticket is not None
        try:
            note_on_ticket(ctx, ticket, agent, text, f"{via}:note:{uuid.uuid4().hex}")
        except AnswerRefused as error:
            raise ApiError(409, str(error)) from error
        audit(ctx.session, caller, f"{via} note", ticket, ctx.clock.now())
        return ticket.ref


def _change(deps: WebDeps, caller: Principal, ref: str, body: ChangeBody) -> list[str]:
    change = TicketChange(body.status, body.assignee, body.queue, body.priority)
    if change == TicketChange():
        raise bad_request("nothing to change: give status, assignee, queue or priority")
    ticket_id = visible_ticket_id(deps.db, caller, ref, "api change", deps.clock.now())
    name = caller.agent.name if caller.agent is not None else caller.actor
    with acting(deps) as ctx:
        ticket = ctx.session.get(Ticket, ticket_id)
        assert ticket is not None
        try:
            done = change_ticket(ctx, ticket, change, caller.actor, name)
        except TicketOperationError as error:
            raise ApiError(422, str(error)) from error
        audit(ctx.session, caller, "api change", ticket, ctx.clock.now(), ", ".join(done))
    deps.mail_queued()  # a new owner's notification
    return done


def install(app: FastAPI) -> None:
    @app.get("/api/v1/tickets/{ref}", tags=["tickets"], summary="as `tickets show REF --json`")
    def show(request: Request, caller: Caller, ref: str) -> dict[str, Any]:
        return shown_ticket(deps_of(request), caller, ref, "api show")

    @app.post(
        "/api/v1/tickets/{ref}/replies",
        tags=["tickets"],
        status_code=201,
        summary="an answer to the customer, by the path of an agent's mail reply",
    )
    def reply(
        request: Request,
        caller: Caller,
        ref: str,
        body: ReplyBody,
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> dict[str, Any]:
        deps = deps_of(request)
        done = reply_as(deps, caller, ref, body.text, idempotency_key)
        return shown_ticket(deps, caller, done, "api show")

    @app.post("/api/v1/tickets/{ref}/notes", tags=["tickets"], status_code=201)
    def note(request: Request, caller: Caller, ref: str, body: NoteBody) -> dict[str, Any]:
        deps = deps_of(request)
        return shown_ticket(deps, caller, note_as(deps, caller, ref, body.text), "api show")

    @app.patch("/api/v1/tickets/{ref}", tags=["tickets"], summary="status, assignee, queue")
    def patch(request: Request, caller: Caller, ref: str, body: ChangeBody) -> dict[str, Any]:
        deps = deps_of(request)
        changed = _change(deps, caller, ref, body)
        # After a move out of the agent's queues the ticket is no longer theirs to see.
        return {"ref": ref, "changed": changed}
