"""One ticket: `GET /api/v1/tickets/{ref}` (as `tickets show --json`), its answers, notes and
changes. Answers and notes act as the token's agent, by the functions an agent's mail uses
(ingest/agent_replies.py, ingest/ticket_ops.py): relayed, timed by the SLA clock and written in
the history exactly as if the agent had answered by mail."""

from __future__ import annotations

import hashlib
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
from storage.key_turns import take_turn
from storage.models import Ticket, TicketMessage
from web.access import audit, visible_ticket_id
from web.auth import Caller, deps_of
from web.bodies import ChangeBody, NoteBody, ReplyBody
from web.errors import ApiError, bad_request, documented
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


def one_line_ending(text: str) -> str:
    """LF for every line end: a browser's form (and many clients) send CRLF, which the history
    would keep and `tickets show` print as a carriage return. The mail is composed as before."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def keyed(scope: str, key: str | None, text: str) -> tuple[str, str | None]:
    """The dedupe key of a request with an `Idempotency-Key` (or a console form's nonce) and
    the prefix every request with that key in that scope shares: the endpoint, the target,
    the token, the key (hashed: any length and character), then the body's hash. Without a key,
    a key of its own (never deduplicated) and no prefix."""
    if not key:
        return f"{scope}:{uuid.uuid4().hex}", None
    prefix = f"{scope}:{_digest(key)}:"
    return prefix + _digest(text), prefix


def earlier_request(
    session: Session, ticket_id: int, dedupe: str, prefix: str | None, strict: bool
) -> bool:
    """True when this request was answered already (the same key and body: nothing to do).
    The same key with another body: 422 when `strict` (the API: a client's mistake that would
    otherwise drop an answer), else a new request (the console: the browser's Back button sends
    the page's nonce again with the text edited). First in its transaction: requests with the
    key take turns (storage/key_turns.py), so one sent at the same moment as another looks
    after the other's answer is committed, and never answers a second time."""
    if prefix is None:
        return False
    take_turn(session.connection(), prefix)
    if session.scalar(select(TicketMessage.id).where(TicketMessage.dedupe_key == dedupe)):
        return True
    # The prefix names the ticket (`keyed`), so only its messages can share it. Looked up
    # through the ticket's index: a LIKE with ESCAPE uses no index on SQLite, nor a prefix
    # LIKE on PostgreSQL under a non-C collation, so it read every message ever recorded,
    # inside the writers' turn, for each keyed reply or note (issue 19).
    other = select(TicketMessage.id).where(
        TicketMessage.ticket_id == ticket_id,
        TicketMessage.dedupe_key.startswith(prefix, autoescape=True),
    )
    if strict and session.scalar(other.limit(1)) is not None:
        raise ApiError(
            422,
            "Idempotency-Key: already used for another text on this ticket; "
            "send a new key for a new request",
        )
    return False


def reply_as(
    deps: WebDeps, caller: Principal, ref: str, text: str, key: str | None, via: str = "api"
) -> str:
    """The agent's answer to the customer (`via` names the door in the audit and the dedupe
    key); the ticket's reference. The same `key` with the same text on the same ticket answers
    once; with another text it is refused (422) from the API, a new answer from the console."""
    agent = agent_of(caller)
    text = one_line_ending(text)
    ticket_id = visible_ticket_id(deps.db, caller, ref, f"{via} reply", deps.clock.now())
    dedupe, prefix = keyed(f"{via}:reply:{ticket_id}:{caller.token_id}", key, text)
    with acting(deps) as ctx:
        earlier = earlier_request(ctx.session, ticket_id, dedupe, prefix, strict=via == "api")
        ticket = ctx.session.get(Ticket, ticket_id)
        assert ticket is not None
        if earlier:
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
    """The agent's internal note; the ticket's reference."""
    return keyed_note(deps, caller, ref, text, via, None)


def keyed_note(
    deps: WebDeps, caller: Principal, ref: str, text: str, via: str, key: str | None
) -> str:
    """`note_as` with an `Idempotency-Key`, deduplicated as `reply_as` does it."""
    agent = agent_of(caller)
    text = one_line_ending(text)
    ticket_id = visible_ticket_id(deps.db, caller, ref, f"{via} note", deps.clock.now())
    dedupe, prefix = keyed(f"{via}:note:{ticket_id}:{caller.token_id}", key, text)
    with acting(deps) as ctx:
        earlier = earlier_request(ctx.session, ticket_id, dedupe, prefix, strict=via == "api")
        ticket = ctx.session.get(Ticket, ticket_id)
        assert ticket is not None
        if earlier:
            return ticket.ref
        try:
            note_on_ticket(ctx, ticket, agent, text, dedupe)
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
    @app.get(
        "/api/v1/tickets/{ref}",
        tags=["tickets"],
        summary="as `tickets show REF --json`",
        responses=documented(401, 404, 422),
    )
    def show(request: Request, caller: Caller, ref: str) -> dict[str, Any]:
        return shown_ticket(deps_of(request), caller, ref, "api show")

    @app.post(
        "/api/v1/tickets/{ref}/replies",
        tags=["tickets"],
        status_code=201,
        summary="an answer to the customer, by the path of an agent's mail reply",
        responses=documented(401, 403, 404, 409, 422),
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

    @app.post(
        "/api/v1/tickets/{ref}/notes",
        tags=["tickets"],
        status_code=201,
        summary="an internal note, never mailed (as #note)",
        responses=documented(401, 403, 404, 409, 422),
    )
    def note(
        request: Request,
        caller: Caller,
        ref: str,
        body: NoteBody,
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> dict[str, Any]:
        deps = deps_of(request)
        done = keyed_note(deps, caller, ref, body.text, "api", idempotency_key)
        return shown_ticket(deps, caller, done, "api show")

    @app.patch(
        "/api/v1/tickets/{ref}",
        tags=["tickets"],
        summary="status, assignee, queue, priority",
        responses=documented(400, 401, 404, 422),
    )
    def patch(request: Request, caller: Caller, ref: str, body: ChangeBody) -> dict[str, Any]:
        deps = deps_of(request)
        changed = _change(deps, caller, ref, body)
        # After a move out of the agent's queues the ticket is no longer theirs to see.
        return {"ref": ref, "changed": changed}
