"""Signing in to the console (issue 20): a one-time link mailed to a configured address.

Both the link and the session it opens are rows of `api_tokens` (only their SHA-256 kept, as
for API tokens): the link's row is named `console link` and works once, within LINK_MINUTES;
opening it revokes it and makes a `console session` row whose token is the browser's cookie
for SESSION_HOURS (`console admin link` and `console admin session` for an admin, whose address
is kept in the row's `agent` column so the audit names the admin, not a session number). The
link's page asks for a click (a POST) before it signs in, so a mail scanner that fetches every
link in a mail does not use it up. An agent signs in as that
agent (their queues, as their API token would); an address of `[desk] admins` as the admin.
The mail goes through the outbox like every other mail.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from domain.config import Config
from domain.context import Context
from outbound.compose import Envelope, new_message_id
from outbound.outbox_rows import queue_outgoing
from storage.models import ApiToken
from web.services import WebDeps
from web.tokens import (
    CONSOLE_ADMIN_LINK,
    CONSOLE_ADMIN_SESSION,
    CONSOLE_LINK,
    CONSOLE_SESSION,
    PREFIX,
    Principal,
    digest,
)

LINK = CONSOLE_LINK
SESSION = CONSOLE_SESSION
ADMIN_LINK = CONSOLE_ADMIN_LINK
ADMIN_SESSION = CONSOLE_ADMIN_SESSION
LINK_MINUTES = 15
MAX_OUTSTANDING_LINKS = 3
SESSION_HOURS = 12
COOKIE = "ticketd_console"
log = logging.getLogger("ticketd.console")


def who_may_sign_in(config: Config, address: str) -> tuple[str, bool] | None:
    """The address and whether it signs in as an admin; None for anyone else. An address that
    is an agent's signs in as that agent (their queues), even if it is an admin's too."""
    address = address.strip().lower()
    agent = config.team.agent(address)
    if agent is not None:
        return agent.email, False
    return (address, True) if address in config.team.admins else None


def _new_token(ctx: Context, address: str, name: str) -> str:
    token = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(token_hash=digest(token), agent=address, name=name, created_at=ctx.clock.now())
    ctx.session.add(row)
    return token


def _forget_old_rows(session: Session, now: datetime) -> None:
    """Console rows past any use (a day after a session's end) go: `tokens list` shows the
    API's tokens and the console's live ones, not every sign-in ever made."""
    session.execute(
        delete(ApiToken).where(
            ApiToken.name.in_((LINK, SESSION, ADMIN_LINK, ADMIN_SESSION)),
            ApiToken.created_at < now - timedelta(hours=SESSION_HOURS + 24),
        )
    )


def _links_outstanding(session: Session, address: str, now: datetime) -> int:
    return len(
        session.scalars(
            select(ApiToken.id).where(
                ApiToken.agent == address,
                ApiToken.name.in_((LINK, ADMIN_LINK)),
                ApiToken.revoked_at.is_(None),
                ApiToken.created_at > now - timedelta(minutes=LINK_MINUTES),
            )
        ).all()
    )


def mail_link(deps: WebDeps, address: str, base_url: str) -> bool:
    """Queue the sign-in mail when the address may sign in and has fewer than
    MAX_OUTSTANDING_LINKS unused links of the last LINK_MINUTES (a script posting the form
    cannot fill an agent's mailbox); False (and nothing) otherwise."""
    config = deps.config()
    found = who_may_sign_in(config, address)
    if found is None:
        return False
    to, admin = found
    desk = config.desk
    with deps.db.transaction() as session:
        now = deps.clock.now()
        _forget_old_rows(session, now)
        if _links_outstanding(session, to, now) >= MAX_OUTSTANDING_LINKS:
            log.warning(
                "console: no new sign-in link for %s: %d still unused", to, MAX_OUTSTANDING_LINKS
            )
            return False
        ctx = Context(session, config, deps.clock, deps.templates())
        token = _new_token(ctx, to, ADMIN_LINK if admin else LINK)
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


def _valid(row: ApiToken | None, names: tuple[str, ...], now: datetime, hours: float) -> bool:
    return (
        row is not None
        and row.name in names
        and row.revoked_at is None
        and now - row.created_at <= timedelta(hours=hours)
    )


def open_session(deps: WebDeps, link_token: str) -> str | None:
    """The session's token for a valid link, which is used up; None for any other."""
    now = deps.clock.now()
    with deps.db.transaction() as session:
        row = session.scalar(
            select(ApiToken).where(ApiToken.token_hash == digest(link_token)).with_for_update()
        )
        if row is None or not _valid(row, (LINK, ADMIN_LINK), now, LINK_MINUTES / 60):
            return None
        row.revoked_at = now
        ctx = Context(session, deps.config(), deps.clock, deps.templates())
        name = ADMIN_SESSION if row.name == ADMIN_LINK else SESSION
        return _new_token(ctx, row.agent or "", name)


def principal(deps: WebDeps, cookie: str | None) -> Principal | None:
    """Who the browser is signed in as; None without a live session."""
    if not cookie or not cookie.startswith(PREFIX):
        return None
    now = deps.clock.now()
    with deps.db.read() as session:
        row = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest(cookie)))
        if row is None or not _valid(row, (SESSION, ADMIN_SESSION), now, SESSION_HOURS):
            return None
        token_id, address, admin = row.id, row.agent or "", row.name == ADMIN_SESSION
    team = deps.config().team
    if admin:  # only while the address is still one of `[desk] admins`
        return Principal(token_id, address, None) if address in team.admins else None
    agent = team.agent(address)
    if agent is None:
        return None  # no longer an agent
    return Principal(token_id=token_id, actor=agent.email, agent=agent)


def sign_out(deps: WebDeps, cookie: str | None) -> None:
    if not cookie:
        return
    with deps.db.transaction() as session:
        row = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest(cookie)))
        if row is not None and row.name in (SESSION, ADMIN_SESSION):
            row.revoked_at = row.revoked_at or deps.clock.now()
