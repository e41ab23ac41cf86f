"""Signing in to the console (issue 20): a one-time link mailed to a configured address.

Both the link and the session it opens are rows of `api_tokens` (only their SHA-256 kept, as
for API tokens): the link's row is named `console link` and works once, within LINK_MINUTES;
opening it revokes it and makes a `console session` row whose token is the browser's cookie
for SESSION_HOURS. The link's page asks for a click (a POST) before it signs in, so a mail
scanner that fetches every link in a mail does not use it up. An agent signs in as that
agent (their queues, as their API token would); an address of `[desk] admins` as the admin.
The mail goes through the outbox like every other mail.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import select

from domain.config import Config
from domain.context import Context
from outbound.compose import Envelope, new_message_id
from outbound.outbox_rows import queue_outgoing
from storage.models import ApiToken
from web.services import WebDeps
from web.tokens import PREFIX, Principal, digest

LINK = "console link"
SESSION = "console session"
LINK_MINUTES = 15
SESSION_HOURS = 12
COOKIE = "ticketd_console"


def who_may_sign_in(config: Config, address: str) -> str | None:
    """The agent's address, "" for an admin, None for anyone else."""
    address = address.strip().lower()
    agent = config.team.agent(address)
    if agent is not None:
        return agent.email
    return "" if address in config.team.admins else None


def _new_token(ctx: Context, agent: str, name: str) -> str:
    token = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        token_hash=digest(token), agent=agent or None, name=name, created_at=ctx.clock.now()
    )
    ctx.session.add(row)
    return token


def mail_link(deps: WebDeps, address: str, base_url: str) -> bool:
    """Queue the sign-in mail when the address may sign in; False (and nothing) otherwise."""
    config = deps.config()
    agent = who_may_sign_in(config, address)
    if agent is None:
        return False
    to = agent or address.strip().lower()
    desk = config.desk
    with deps.db.transaction() as session:
        ctx = Context(session, config, deps.clock, deps.templates())
        token = _new_token(ctx, agent, LINK)
        body = deps.templates().render(
            "console_link",
            desk.language,
            desk_name=desk.name,
            address=to,
            minutes=LINK_MINUTES,
            link=f"{base_url.rstrip('/')}/console/link?t={token}",
        )
        envelope = Envelope(
            sender_name=desk.name,
            sender=desk.address,
            to_name="",
            to=to,
            message_id=new_message_id(desk.secret, "-", desk.domain),
            in_reply_to=None,
            references=(),
            date=deps.clock.now(),
            auto_submitted="auto-generated",
            ref="-",
            loop_marker=desk.address,
        )
        queue_outgoing(ctx, None, "console-link", envelope, body, None, automatic=False)
    deps.mail_queued()
    return True


def _valid(row: ApiToken | None, name: str, now: datetime, lifetime: timedelta) -> bool:
    return (
        row is not None
        and row.name == name
        and row.revoked_at is None
        and now - row.created_at <= lifetime
    )


def open_session(deps: WebDeps, link_token: str) -> str | None:
    """The session's token for a valid link, which is used up; None for any other."""
    now = deps.clock.now()
    with deps.db.transaction() as session:
        row = session.scalar(
            select(ApiToken).where(ApiToken.token_hash == digest(link_token)).with_for_update()
        )
        if row is None or not _valid(row, LINK, now, timedelta(minutes=LINK_MINUTES)):
            return None
        row.revoked_at = now
        ctx = Context(session, deps.config(), deps.clock, deps.templates())
        return _new_token(ctx, row.agent or "", SESSION)


def principal(deps: WebDeps, cookie: str | None) -> Principal | None:
    """Who the browser is signed in as; None without a live session."""
    if not cookie or not cookie.startswith(PREFIX):
        return None
    now = deps.clock.now()
    with deps.db.read() as session:
        row = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest(cookie)))
        if row is None or not _valid(row, SESSION, now, timedelta(hours=SESSION_HOURS)):
            return None
        token_id, email = row.id, row.agent
    config = deps.config()
    agent = config.team.agent(email) if email is not None else None
    if email is not None and agent is None:
        return None  # no longer an agent
    actor = agent.email if agent is not None else f"admin (console session {token_id})"
    return Principal(token_id=token_id, actor=actor, agent=agent)


def sign_out(deps: WebDeps, cookie: str | None) -> None:
    if not cookie:
        return
    with deps.db.transaction() as session:
        row = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest(cookie)))
        if row is not None and row.name == SESSION:
            row.revoked_at = row.revoked_at or deps.clock.now()
